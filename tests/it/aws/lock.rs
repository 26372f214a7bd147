//! The lock of an environment without a cluster lives in AWS (a key pair named
//! `envboot-lock-<environment>`, created atomically): while one apply holds it, a second run
//! stops at once (exit 5) naming the holder, and changes nothing.

use std::io::{Read, Write};

use crate::common::*;

/// An environment with only AWS resources: the project's network module.
fn aws_only(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: network\n    module: network\n    inputs: {{cidr: 10.61.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.61.1.0/24, subnet_b_cidr: 10.61.2.0/24}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_applies_of_an_aws_only_environment_never_run_at_once() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awslock");
    let repo = Repo::new(&name, &aws_only(&name));
    let ec2 = ec2(settings).await;

    // The first apply runs on a terminal and stops at the question, holding the lock.
    let mut first = on_terminal_command(&repo, settings, &["apply", &name], "")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start script (util-linux)");
    let mut out = first.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Enter a value") {
        let n = out.read(&mut buf).expect("read the first run");
        assert!(
            n > 0,
            "the first run ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }

    // The second is refused at once, and creates nothing.
    let second = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(second.code, 5, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("environment `{name}` is locked by envboot apply")),
        "{}",
        second.stderr
    );
    assert!(
        owned_aws(&ec2, &name).await.is_empty(),
        "nothing created yet"
    );

    // The first goes ahead once approved, and gives the lock back.
    first
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"yes\n")
        .expect("answer");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("read");
    let status = first.wait().expect("wait");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Apply complete"), "{rest}");
    assert!(!owned_aws(&ec2, &name).await.is_empty());
    let keys = ec2
        .describe_key_pairs()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("key-name")
                .values(format!("envboot-lock-{name}"))
                .build(),
        )
        .send()
        .await
        .expect("describe key pairs");
    assert!(keys.key_pairs().is_empty(), "the lock was released");

    // Now a second run gets it, and finds nothing to do.
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(owned_aws(&ec2, &name).await.is_empty());
}
