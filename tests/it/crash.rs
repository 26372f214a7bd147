//! Crash recovery: envboot is killed (SIGKILL) at many points of a large apply and of a destroy;
//! each rerun picks up where the dead one stopped. The end result equals an uninterrupted run of
//! the same environment: exactly one of every resource, nothing untagged, nothing left after
//! destroy. Counted with the AWS and Kubernetes APIs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};

use crate::common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::Api;

/// The network, three web tiers (a security group and an instance each), the hello chart and
/// twelve ConfigMaps: 19 AWS resources and about 20 Kubernetes objects.
fn large(name: &str, octet: u8) -> String {
    let mut text = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: network\n    module: network\n    inputs: {{cidr: 10.{octet}.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.{octet}.1.0/24, subnet_b_cidr: 10.{octet}.2.0/24}}\n"
    );
    for web in ["web1", "web2", "web3"] {
        text.push_str(&format!(
            "  - name: {web}\n    module: web-tier\n    inputs: {{vpc_id: '${{module.network.vpc_id}}', subnet_id: '${{module.network.subnet_b_id}}', ami: ami-03cf127a}}\n"
        ));
    }
    text.push_str(&format!(
        "cluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}-apps\nconfigMaps:\n"
    ));
    for i in 0..12 {
        text.push_str(&format!(
            "  - name: settings-{i}\n    namespace: {name}-apps\n    data: {{VPC: '${{module.network.vpc_id}}', WEB: '${{module.web1.private_ip}}'}}\n"
        ));
    }
    text
}

/// Runs `envboot <command> <name>` and kills it with SIGKILL after `after` completed changes
/// (0: right after the plan). Returns whether it was killed (false: it finished first).
fn run_and_kill(
    repo: &Repo,
    settings: &HashMap<String, String>,
    command: &str,
    name: &str,
    after: usize,
) -> bool {
    let mut child = spawn_json(repo, settings, &[command, name]);
    let stdout = child.stdout.take().expect("stdout");
    let mut changes = 0;
    let mut planned = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        match event["event"].as_str() {
            Some("plan") => planned = true,
            Some("change") if event["result"] != "unchanged" => changes += 1,
            _ => {}
        }
        if planned && changes >= after {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
    }
    child.wait().expect("wait");
    false
}

