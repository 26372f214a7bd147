//! The AWS layer against moto's EC2 API: the cost of a no-op plan does not grow with the number
//! of resources, and a run killed half-way is finished by running it again, without duplicates.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// The number after `AWS` in the CLI's `API calls:` line, and the writes.
fn aws_calls(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("API calls:"))
        .expect("API calls line");
    let after = line.split("AWS ").nth(1).expect("AWS count");
    let mut words = after.split_whitespace();
    let total = words.next().and_then(|n| n.parse().ok()).expect("a number");
    let writes = words
        .next()
        .and_then(|w| w.trim_start_matches('(').parse().ok())
        .expect("writes");
    (total, writes)
}

/// An AWS-only environment: the network and `servers` web tiers.
fn servers(name: &str, servers: usize) -> String {
    let mut env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: network\n    module: network\n    inputs: {{cidr: 10.50.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.50.1.0/24, subnet_b_cidr: 10.50.2.0/24}}\n"
    );
    for i in 0..servers {
        env.push_str(&format!(
            "  - name: web{i}\n    module: web-tier\n    inputs: {{vpc_id: '${{module.network.vpc_id}}', subnet_id: '${{module.network.subnet_a_id}}', ami: ami-03cf127a}}\n"
        ));
    }
    env
}

#[test]
fn a_no_op_plan_makes_one_describe_call_per_resource_type_however_many_resources() {
    let settings = sandbox();
    for count in [1, 6] {
        let name = unique(&format!("calls{count}"));
        let repo = Repo::new(&name, &servers(&name, count));
        envboot(&repo, settings, &["apply", &name]).assert_ok();
        let run = envboot(&repo, settings, &["plan", &name]);
        run.assert_ok();
        assert!(
            run.stdout
                .contains(&format!("({} resources unchanged)", 5 + 2 * count)),
            "{}",
            run.stdout
        );
        assert_eq!(
            aws_calls(&run.stdout),
            (6, 0),
            "6 resource types, 6 Describe calls: {}",
            run.stdout
        );
        envboot(&repo, settings, &["destroy", &name]).assert_ok();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_after_its_first_creates_is_finished_by_the_next_without_duplicates() {
    let settings = sandbox();
    let name = unique("crash");
    let repo = Repo::new(&name, &servers(&name, 3));

    let mut child = Command::new(env!("CARGO_BIN_EXE_envboot"))
        .args(["apply", &name, "--repo"])
        .arg(repo.path())
        .env_clear()
        .envs(settings.iter())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains(r#""result":"created""#))
        .expect("a first resource is created");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // Not a terminal: one JSON event per line.
    let event: serde_json::Value = serde_json::from_str(&first).expect("a JSON event");
    assert_eq!(
        (event["event"].as_str(), event["address"].as_str()),
        (Some("change"), Some("network.vpc")),
        "{first}"
    );

    let ec2 = ec2(settings).await;
    let partial = owned_aws(&ec2, &name).await;
    assert!(
        !partial.is_empty() && partial.len() < 11,
        "killed half-way: {partial:?}"
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let after = owned_aws(&ec2, &name).await;
    let mut addresses: Vec<&str> = after.iter().map(|o| o.1.as_str()).collect();
    addresses.sort();
    let mut expected = vec![
        "network.igw",
        "network.public",
        "network.public_a",
        "network.public_b",
        "network.vpc",
    ];
    for i in 0..3 {
        expected.push(Box::leak(format!("web{i}.server").into_boxed_str()));
        expected.push(Box::leak(format!("web{i}.web").into_boxed_str()));
    }
    expected.sort();
    assert_eq!(addresses, expected, "exactly one of every resource");
    for (_, _, id, _) in &partial {
        assert!(
            after.iter().any(|o| &o.2 == id),
            "{id} from the killed run was kept, not recreated"
        );
    }
    // Nothing untagged was left behind: every VPC named after the environment carries its tag.
    let named = ec2
        .describe_vpcs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:Name")
                .values(format!("{name}-network.vpc"))
                .build(),
        )
        .send()
        .await
        .expect("DescribeVpcs");
    assert_eq!(named.vpcs().len(), 1);
    assert_eq!(tags(named.vpcs()[0].tags())["envboot:environment"], name);

    let run = envboot(&repo, settings, &["apply", &name]);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned_aws(&ec2, &name).await.is_empty(), "nothing leaked");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unowned_resource_with_the_same_name_is_a_conflict_until_adopted() {
    let settings = sandbox();
    let name = unique("adopt");
    let repo = Repo::new(&name, &servers(&name, 1));
    let ec2 = ec2(settings).await;
    let theirs = ec2
        .create_vpc()
        .cidr_block("10.50.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(format!("{name}-network.vpc"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("id")
        .to_string();

    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "aws_vpc network.vpc: {theirs} is named {name}-network.vpc but has no envboot tags"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--adopt"), "{}", run.stderr);
    assert!(
        owned_aws(&ec2, &name).await.is_empty(),
        "nothing was created or changed"
    );
    let vpc = ec2
        .describe_vpcs()
        .vpc_ids(&theirs)
        .send()
        .await
        .expect("DescribeVpcs");
    assert!(
        !tags(vpc.vpcs()[0].tags()).contains_key("envboot:environment"),
        "left untouched"
    );

    let run = envboot(&repo, settings, &["apply", &name, "--adopt"]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("adopt {theirs}")),
        "{}",
        run.stdout
    );
    let owned = owned_aws(&ec2, &name).await;
    let vpc = owned.iter().find(|o| o.0 == "vpc").expect("vpc");
    assert_eq!(
        vpc.2, theirs,
        "the existing VPC was taken over, not duplicated"
    );
    assert_eq!(owned.iter().filter(|o| o.0 == "vpc").count(), 1);
    let subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&theirs)
                .build(),
        )
        .send()
        .await
        .expect("subnets");
    assert_eq!(
        subnets.subnets().len(),
        2,
        "the environment was built in the adopted VPC"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned_aws(&ec2, &name).await.is_empty());
}
