//! The AWS layer against moto's EC2 API: a two-zone network with public and private subnets, an
//! internet gateway, a NAT gateway, route tables, security groups with egress rules and group
//! references, a key pair, a launch template, instances and an Elastic IP association.
//! Outcomes are checked through the EC2 API, not through envboot's output.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use aws_sdk_ec2::types::{Filter, ResourceType as Rt, Tag, TagSpecification};
use common::*;

/// Describe calls in a no-op plan: one per resource type, whatever the number of resources
/// (Elastic IP associations are read from the same `DescribeAddresses` as Elastic IPs).
const DESCRIBE_CALLS: usize = envboot::model::ResourceType::ALL.len() - 1;

const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzq1J1Nf7uBbF2Xk8b0eL5sC3sP0pJYf8q4sH0m8cXy deploy@envboot";

/// The network-and-compute module, with `extra` appended to its resources.
fn module(extra: &str) -> String {
    format!(
        r#"apiVersion: envboot.dev/v1alpha1
kind: Module
inputs:
  cidr: {{type: string}}
  net: {{type: string, description: "first two octets (10.50)"}}
  ami: {{type: string, default: ami-03cf127a}}
  app_type: {{type: string, default: t3.micro}}
  root_size: {{type: number, default: 8}}
  https_port: {{type: number, default: 443}}
  vpc_tier: {{type: string, default: core}}
  dns_hostnames: {{type: bool, default: true}}
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: ${{input.cidr}}
    enable_dns_hostnames: ${{input.dns_hostnames}}
    tags: {{tier: "${{input.vpc_tier}}"}}
  - name: public_a
    type: aws_subnet
    vpc_id: ${{vpc.id}}
    cidr_block: ${{input.net}}.1.0/24
    availability_zone: us-east-1a
    map_public_ip_on_launch: true
  - name: public_b
    type: aws_subnet
    vpc_id: ${{vpc.id}}
    cidr_block: ${{input.net}}.2.0/24
    availability_zone: us-east-1b
    map_public_ip_on_launch: true
  - name: private_a
    type: aws_subnet
    vpc_id: ${{vpc.id}}
    cidr_block: ${{input.net}}.11.0/24
    availability_zone: us-east-1a
  - name: private_b
    type: aws_subnet
    vpc_id: ${{vpc.id}}
    cidr_block: ${{input.net}}.12.0/24
    availability_zone: us-east-1b
  - name: igw
    type: aws_internet_gateway
    vpc_id: ${{vpc.id}}
  - name: nat_ip
    type: aws_eip
  - name: nat
    type: aws_nat_gateway
    subnet_id: ${{public_a.id}}
    allocation_id: ${{nat_ip.id}}
  - name: public_rt
    type: aws_route_table
    vpc_id: ${{vpc.id}}
    routes:
      - {{cidr_block: 0.0.0.0/0, gateway_id: "${{igw.id}}"}}
    subnet_ids: ["${{public_a.id}}", "${{public_b.id}}"]
  - name: private_rt
    type: aws_route_table
    vpc_id: ${{vpc.id}}
    routes:
      - {{cidr_block: 0.0.0.0/0, nat_gateway_id: "${{nat.id}}"}}
    subnet_ids: ["${{private_a.id}}", "${{private_b.id}}"]
  - name: lb
    type: aws_security_group
    vpc_id: ${{vpc.id}}
    description: Load balancer
    ingress:
      - {{protocol: tcp, from_port: "${{input.https_port}}", to_port: "${{input.https_port}}", cidr_blocks: [0.0.0.0/0]}}
  - name: app
    type: aws_security_group
    vpc_id: ${{vpc.id}}
    description: Application
    ingress:
      - {{protocol: tcp, from_port: 8080, to_port: 8080, security_groups: ["${{lb.id}}"]}}
    egress:
      - {{protocol: tcp, from_port: 443, to_port: 443, cidr_blocks: [0.0.0.0/0]}}
      - {{protocol: tcp, from_port: 5432, to_port: 5432, cidr_blocks: ["${{input.cidr}}"]}}
  - name: key
    type: aws_key_pair
    public_key_file: keys/deploy.pub
  - name: template
    type: aws_launch_template
    image_id: ${{input.ami}}
    instance_type: t3.micro
    key_name: ${{key.key_name}}
    vpc_security_group_ids: ["${{app.id}}"]
  - name: app_a
    type: aws_instance
    ami: ${{input.ami}}
    instance_type: ${{input.app_type}}
    subnet_id: ${{private_a.id}}
    vpc_security_group_ids: ["${{app.id}}"]
    key_name: ${{key.key_name}}
    root_volume_size: ${{input.root_size}}
  - name: app_b
    type: aws_instance
    ami: ${{input.ami}}
    instance_type: t3.micro
    subnet_id: ${{private_b.id}}
    vpc_security_group_ids: ["${{app.id}}"]
  - name: bastion_ip
    type: aws_eip
  - name: bastion
    type: aws_instance
    ami: ${{input.ami}}
    instance_type: t3.micro
    subnet_id: ${{public_a.id}}
    vpc_security_group_ids: ["${{lb.id}}"]
  - name: bastion_assoc
    type: aws_eip_association
    allocation_id: ${{bastion_ip.id}}
    instance_id: ${{bastion.id}}
{extra}"#
    )
}

