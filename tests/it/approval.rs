//! Terraform's approval and saved-plan workflow: apply and destroy ask on a terminal and go
//! ahead only on `yes`; without a terminal they need `--auto-approve`; `plan --out FILE` saves
//! a plan that `apply FILE` applies exactly, and refuses once the live environment moved.

use crate::common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};

fn config_maps(name: &str, level: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nconfigMaps:\n  - {{name: settings, namespace: {name}, data: {{LOG_LEVEL: {level}}}}}\n"
    )
}

/// Runs `envboot ARGS --repo REPO REDIRECT` on a real pseudo-terminal, typing `answer` at it.
fn on_terminal(
    repo: &Repo,
    settings: &std::collections::HashMap<String, String>,
    args: &[&str],
    answer: &str,
    redirect: &str,
) -> Run {
    use std::io::Write;
    let mut child = on_terminal_command(repo, settings, args, redirect)
        .spawn()
        .expect("start script (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{answer}\n").as_bytes())
        .expect("answer");
    child.wait_with_output().expect("run on a terminal").into()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_and_destroy_ask_and_do_nothing_unless_the_answer_is_yes() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("ask");
    let repo = Repo::new(&name, &config_maps(&name, "debug"));
    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &name);

    // No terminal, no --auto-approve: refused before any write, saying what to add.
    let run = Envboot::new(settings)
        .args(["apply", &name])
        .repo(&repo)
        .asking()
        .run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert!(cms.get_opt("settings").await.expect("get").is_none());

    // A terminal answered `no`: the plan is shown, the question asked, nothing done.
    let run = on_terminal(&repo, settings, &["apply", &name], "no", "");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Do you want to perform these actions?"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("+ ConfigMap {name}/settings")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Apply cancelled"), "{}", run.stdout);
    assert!(cms.get_opt("settings").await.expect("get").is_none());

    // `yes` applies. Standard error redirected away loses none of the steps: the progress bar
    // and the lines above it are on standard output.
    let err = tempfile::NamedTempFile::new().expect("temp file");
    let redirect = format!("2>{}", err.path().display());
    let run = on_terminal(&repo, settings, &["apply", &name], "yes", &redirect);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Apply complete"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("+ ConfigMap {name}/settings: created")),
        "{}",
        run.stdout
    );
    assert!(cms.get_opt("settings").await.expect("get").is_some());

    // Destroy asks too, and without a terminal refuses.
    let run = Envboot::new(settings)
        .args(["destroy", &name])
        .repo(&repo)
        .asking()
        .run();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(cms.get_opt("settings").await.expect("get").is_some());
    let run = on_terminal(&repo, settings, &["destroy", &name], "no", "");
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Destroy cancelled"), "{}", run.stdout);
    assert!(cms.get_opt("settings").await.expect("get").is_some());
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    assert!(cms.get_opt("settings").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_exactly_and_a_stale_one_is_refused() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("saved");
    let repo = Repo::new(&name, &config_maps(&name, "debug"));
    let client = kube_client(settings).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, &name);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("reviewed.plan.json");
    let file = file.to_str().expect("utf-8 path");

    // Reviewed, then applied without a question (no terminal, no --auto-approve).
    let run = envboot(&repo, settings, &["plan", &name, "--out", file]);
    run.assert_ok();
    assert!(run.stderr.contains("Saved the plan"), "{}", run.stderr);
    let run = Envboot::new(settings)
        .args(["apply", file])
        .repo(&repo)
        .asking()
        .run();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("+ ConfigMap {name}/settings: created")),
        "{}",
        run.stdout
    );
    let level = |cm: ConfigMap| cm.data.unwrap_or_default()["LOG_LEVEL"].clone();
    assert_eq!(level(cms.get("settings").await.expect("get")), "debug");

    // Applied once, the same file is stale: what it was made against is gone.
    let run = envboot(&repo, settings, &["apply", file]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("is stale"), "{}", run.stderr);

    // A new commit is planned and saved; then someone changes the object by hand: refused,
    // and nothing is written (the hand edit stays).
    repo.write(
        &format!("environments/{name}/environment.yaml"),
        &config_maps(&name, "info"),
    );
    repo.commit("info");
    envboot(&repo, settings, &["plan", &name, "--out", file]).assert_ok();
    let saved = std::fs::read_to_string(file).expect("read the plan");
    assert!(saved.contains("\"commit\""), "{saved}");
    cms.patch(
        "settings",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(&serde_json::json!({"data": {"LOG_LEVEL": "trace"}})),
    )
    .await
    .expect("edit by hand");
    let run = envboot(&repo, settings, &["apply", file]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("the live environment changed"),
        "{}",
        run.stderr
    );
    assert_eq!(level(cms.get("settings").await.expect("get")), "trace");

    // A fresh plan of the same commit applies, and leaves the commit's value.
    envboot(&repo, settings, &["plan", &name, "--out", file]).assert_ok();
    envboot(&repo, settings, &["apply", file]).assert_ok();
    assert_eq!(level(cms.get("settings").await.expect("get")), "info");

    // Markdown for a pull request.
    let run = envboot(&repo, settings, &["plan", &name, "--output", "markdown"]);
    run.assert_ok();
    assert!(
        run.stdout
            .starts_with(&format!("### envboot plan: `{name}`")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("**No changes.**"), "{}", run.stdout);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
