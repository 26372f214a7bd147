//! The AWS layer against moto's EC2 API: a two-zone network with public and private subnets, an
//! internet gateway, a NAT gateway, route tables, security groups with egress rules and group
//! references, a key pair, a launch template, instances and an Elastic IP association.
//! Outcomes are checked through the EC2 API, not through envboot's output.
//!
//! By topic: `stack` (the whole stack: created, kept, updated in place, replaced, destroyed,
//! and an apply killed midway), `ownership` (conflicts with unowned resources, adoption,
//! destroy's sweep), `errors` (a permanent API error), `groups` (security groups that refer to
//! each other). Here: the stack module and what the topics share.

/// A permanent AWS error stops the run, naming the resource, the call and AWS's message.
mod errors;
/// Security groups whose rules refer to each other.
mod groups;
/// The lock of an AWS-only environment, in AWS: a second run stops while one holds it.
mod lock;
/// What envboot takes as its own: name conflicts, `--adopt`, destroy's sweep of the VPC.
mod ownership;
/// The whole stack's lifecycle, and an apply killed after its first creates.
mod stack;

use std::collections::{BTreeMap, HashMap};

use crate::common::*;

/// Describe calls in a no-op plan: one per resource type, whatever the number of resources
/// (Elastic IP associations are read from the same `DescribeAddresses` as Elastic IPs).
pub(super) const DESCRIBE_CALLS: usize = envboot::model::ResourceType::ALL.len() - 1;

pub(super) const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzq1J1Nf7uBbF2Xk8b0eL5sC3sP0pJYf8q4sH0m8cXy deploy@envboot";

/// The network-and-compute module, with `extra` appended to its resources.
pub(super) fn module(extra: &str) -> String {
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

/// Every address of [`module`] without extras, by type (as [`OwnedAws::addresses`] lists them).
pub(super) fn expected() -> BTreeMap<&'static str, Vec<String>> {
    let a = |names: &[&str]| -> Vec<String> { names.iter().map(|n| format!("net.{n}")).collect() };
    BTreeMap::from([
        ("aws_eip", a(&["bastion_ip", "nat_ip"])),
        ("aws_eip_association", a(&["bastion_assoc"])),
        ("aws_instance", a(&["app_a", "app_b", "bastion"])),
        ("aws_internet_gateway", a(&["igw"])),
        ("aws_key_pair", a(&["key"])),
        ("aws_launch_template", a(&["template"])),
        ("aws_nat_gateway", a(&["nat"])),
        ("aws_route_table", a(&["private_rt", "public_rt"])),
        ("aws_security_group", a(&["app", "lb"])),
        (
            "aws_subnet",
            a(&["private_a", "private_b", "public_a", "public_b"]),
        ),
        ("aws_vpc", a(&["vpc"])),
    ])
}

pub(super) fn environment(name: &str, cidr: &str, cluster: bool) -> String {
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

pub(super) fn stack_repo(name: &str, cidr: &str) -> Repo {
    let repo = Repo::new(name, &environment(name, cidr, false));
    repo.write("modules/stack/module.yaml", &module(""));
    repo.write("modules/stack/keys/deploy.pub", &format!("{PUBLIC_KEY}\n"));
    repo.commit("the stack module");
    repo
}

/// Plans `name` through the library and returns the EC2 calls made, by operation; asserts
/// that the plan has no changes.
pub(super) async fn library_plan_calls(
    settings: &HashMap<String, String>,
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
    let changes = envboot::engine::plan_aws(&aws, name, &loaded.env.resources, false)
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
pub(super) fn aws_calls(stdout: &str) -> (usize, usize) {
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

pub(super) async fn permissions(
    ec2: &aws_sdk_ec2::Client,
    group: &str,
) -> (Vec<String>, Vec<String>) {
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