/// Every address of [`module`] without extras, by type.
fn expected() -> BTreeMap<&'static str, Vec<String>> {
    let a = |names: &[&str]| -> Vec<String> { names.iter().map(|n| format!("net.{n}")).collect() };
    BTreeMap::from([
        ("eip", a(&["bastion_ip", "nat_ip"])),
        ("eip_association", a(&["bastion_assoc"])),
        ("instance", a(&["app_a", "app_b", "bastion"])),
        ("internet_gateway", a(&["igw"])),
        ("key_pair", a(&["key"])),
        ("launch_template", a(&["template"])),
        ("nat_gateway", a(&["nat"])),
        ("route_table", a(&["private_rt", "public_rt"])),
        ("security_group", a(&["app", "lb"])),
        (
            "subnet",
            a(&["private_a", "private_b", "public_a", "public_b"]),
        ),
        ("vpc", a(&["vpc"])),
    ])
}

fn environment(name: &str, cidr: &str, cluster: bool) -> String {
    let net = cidr.rsplitn(3, '.').last().unwrap_or("10.0").to_string();
    let cluster = if cluster {
        format!("cluster:\n  type: existing\n  context: envboot-sandbox\n  name: {name}\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud:\n  provider: aws\n  region: us-east-1\ninfrastructure:\n  - name: net\n    module: stack\n    inputs:\n      cidr: {cidr}\n      net: \"{net}\"\n{cluster}"
    )
}

fn stack_repo(name: &str, cidr: &str) -> Repo {
    let repo = Repo::new(name, &environment(name, cidr, false));
    repo.write("modules/stack/module.yaml", &module(""));
    repo.write("modules/stack/keys/deploy.pub", &format!("{PUBLIC_KEY}\n"));
    repo.commit("the stack module");
    repo
}

fn env_filter(env: &str) -> Filter {
    Filter::builder()
        .name("tag:envboot:environment")
        .values(env)
        .build()
}

fn address_of(tags: &[Tag]) -> String {
    tags.iter()
        .find(|t| t.key() == Some("envboot:address"))
        .and_then(|t| t.value())
        .unwrap_or("(no address)")
        .to_string()
}

/// Everything live carrying the environment's tag, by type: (address, id), sorted. Elastic IP
/// associations are listed by the `envboot:association` tag of their address.
async fn owned(
    ec2: &aws_sdk_ec2::Client,
    env: &str,
) -> BTreeMap<&'static str, Vec<(String, String)>> {
    let mut out: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
    let mut add = |t: &'static str, tags: &[Tag], id: Option<&str>| {
        out.entry(t)
            .or_default()
            .push((address_of(tags), id.unwrap_or_default().to_string()));
    };
    let f = || env_filter(env);
    for v in ec2
        .describe_vpcs()
        .filters(f())
        .send()
        .await
        .expect("vpcs")
        .vpcs()
    {
        add("vpc", v.tags(), v.vpc_id());
    }
    for s in ec2
        .describe_subnets()
        .filters(f())
        .send()
        .await
        .expect("subnets")
        .subnets()
    {
        add("subnet", s.tags(), s.subnet_id());
    }
    for g in ec2
        .describe_internet_gateways()
        .filters(f())
        .send()
        .await
        .expect("igws")
        .internet_gateways()
    {
        add("internet_gateway", g.tags(), g.internet_gateway_id());
    }
    let mut associations = Vec::new();
    for a in ec2
        .describe_addresses()
        .filters(f())
        .send()
        .await
        .expect("eips")
        .addresses()
    {
        add("eip", a.tags(), a.allocation_id());
        if let Some(assoc) = a
            .tags()
            .iter()
            .find(|t| t.key() == Some("envboot:association"))
        {
            associations.push((
                assoc.value().unwrap_or_default().to_string(),
                a.association_id().unwrap_or_default().to_string(),
            ));
        }
    }
    let mut add = |t: &'static str, tags: &[Tag], id: Option<&str>| {
        out.entry(t)
            .or_default()
            .push((address_of(tags), id.unwrap_or_default().to_string()));
    };
    for n in ec2
        .describe_nat_gateways()
        .filter(f())
        .filter(
            Filter::builder()
                .name("state")
                .values("pending")
                .values("available")
                .build(),
        )
        .send()
        .await
        .expect("nats")
        .nat_gateways()
    {
        // moto ignores DescribeNatGateways' tag filter.
        if tags(n.tags())
            .get("envboot:environment")
            .map(String::as_str)
            != Some(env)
        {
            continue;
        }
        add("nat_gateway", n.tags(), n.nat_gateway_id());
    }
    for r in ec2
        .describe_route_tables()
        .filters(f())
        .send()
        .await
        .expect("route tables")
        .route_tables()
    {
        add("route_table", r.tags(), r.route_table_id());
    }
    for g in ec2
        .describe_security_groups()
        .filters(f())
        .send()
        .await
        .expect("groups")
        .security_groups()
    {
        add("security_group", g.tags(), g.group_id());
    }
    for k in ec2
        .describe_key_pairs()
        .filters(f())
        .send()
        .await
        .expect("keys")
        .key_pairs()
    {
        add("key_pair", k.tags(), k.key_pair_id());
    }
    for t in ec2
        .describe_launch_templates()
        .filters(f())
        .send()
        .await
        .expect("templates")
        .launch_templates()
    {
        add("launch_template", t.tags(), t.launch_template_id());
    }
    let live = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    for i in ec2
        .describe_instances()
        .filters(f())
        .filters(live)
        .send()
        .await
        .expect("instances")
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
    {
        add("instance", i.tags(), i.instance_id());
    }
    if !associations.is_empty() {
        out.insert("eip_association", associations);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn addresses(
    owned: &BTreeMap<&'static str, Vec<(String, String)>>,
) -> BTreeMap<&'static str, Vec<String>> {
    owned
        .iter()
        .map(|(t, v)| (*t, v.iter().map(|(a, _)| a.clone()).collect()))
        .collect()
}

