//! The whole stack: created with every wiring checked through EC2, planned with one Describe
//! call per type, grown and shrunk, updated in place, one instance replaced, destroyed; and an
//! apply killed after its first creates, finished by the next.

use std::io::{BufRead, BufReader};

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_network_is_created_kept_updated_in_place_replaced_and_destroyed() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awsnet");
    let repo = stack_repo(&name, "10.61.0.0/16");
    let ec2 = ec2(settings).await;

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let live = owned_aws(&ec2, &name).await;
    assert_eq!(live.addresses(), expected(), "one of each resource");

    // The wiring, as AWS reports it.
    let vpc = live.id("aws_vpc", "net.vpc");
    let dns_hostnames = |vpc: String| {
        let ec2 = ec2.clone();
        async move {
            ec2.describe_vpc_attribute()
                .vpc_id(vpc)
                .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
                .send()
                .await
                .expect("DescribeVpcAttribute")
                .enable_dns_hostnames()
                .and_then(|a| a.value())
        }
    };
    assert_eq!(dns_hostnames(vpc.clone()).await, Some(true));
    let igw = live.id("aws_internet_gateway", "net.igw");
    let gw = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(&igw)
        .send()
        .await
        .expect("igw");
    assert_eq!(
        gw.internet_gateways()[0].attachments()[0].vpc_id(),
        Some(vpc.as_str())
    );
    let nat = live.id("aws_nat_gateway", "net.nat");
    let nats = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat)
        .send()
        .await
        .expect("nat");
    let n = &nats.nat_gateways()[0];
    assert_eq!(
        n.subnet_id(),
        Some(live.id("aws_subnet", "net.public_a").as_str())
    );
    assert_eq!(
        n.nat_gateway_addresses()[0].allocation_id(),
        Some(live.id("aws_eip", "net.nat_ip").as_str())
    );
    for (table, target, subnets) in [
        (
            "net.public_rt",
            igw.clone(),
            ["net.public_a", "net.public_b"],
        ),
        (
            "net.private_rt",
            nat.clone(),
            ["net.private_a", "net.private_b"],
        ),
    ] {
        let id = live.id("aws_route_table", table);
        let out = ec2
            .describe_route_tables()
            .route_table_ids(&id)
            .send()
            .await
            .expect("rt");
        let t = &out.route_tables()[0];
        let default = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .expect("default route");
        assert_eq!(
            default.gateway_id().or(default.nat_gateway_id()),
            Some(target.as_str())
        );
        let mut associated: Vec<&str> = t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        associated.sort();
        let mut want: Vec<String> = subnets.iter().map(|s| live.id("aws_subnet", s)).collect();
        want.sort();
        assert_eq!(associated, want, "{table}");
    }
    let lb = live.id("aws_security_group", "net.lb");
    let app = live.id("aws_security_group", "net.app");
    let (ingress, egress) = permissions(&ec2, &app).await;
    assert_eq!(ingress, vec![format!("tcp:8080-8080 {lb}")]);
    assert_eq!(
        egress,
        vec![
            "tcp:443-443 0.0.0.0/0".to_string(),
            "tcp:5432-5432 10.61.0.0/16".to_string()
        ],
        "the default allow-all egress is replaced by the declared rules"
    );
    let (_, lb_egress) = permissions(&ec2, &lb).await;
    assert_eq!(
        lb_egress,
        vec!["-1:0-0 0.0.0.0/0".to_string()],
        "undeclared egress is AWS's default"
    );
    let bastion = live.id("aws_instance", "net.bastion");
    let eips = ec2
        .describe_addresses()
        .allocation_ids(live.id("aws_eip", "net.bastion_ip"))
        .send()
        .await
        .expect("eip");
    assert_eq!(eips.addresses()[0].instance_id(), Some(bastion.as_str()));
    let app_a = live.id("aws_instance", "net.app_a");
    let instances = ec2
        .describe_instances()
        .instance_ids(&app_a)
        .send()
        .await
        .expect("instance");
    let i = &instances.reservations()[0].instances()[0];
    assert_eq!(i.key_name(), Some(format!("{name}-net.key").as_str()));
    let keys = ec2
        .describe_key_pairs()
        .key_names(format!("{name}-net.key"))
        .send()
        .await
        .expect("key");
    assert_eq!(keys.key_pairs().len(), 1);
    let volume = i.block_device_mappings()[0]
        .ebs()
        .and_then(|e| e.volume_id())
        .expect("root volume")
        .to_string();
    let size = |ec2: aws_sdk_ec2::Client, v: String| async move {
        ec2.describe_volumes()
            .volume_ids(v)
            .send()
            .await
            .expect("volume")
            .volumes()[0]
            .size()
    };
    assert_eq!(size(ec2.clone(), volume.clone()).await, Some(8));

    // A second plan changes nothing and reads with one Describe call per type.
    let run = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);
    assert_eq!(
        aws_calls(&run.stdout),
        (DESCRIBE_CALLS, 0),
        "{}",
        run.stdout
    );
    let calls = library_plan_calls(settings, &repo, &name).await;
    assert_eq!(calls.len(), DESCRIBE_CALLS, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|(op, n)| op.starts_with("Describe") && *n == 1),
        "one call of each Describe: {calls:?}"
    );

    // More resources of the same types: still one Describe call per type.
    repo.write(
        "modules/stack/module.yaml",
        &module(
            r#"  - name: extra_subnet
    type: aws_subnet
    vpc_id: ${vpc.id}
    cidr_block: ${input.net}.21.0/24
    availability_zone: us-east-1a
  - name: extra_group
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 9000, to_port: 9000, security_groups: ["${app.id}"]}
  - name: extra_instance
    type: aws_instance
    ami: ${input.ami}
    instance_type: t3.micro
    subnet_id: ${extra_subnet.id}
  - name: extra_ip
    type: aws_eip
"#,
        ),
    );
    repo.commit("more resources");
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);
    assert_eq!(
        aws_calls(&run.stdout),
        (DESCRIBE_CALLS, 0),
        "{}",
        run.stdout
    );
    assert_eq!(
        library_plan_calls(settings, &repo, &name).await,
        calls,
        "the same calls with more resources of each type"
    );
    repo.write("modules/stack/module.yaml", &module(""));
    repo.commit("fewer resources again");
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("- aws_instance net.extra_instance: deleted"),
        "{}",
        run.stdout
    );
    let live = owned_aws(&ec2, &name).await;
    assert_eq!(live.addresses(), expected());

    // In place: a rule's port, a tag, the root volume grows. Same ids.
    let env_file = format!("environments/{name}/environment.yaml");
    repo.edit(
        &env_file,
        "      net: ",
        "      https_port: 8443\n      root_size: 16\n      vpc_tier: edge\n      dns_hostnames: false\n      net: ",
    );
    repo.write(
        "modules/stack/module.yaml",
        &module("").replace(
            "subnet_id: ${public_a.id}\n    vpc_security_group_ids: [\"${lb.id}\"]",
            "subnet_id: ${public_a.id}\n    vpc_security_group_ids: [\"${lb.id}\", \"${app.id}\"]",
        ),
    );
    repo.commit("in-place changes");
    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains("~ aws_security_group net.lb"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("~ aws_instance net.app_a"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("~ aws_vpc net.vpc"), "{}", run.stdout);
    assert!(
        run.stdout.contains("~ aws_instance net.bastion"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("0 to add, 4 to change, 0 to replace, 0 to destroy"),
        "{}",
        run.stdout
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let after = owned_aws(&ec2, &name).await;
    assert_eq!(
        after.ids_by_type(),
        live.ids_by_type(),
        "same resources, same ids"
    );
    assert_eq!(
        after.route_table_associations, live.route_table_associations,
        "same route table associations"
    );
    let (lb_ingress, _) = permissions(&ec2, &lb).await;
    assert_eq!(lb_ingress, vec!["tcp:8443-8443 0.0.0.0/0".to_string()]);
    assert_eq!(size(ec2.clone(), volume.clone()).await, Some(16));
    let vpcs = ec2.describe_vpcs().vpc_ids(&vpc).send().await.expect("vpc");
    assert_eq!(tags(vpcs.vpcs()[0].tags())["tier"], "edge");
    assert_eq!(dns_hostnames(vpc.clone()).await, Some(false));
    let b = ec2
        .describe_instances()
        .instance_ids(&bastion)
        .send()
        .await
        .expect("bastion");
    let mut groups: Vec<&str> = b.reservations()[0].instances()[0]
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    groups.sort();
    let mut want = vec![lb.as_str(), app.as_str()];
    want.sort();
    assert_eq!(groups, want, "the bastion's groups changed in place");

    // Replace: the instance type of one instance.
    repo.edit(
        &env_file,
        "      net: ",
        "      app_type: t3.small\n      net: ",
    );
    repo.commit("bigger app_a");
    let run = envboot(&repo, settings, &["plan", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains("-/+ aws_instance net.app_a"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("~ instance_type: \"t3.micro\" -> \"t3.small\"  # forces replacement"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("0 to add, 0 to change, 1 to replace, 0 to destroy"),
        "{}",
        run.stdout
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let replaced = owned_aws(&ec2, &name).await;
    assert_eq!(replaced.addresses(), expected());
    let new_app_a = replaced.id("aws_instance", "net.app_a");
    assert_ne!(new_app_a, app_a, "a new instance");
    let old = ec2
        .describe_instances()
        .instance_ids(&app_a)
        .send()
        .await
        .expect("old instance");
    assert_eq!(
        old.reservations()[0].instances()[0]
            .state()
            .and_then(|s| s.name())
            .map(|s| s.as_str()),
        Some("terminated")
    );
    let new = ec2
        .describe_instances()
        .instance_ids(&new_app_a)
        .send()
        .await
        .expect("new");
    assert_eq!(
        new.reservations()[0].instances()[0]
            .instance_type()
            .map(|t| t.as_str()),
        Some("t3.small")
    );

    // Destroy: nothing carrying the environment's tags is left.
    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_killed_after_its_first_creates_is_finished_by_the_next_with_one_of_each() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awskill");
    let repo = stack_repo(&name, "10.62.0.0/16");
    let ec2 = ec2(settings).await;

    let mut child = Envboot::new(settings)
        .args(["apply", &name])
        .repo(&repo)
        .spawn();
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        let first_create = line.contains(": created (");
        seen.push(line);
        if first_create {
            child.kill().expect("SIGKILL envboot");
            break;
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed before it finished: {seen:#?}");
    let partial = owned_aws(&ec2, &name).await;
    let made = partial.len();
    assert!(made >= 1, "the first create happened");
    assert!(
        made < expected().values().map(Vec::len).sum::<usize>(),
        "killed before everything existed: {partial:?}"
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let live = owned_aws(&ec2, &name).await;
    assert_eq!(live.addresses(), expected(), "exactly one of each");
    let run = envboot(&repo, settings, &["plan", &name]);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}