/// Every resource of the environment: AWS as (type, address), Kubernetes as kind/name with the
/// environment's name taken out of namespaces. Panics on a duplicate.
async fn inventory(settings: &HashMap<String, String>, name: &str) -> BTreeSet<String> {
    let ec2 = ec2(settings).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let owned = owned_aws(&ec2, name).await;
    for o in &owned.resources {
        *seen
            .entry(format!("aws {} {}", o.rtype, o.address))
            .or_default() += 1;
    }
    for (table, subnet, _) in &owned.route_table_associations {
        let subnet = owned
            .of("aws_subnet")
            .find(|s| &s.id == subnet)
            .map_or(subnet.as_str(), |s| s.address.as_str());
        *seen
            .entry(format!("aws route table association {table} {subnet}"))
            .or_default() += 1;
    }
    let client = kube_client(settings).await;
    let lp = labelled(name);
    let strip = |n: Option<String>| n.unwrap_or_default().replace(name, "ENV");
    for o in Api::<Namespace>::all(client.clone())
        .list(&lp)
        .await
        .expect("namespaces")
        .items
    {
        *seen
            .entry(format!("k8s Namespace {}", strip(o.metadata.name)))
            .or_default() += 1;
    }
    for o in Api::<ConfigMap>::all(client.clone())
        .list(&lp)
        .await
        .expect("configmaps")
        .items
    {
        *seen
            .entry(format!("k8s ConfigMap {}", strip(o.metadata.name)))
            .or_default() += 1;
    }
    for o in Api::<Deployment>::all(client.clone())
        .list(&lp)
        .await
        .expect("deployments")
        .items
    {
        *seen
            .entry(format!("k8s Deployment {}", strip(o.metadata.name)))
            .or_default() += 1;
    }
    for o in Api::<Service>::all(client.clone())
        .list(&lp)
        .await
        .expect("services")
        .items
    {
        *seen
            .entry(format!("k8s Service {}", strip(o.metadata.name)))
            .or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    seen.into_keys().collect()
}

/// AWS resources in the VPC with CIDR `10.<octet>.0.0/16` (the VPC included) that do not
/// carry the environment's tag; what AWS makes by itself for a VPC (its main route table and
/// default security group) does not count.
async fn untagged(settings: &HashMap<String, String>, octet: u8) -> Vec<String> {
    let ec2 = ec2(settings).await;
    let owned = |t: &[aws_sdk_ec2::types::Tag]| tags(t).contains_key("envboot:environment");
    let mut found = Vec::new();
    let vpcs = ec2.describe_vpcs().send().await.expect("DescribeVpcs");
    let ours: Vec<_> = vpcs
        .vpcs()
        .iter()
        .filter(|v| v.cidr_block() == Some(&format!("10.{octet}.0.0/16")))
        .collect();
    for v in &ours {
        let id = v.vpc_id().unwrap_or_default().to_string();
        if !owned(v.tags()) {
            found.push(format!("vpc {id}"));
        }
        let f = || {
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&id)
                .build()
        };
        for s in ec2
            .describe_subnets()
            .filters(f())
            .send()
            .await
            .expect("subnets")
            .subnets()
        {
            if !owned(s.tags()) {
                found.push(format!("subnet {:?}", s.subnet_id()));
            }
        }
        for g in ec2
            .describe_security_groups()
            .filters(f())
            .send()
            .await
            .expect("sgs")
            .security_groups()
        {
            if g.group_name() != Some("default") && !owned(g.tags()) {
                found.push(format!("security group {:?}", g.group_id()));
            }
        }
        for r in ec2
            .describe_route_tables()
            .filters(f())
            .send()
            .await
            .expect("rts")
            .route_tables()
        {
            let main = r.associations().iter().any(|a| a.main() == Some(true));
            if !main && !owned(r.tags()) {
                found.push(format!("route table {:?}", r.route_table_id()));
            }
        }
        let igws = ec2
            .describe_internet_gateways()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("attachment.vpc-id")
                    .values(&id)
                    .build(),
            )
            .send()
            .await
            .expect("igws");
        for g in igws.internet_gateways() {
            if !owned(g.tags()) {
                found.push(format!("internet gateway {:?}", g.internet_gateway_id()));
            }
        }
        for r in ec2
            .describe_instances()
            .filters(f())
            .send()
            .await
            .expect("instances")
            .reservations()
        {
            for i in r.instances() {
                let gone = i.state().and_then(|s| s.name())
                    == Some(&aws_sdk_ec2::types::InstanceStateName::Terminated);
                if !gone && !owned(i.tags()) {
                    found.push(format!("instance {:?}", i.instance_id()));
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_many_points_the_reruns_end_exactly_like_an_uninterrupted_run() {
    let shared = sandbox();
    let settings = shared.settings();

    // The reference: the same environment, applied once without interruption.
    let reference = unique("whole");
    let reference_repo = Repo::new(&reference, &large(&reference, 91));
    envboot(&reference_repo, settings, &["apply", &reference]).assert_ok();
    let expected = inventory(settings, &reference).await;
    let expected: BTreeSet<String> = expected
        .into_iter()
        .map(|e| e.replace(&reference, "ENV"))
        .collect();
    assert!(expected.len() >= 27, "a large environment: {expected:?}");

    // The same environment, killed again and again: after the plan, then after 1, 2, 3, 5, 8
    // and 13 changes of each rerun.
    let name = unique("killed");
    let repo = Repo::new(&name, &large(&name, 92));
    let mut kills = 0;
    for after in [0, 1, 2, 3, 5, 8, 13] {
        if run_and_kill(&repo, settings, "apply", &name, after) {
            kills += 1;
        }
        assert!(
            untagged(settings, 92).await.is_empty(),
            "untagged after a kill: {:?}",
            untagged(settings, 92).await
        );
    }
    assert!(kills >= 5, "envboot was killed mid-run {kills} times");
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let got: BTreeSet<String> = inventory(settings, &name)
        .await
        .into_iter()
        .map(|e| e.replace(&name, "ENV"))
        .collect();
    assert_eq!(
        got, expected,
        "the same resources as an uninterrupted run, once each"
    );
    assert!(untagged(settings, 92).await.is_empty());
    let plan = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged:\n{}{}", plan.stdout, plan.stderr);

    // Destroy, killed twice, then finished by a rerun: nothing is left.
    for after in [1, 4] {
        run_and_kill(&repo, settings, "destroy", &name, after);
    }
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(
        inventory(settings, &name).await.is_empty(),
        "nothing left after destroy"
    );
    assert!(
        untagged(settings, 92).await.is_empty(),
        "nothing untagged left after destroy"
    );
    let vpcs = ec2(settings)
        .await
        .describe_vpcs()
        .send()
        .await
        .expect("vpcs");
    assert!(
        !vpcs
            .vpcs()
            .iter()
            .any(|v| v.cidr_block() == Some("10.92.0.0/16")),
        "the VPC is gone"
    );

    envboot(&reference_repo, settings, &["destroy", &reference]).assert_ok();
}