fn id_of(owned: &BTreeMap<&'static str, Vec<(String, String)>>, t: &str, address: &str) -> String {
    owned[t]
        .iter()
        .find(|(a, _)| a == address)
        .unwrap_or_else(|| panic!("no {t} {address} in {owned:?}"))
        .1
        .clone()
}

/// Plans `name` through the library and returns the EC2 calls made, by operation; asserts
/// that the plan has no changes.
async fn library_plan_calls(
    settings: &std::collections::HashMap<String, String>,
    repo: &Repo,
    name: &str,
) -> BTreeMap<String, u64> {
    let loaded = envboot::engine::load(
        &envboot::engine::SourceOptions {
            repo: repo.path().display().to_string(),
            revision: "HEAD".into(),
            deny_warnings: false,
        },
        name,
    )
    .expect("load");
    let config = ec2_config(settings);
    let aws = envboot::aws::Aws::from_config(config);
    let changes = aws
        .plan(name, &loaded.env.resources, false)
        .await
        .expect("plan");
    assert!(
        changes
            .iter()
            .all(|c| c.change.action == envboot::plan::Action::NoOp),
        "{:?}",
        changes.iter().map(|c| &c.change).collect::<Vec<_>>()
    );
    aws.calls.snapshot()
}

/// The `API calls: AWS N (W writes)` figures a run printed.
fn aws_calls(stdout: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("API calls: AWS "))
        .unwrap_or_else(|| panic!("no API calls line in {stdout}"));
    let rest = &line["API calls: AWS ".len()..];
    let (total, rest) = rest.split_once(" (").expect("total");
    let writes = rest.split_once(' ').expect("writes").0;
    (
        total.parse().expect("number"),
        writes.parse().expect("number"),
    )
}

