//! Servers restarted in the middle of a run: the kube-apiserver (its state survives in etcd) and
//! moto (which, like a region that lost everything, comes back empty). Whether the run in
//! progress rides through on retries or stops with an error, nothing is corrupted: a rerun
//! converges to exactly one of every resource, a plan after it is empty, and destroy leaves
//! nothing. The test runs its own private sandbox (other ports, its own folder) so that
//! restarting servers disturbs no other test.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};

use crate::common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

fn environment(name: &str) -> String {
    let mut text = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: network\n    module: network\n    inputs: {{cidr: 10.93.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.93.1.0/24, subnet_b_cidr: 10.93.2.0/24}}\n  - name: web\n    module: web-tier\n    inputs: {{vpc_id: '${{module.network.vpc_id}}', subnet_id: '${{module.network.subnet_a_id}}', ami: ami-03cf127a}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}-apps\nconfigMaps:\n"
    );
    for i in 0..30 {
        text.push_str(&format!(
            "  - name: settings-{i}\n    namespace: {name}-apps\n    data: {{VPC: '${{module.network.vpc_id}}'}}\n"
        ));
    }
    text
}

/// Runs `envboot apply`, and after `after` completed changes calls `interrupt` while the run
/// goes on; returns the run's exit code.
fn apply_interrupted(
    repo: &Repo,
    settings: &HashMap<String, String>,
    name: &str,
    after: usize,
    interrupt: impl FnOnce(),
) -> i32 {
    let mut child = spawn_json(repo, settings, &["apply", name]);
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut changes = 0;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["event"] == "change" && event["result"] != "unchanged" {
                changes += 1;
                if changes == after {
                    let _ = tx.send(());
                }
            }
        }
    });
    let interrupted = rx.recv().is_ok();
    if interrupted {
        interrupt();
    }
    let status = child.wait().expect("wait");
    reader.join().expect("reader");
    assert!(interrupted, "the run was interrupted mid-way");
    status.code().unwrap_or(-1)
}

/// AWS resources by address (each must be there once) and the environment's ConfigMaps.
async fn counts(
    settings: &HashMap<String, String>,
    name: &str,
) -> (BTreeMap<String, usize>, usize) {
    let aws = owned_aws(&ec2(settings).await, name)
        .await
        .count_by_address();
    let cms = Api::<ConfigMap>::all(kube_client(settings).await)
        .list(&labelled(name))
        .await
        .expect("list")
        .items
        .len();
    (aws, cms)
}

async fn assert_converged(settings: &HashMap<String, String>, repo: &Repo, name: &str) {
    let (aws, cms) = counts(settings, name).await;
    assert_eq!(aws.len(), 7, "every AWS resource: {aws:?}");
    assert!(aws.values().all(|n| *n == 1), "no duplicates: {aws:?}");
    assert_eq!(cms, 31, "30 ConfigMaps and the chart's");
    let plan = envboot(repo, settings, &["plan", name, "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 0,
        "nothing left to do:\n{}{}",
        plan.stdout, plan.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restarted_mid_run_corrupts_nothing_and_the_rerun_converges() {
    let private = PrivateSandbox::start();
    let settings = &private.settings;
    let name = unique("restart");
    let repo = Repo::new(&name, &environment(&name));

    // The API server dies and comes back while envboot applies ConfigMaps.
    let code = apply_interrupted(&repo, settings, &name, 10, || {
        private.restart("kube-apiserver")
    });
    eprintln!("apply during the API server's restart exited {code}");
    assert!(
        code == 0 || code == 1,
        "succeeded or failed cleanly: {code}"
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    assert_converged(settings, &repo, &name).await;

    // moto dies and comes back empty while envboot applies a change.
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "ami: ami-03cf127a",
        "ami: ami-03cf127a, instance_type: t3.small",
    );
    repo.commit("a bigger web server");
    let code = apply_interrupted(&repo, settings, &name, 1, || private.restart("moto"));
    eprintln!("apply during moto's restart exited {code}");
    assert!(
        code == 0 || code == 1,
        "succeeded or failed cleanly: {code}"
    );
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    assert_converged(settings, &repo, &name).await;

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let (aws, cms) = counts(settings, &name).await;
    assert!(aws.is_empty() && cms == 0, "nothing left: {aws:?}, {cms}");
}
