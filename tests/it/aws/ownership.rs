//! What envboot takes as its own: a resource with the desired name but without the
//! environment's tags is a conflict until `--adopt`; destroy sweeps what the cluster left in the
//! VPC (by the cluster's tag) and only that.

use aws_sdk_ec2::types::{Filter, ResourceType as Rt, Tag, TagSpecification};

use super::*;

fn named(rt: Rt, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unowned_resource_with_the_desired_name_is_a_conflict_until_adopted() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awsconflict");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: net\n    module: small\n"
    );
    let repo = Repo::new(&name, &env);
    repo.write(
        "modules/small/module.yaml",
        "apiVersion: envboot.dev/v1alpha1\nkind: Module\nresources:\n  - name: vpc\n    type: aws_vpc\n    cidr_block: 10.63.0.0/16\n  - name: key\n    type: aws_key_pair\n    public_key_file: deploy.pub\n",
    );
    repo.write("modules/small/deploy.pub", PUBLIC_KEY);
    repo.commit("small module");
    let ec2 = ec2(settings).await;

    // Made by hand, without envboot's tags, with the names envboot would give.
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.63.0.0/16")
        .tag_specifications(named(Rt::Vpc, &format!("{name}-net.vpc")))
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let key = ec2
        .import_key_pair()
        .key_name(format!("{name}-net.key"))
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(PUBLIC_KEY))
        .send()
        .await
        .expect("ImportKeyPair")
        .key_pair_id()
        .expect("key id")
        .to_string();

    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("+ aws_vpc net.vpc  (CONFLICT: aws_vpc `{name}-net.vpc` ({vpc}) exists without the environment's tags")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("({key}) exists without")),
        "{}",
        run.stdout
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(run.stderr.contains("--adopt"), "{}", run.stderr);
    let live = owned_aws(&ec2, &name).await;
    assert!(live.is_empty(), "nothing created: {live:?}");
    let v = ec2.describe_vpcs().vpc_ids(&vpc).send().await.expect("vpc");
    assert_eq!(
        tags(v.vpcs()[0].tags()).keys().collect::<Vec<_>>(),
        vec!["Name"],
        "left untouched"
    );

    // --adopt takes them over: the VPC is tagged in place; the key pair, whose public key envboot
    // cannot read back, is replaced by the declared one.
    let run = envboot(&repo, settings, &["apply", &name, "--adopt"]);
    run.assert_ok();
    let live = owned_aws(&ec2, &name).await;
    assert_eq!(
        live.ids_by_type()["aws_vpc"],
        vec![("net.vpc".to_string(), vpc.clone())]
    );
    assert_eq!(live.of("aws_key_pair").count(), 1);
    let run = envboot(&repo, settings, &["plan", &name]);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_sweeps_what_the_cluster_left_in_the_vpc_and_only_that() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awssweep");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: net\n    module: small\ncluster:\n  type: existing\n  context: envboot-sandbox\n  name: {name}\n"
    );
    let repo = Repo::new(&name, &env);
    repo.write(
        "modules/small/module.yaml",
        "apiVersion: envboot.dev/v1alpha1\nkind: Module\nresources:\n  - name: vpc\n    type: aws_vpc\n    cidr_block: 10.64.0.0/16\n  - name: subnet\n    type: aws_subnet\n    vpc_id: ${vpc.id}\n    cidr_block: 10.64.1.0/24\n    availability_zone: us-east-1a\n",
    );
    repo.commit("small module");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let ec2 = ec2(settings).await;
    let live = owned_aws(&ec2, &name).await;
    let vpc = live.id("aws_vpc", "net.vpc");
    let subnet = live.id("aws_subnet", "net.subnet");

    // What a cluster makes on its own: a load balancer's network interface, a security group,
    // a volume. And a volume of another cluster.
    let cluster_tag = |cluster: &str, rt: Rt| {
        TagSpecification::builder()
            .resource_type(rt)
            .tags(
                Tag::builder()
                    .key(format!("kubernetes.io/cluster/{cluster}"))
                    .value("owned")
                    .build(),
            )
            .build()
    };
    let eni = ec2
        .create_network_interface()
        .subnet_id(&subnet)
        .tag_specifications(cluster_tag(&name, Rt::NetworkInterface))
        .send()
        .await
        .expect("CreateNetworkInterface")
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .expect("eni")
        .to_string();
    let group = ec2
        .create_security_group()
        .group_name(format!("k8s-elb-{name}"))
        .description("made by the cluster")
        .vpc_id(&vpc)
        .tag_specifications(cluster_tag(&name, Rt::SecurityGroup))
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .expect("group")
        .to_string();
    let volume = |cluster: String| {
        let ec2 = ec2.clone();
        async move {
            ec2.create_volume()
                .availability_zone("us-east-1a")
                .size(1)
                .tag_specifications(cluster_tag(&cluster, Rt::Volume))
                .send()
                .await
                .expect("CreateVolume")
                .volume_id()
                .expect("volume")
                .to_string()
        }
    };
    let ours = volume(name.clone()).await;
    let theirs = volume(format!("{name}-other")).await;

    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}\n{}", run.stdout);
    let enis = ec2
        .describe_network_interfaces()
        .filters(
            Filter::builder()
                .name("network-interface-id")
                .values(&eni)
                .build(),
        )
        .send()
        .await
        .expect("enis");
    assert!(
        enis.network_interfaces().is_empty(),
        "the cluster's interface is gone"
    );
    let groups = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("group-id").values(&group).build())
        .send()
        .await
        .expect("groups");
    assert!(
        groups.security_groups().is_empty(),
        "the cluster's group is gone"
    );
    let volumes = ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("volume-id")
                .values(&ours)
                .values(&theirs)
                .build(),
        )
        .send()
        .await
        .expect("volumes");
    let left: Vec<&str> = volumes
        .volumes()
        .iter()
        .filter_map(|v| v.volume_id())
        .collect();
    assert_eq!(
        left,
        vec![theirs.as_str()],
        "only the other cluster's volume is left"
    );
    ec2.delete_volume()
        .volume_id(&theirs)
        .send()
        .await
        .expect("clean up");
}