async fn permissions(ec2: &aws_sdk_ec2::Client, group: &str) -> (Vec<String>, Vec<String>) {
    let out = ec2
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .expect("group");
    let g = &out.security_groups()[0];
    let show = |list: &[aws_sdk_ec2::types::IpPermission]| {
        let mut v: Vec<String> = list
            .iter()
            .flat_map(|p| {
                let port = format!(
                    "{}:{}-{}",
                    p.ip_protocol().unwrap_or_default(),
                    p.from_port().unwrap_or(0),
                    p.to_port().unwrap_or(0)
                );
                p.ip_ranges()
                    .iter()
                    .map(|r| format!("{port} {}", r.cidr_ip().unwrap_or_default()))
                    .chain(
                        p.user_id_group_pairs()
                            .iter()
                            .map(|u| format!("{port} {}", u.group_id().unwrap_or_default())),
                    )
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    };
    (show(g.ip_permissions()), show(g.ip_permissions_egress()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_is_created_kept_updated_in_place_replaced_and_destroyed() {
    let settings = sandbox();
    let name = unique("awsnet");
    let repo = stack_repo(&name, "10.61.0.0/16");
    let ec2 = ec2(settings).await;

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let live = owned(&ec2, &name).await;
    assert_eq!(addresses(&live), expected(), "one of each resource");

    // The wiring, as AWS reports it.
    let vpc = id_of(&live, "vpc", "net.vpc");
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
    let igw = id_of(&live, "internet_gateway", "net.igw");
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
    let nat = id_of(&live, "nat_gateway", "net.nat");
    let nats = ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat)
        .send()
        .await
        .expect("nat");
    let n = &nats.nat_gateways()[0];
    assert_eq!(
        n.subnet_id(),
        Some(id_of(&live, "subnet", "net.public_a").as_str())
    );
    assert_eq!(
        n.nat_gateway_addresses()[0].allocation_id(),
        Some(id_of(&live, "eip", "net.nat_ip").as_str())
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
        let id = id_of(&live, "route_table", table);
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
        let mut want: Vec<String> = subnets.iter().map(|s| id_of(&live, "subnet", s)).collect();
        want.sort();
        assert_eq!(associated, want, "{table}");
    }
    let lb = id_of(&live, "security_group", "net.lb");
    let app = id_of(&live, "security_group", "net.app");
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
    let bastion = id_of(&live, "instance", "net.bastion");
    let eips = ec2
        .describe_addresses()
        .allocation_ids(id_of(&live, "eip", "net.bastion_ip"))
        .send()
        .await
        .expect("eip");
    assert_eq!(eips.addresses()[0].instance_id(), Some(bastion.as_str()));
    let app_a = id_of(&live, "instance", "net.app_a");
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
    let live = owned(&ec2, &name).await;
    assert_eq!(addresses(&live), expected());

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
    let after = owned(&ec2, &name).await;
    assert_eq!(after, live, "same resources, same ids");
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
    let replaced = owned(&ec2, &name).await;
    assert_eq!(addresses(&replaced), expected());
    let new_app_a = id_of(&replaced, "instance", "net.app_a");
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
    let left = owned(&ec2, &name).await;
    assert!(left.values().all(Vec::is_empty), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_killed_after_its_first_creates_is_finished_by_the_next_with_one_of_each() {
    let settings = sandbox();
    let name = unique("awskill");
    let repo = stack_repo(&name, "10.62.0.0/16");
    let ec2 = ec2(settings).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_envboot"))
        .args(["apply", &name, "--repo"])
        .arg(repo.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENVBOOT_OUTPUT", "text")
        .envs(settings)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start envboot");
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
    let partial = owned(&ec2, &name).await;
    let made: usize = partial.values().map(Vec::len).sum();
    assert!(made >= 1, "the first create happened");
    assert!(
        made < expected().values().map(Vec::len).sum::<usize>(),
        "killed before everything existed: {partial:?}"
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let live = owned(&ec2, &name).await;
    assert_eq!(addresses(&live), expected(), "exactly one of each");
    let run = envboot(&repo, settings, &["plan", &name]);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned(&ec2, &name).await.values().all(Vec::is_empty));
}

fn named(rt: Rt, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unowned_resource_with_the_desired_name_is_a_conflict_until_adopted() {
    let settings = sandbox();
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
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(run.stderr.contains("--adopt"), "{}", run.stderr);
    let live = owned(&ec2, &name).await;
    assert!(
        live.values().all(Vec::is_empty),
        "nothing created: {live:?}"
    );
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
    let live = owned(&ec2, &name).await;
    assert_eq!(live["vpc"], vec![("net.vpc".to_string(), vpc.clone())]);
    assert_eq!(live["key_pair"].len(), 1);
    let run = envboot(&repo, settings, &["plan", &name]);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned(&ec2, &name).await.values().all(Vec::is_empty));
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_sweeps_what_the_cluster_left_in_the_vpc_and_only_that() {
    let settings = sandbox();
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
    let live = owned(&ec2, &name).await;
    let vpc = id_of(&live, "vpc", "net.vpc");
    let subnet = id_of(&live, "subnet", "net.subnet");

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
    let left = owned(&ec2, &name).await;
    assert!(left.values().all(Vec::is_empty), "{left:?}\n{}", run.stdout);
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

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_error_stops_the_run_naming_the_resource_the_call_and_aws_message() {
    let settings = sandbox();
    let name = unique("awserror");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: net\n    module: broken\n"
    );
    let repo = Repo::new(&name, &env);
    // The route points to a gateway that does not exist; the subnet after it is never made.
    repo.write(
        "modules/broken/module.yaml",
        r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.65.0.0/16
  - name: rt
    type: aws_route_table
    vpc_id: ${vpc.id}
    routes:
      - {cidr_block: 0.0.0.0/0, gateway_id: igw-00000000000000000}
  - name: after
    type: aws_subnet
    vpc_id: ${rt.id}
    cidr_block: 10.65.1.0/24
    availability_zone: us-east-1a
"#,
    );
    repo.commit("broken module");
    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("error: CreateRoute for net.rt failed: InvalidInternetGatewayID.NotFound"),
        "{}",
        run.stderr
    );
    let ec2 = ec2(settings).await;
    let live = owned(&ec2, &name).await;
    assert!(
        !live.contains_key("subnet"),
        "nothing after the failure: {live:?}"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned(&ec2, &name).await.values().all(Vec::is_empty));
}

/// Two security groups whose rules admit each other (web from db, db from web): both are
/// created, then each gets its rule naming the other; the next plan changes nothing; destroy
/// revokes the rules before deleting the groups.
#[tokio::test(flavor = "multi_thread")]
async fn security_groups_that_refer_to_each_other_are_created_and_destroyed() {
    let settings = sandbox();
    let name = unique("mutual");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: app\n    module: mutual\n"
    );
    let repo = Repo::new(&name, &env);
    repo.write(
        "modules/mutual/module.yaml",
        r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.94.0.0/16
  - name: web
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 8080, to_port: 8080, security_groups: ["${db.id}"]}
      - {protocol: tcp, from_port: 443, to_port: 443, cidr_blocks: [10.94.0.0/16]}
  - name: db
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 5432, to_port: 5432, security_groups: ["${web.id}"]}
"#,
    );
    repo.commit("groups that admit each other");
    envboot(&repo, settings, &["apply", &name]).assert_ok();

    let ec2 = ec2(settings).await;
    let groups = ec2
        .describe_security_groups()
        .filters(env_filter(&name))
        .send()
        .await
        .expect("DescribeSecurityGroups");
    let by_address: BTreeMap<String, &aws_sdk_ec2::types::SecurityGroup> = groups
        .security_groups()
        .iter()
        .map(|g| (address_of(g.tags()), g))
        .collect();
    let id = |a: &str| by_address[a].group_id().unwrap_or_default().to_string();
    let sources = |a: &str| -> Vec<(i32, String)> {
        by_address[a]
            .ip_permissions()
            .iter()
            .flat_map(|p| {
                p.user_id_group_pairs().iter().map(move |g| {
                    (
                        p.from_port().unwrap_or(-1),
                        g.group_id().unwrap_or_default().to_string(),
                    )
                })
            })
            .collect()
    };
    assert_eq!(sources("app.web"), [(8080, id("app.db"))]);
    assert_eq!(sources("app.db"), [(5432, id("app.web"))]);
    // The CIDR rule of web was made with the group.
    assert!(by_address["app.web"]
        .ip_permissions()
        .iter()
        .any(|p| p.from_port() == Some(443)));

    let r = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = ec2
        .describe_security_groups()
        .filters(env_filter(&name))
        .send()
        .await
        .expect("DescribeSecurityGroups");
    assert!(left.security_groups().is_empty());
}
