//! The nightly job: `recreate` builds a throwaway copy next to the live environment, verifies it,
//! destroys it and proves nothing leaked, with JUnit and JSON reports, never touching the original.

use crate::common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

#[tokio::test(flavor = "multi_thread")]
async fn recreate_rebuilds_a_copy_verifies_and_destroys_it_leaving_the_original_alone() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("nightly");
    let copy = format!("{name}-copy");
    let repo = sandbox_repo(&name);
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let ec2 = ec2(settings).await;
    let original = owned_aws(&ec2, &name).await;

    // A report folder that does not exist yet is created: the reports are the job's product.
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("nightly/reports");
    let dir = reports.to_str().expect("utf-8").to_string();
    let run = envboot(
        &repo,
        settings,
        &["recreate", &name, "--as", &copy, "--report-dir", &dir],
    );
    run.assert_ok();
    assert!(run.stdout.contains("Recreate passed"), "{}", run.stdout);

    let xml = std::fs::read_to_string(reports.join(format!("recreate-{copy}.xml")))
        .expect("JUnit report");
    assert!(xml.contains("tests=\"4\" failures=\"0\""), "{xml}");
    for phase in ["create", "verify", "destroy", "leak-check"] {
        assert!(xml.contains(&format!("name=\"{phase}\"")), "{xml}");
    }
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join(format!("recreate-{copy}.json")))
            .expect("JSON report"),
    )
    .expect("valid JSON");
    assert_eq!(json["ok"], true);
    assert_eq!(json["leaks"], serde_json::json!([]));
    assert_eq!(
        json["phases"][0]["message"], "12 created",
        "7 AWS resources, a namespace, a ConfigMap, the chart's ConfigMap, Deployment and Service: {json}"
    );
    // The copy's pods really ran: verify waited for their readiness, and says how long.
    let verified = json["phases"][1]["message"].as_str().unwrap_or_default();
    assert!(
        verified.contains("match Git and are ready (after waiting "),
        "{json}"
    );
    assert!(json["phases"][2]["seconds"].as_f64().is_some());

    assert!(owned_aws(&ec2, &copy).await.is_empty(), "the copy is gone");
    assert_eq!(
        owned_aws(&ec2, &name).await,
        original,
        "the original is untouched"
    );
    let client = kube_client(settings).await;
    Api::<ConfigMap>::namespaced(client, &format!("{name}-apps"))
        .get("app-settings")
        .await
        .expect("original ConfigMap");

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[test]
fn a_copy_that_never_becomes_ready_fails_the_job_but_is_still_destroyed() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("unready");
    let copy = format!("{name}-copy");
    // An image the node does not have: the copy's Deployment can never become ready.
    let repo = sandbox_repo(&name);
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "      greeting: Hello from",
        "      image: {tag: no-such-tag}\n      greeting: Hello from",
    );
    repo.commit("an image that does not exist");
    // A report folder that does not exist yet is created: the reports are the job's product.
    let tmp = tempfile::tempdir().expect("tempdir");
    let reports = tmp.path().join("nightly/reports");
    let dir = reports.to_str().expect("utf-8").to_string();
    let run = envboot(
        &repo,
        settings,
        &[
            "recreate",
            &name,
            "--as",
            &copy,
            "--report-dir",
            &dir,
            "--ready-timeout",
            "10s",
        ],
    );
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Deployment {copy}-{name}-apps/hello: "))
            && run.stdout.contains("ErrImageNeverPull"),
        "{}",
        run.stdout
    );
    let xml = std::fs::read_to_string(reports.join(format!("recreate-{copy}.xml")))
        .expect("JUnit report");
    assert!(
        xml.contains("failures=\"1\"") && xml.contains("<failure message=\"verify failed\">"),
        "{xml}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reports.join(format!("recreate-{copy}.json")))
            .expect("JSON report"),
    )
    .expect("valid JSON");
    assert_eq!(json["ok"], false);
    assert_eq!(json["phases"][2]["name"], "destroy");
    assert_eq!(json["phases"][2]["ok"], true);
    assert_eq!(
        json["leaks"],
        serde_json::json!([]),
        "destroyed all the same"
    );
}
