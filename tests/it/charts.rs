//! Charts from a Helm repository and an OCI registry on 127.0.0.1 (real `helm package`,
//! `helm repo index` and `helm push`; Python's http.server and Debian's docker-registry),
//! pinned in Git by digest: lock, render, a re-published version refused, vendor and an apply
//! with the repositories gone, and a chart folder's dependency from a repository rendered as
//! `helm dependency update` + `helm template` render it.

use std::collections::BTreeMap;

use crate::common::*;
use sha2::Digest;

fn remote(repository: &str, version: &str) -> String {
    format!("{{repository: \"{repository}\", name: hello, version: \"{version}\"}}")
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The documents of a render, without what names where they came from and which commit
/// (`# Source:` lines and the revision annotation).
fn normalized(render: &str) -> String {
    render
        .lines()
        .filter(|l| !l.starts_with("# Source:") && !l.contains("envboot.dev/revision:"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn remote_charts_are_locked_by_digest_and_a_republished_version_is_refused() {
    let servers =
        match ChartServers::start() {
            Ok(s) => s,
            Err(why) => return skipped(
                "charts::remote_charts_are_locked_by_digest_and_a_republished_version_is_refused",
                &why,
            ),
        };
    let archive = servers.publish(&project_root().join("modules/hello"));
    let name = unique("charts");
    let lock_path = format!("environments/{name}/charts.lock");
    let folder = Repo::new(&name, &chart_environment(&name, "hello"));
    let cache = tempfile::tempdir().expect("tempdir");
    let settings = with_chart_cache(unreachable(folder.path()), cache.path());
    let expected = normalized(
        &envboot(&folder, &settings, &["render", &name])
            .assert_ok()
            .stdout,
    );

    for repository in [&servers.repository, &servers.registry] {
        let repo = Repo::new(
            &name,
            &chart_environment(&name, &remote(repository, "0.1.0")),
        );
        // Nothing is fetched for a chart the lock does not pin: exit 3, at the release's line.
        let run = envboot(&repo, &settings, &["render", &name]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "environment.yaml:8:5: chart hello 0.1.0 from {repository} is not pinned in {lock_path}: run `envboot charts lock {name}`"
            )),
            "{}",
            run.stderr
        );

        let run = envboot(&repo, &settings, &["charts", "lock", &name]);
        run.assert_ok();
        assert!(run.stdout.contains("hello 0.1.0: added"), "{}", run.stdout);
        let lock = repo.read(&lock_path);
        assert!(
            lock.contains(&format!("digest: {}", digest(&archive))),
            "{lock}"
        );
        assert!(
            lock.contains(&format!("repository: {repository}")),
            "{lock}"
        );
        let again = envboot(&repo, &settings, &["charts", "lock", &name]);
        assert!(
            again.assert_ok().stdout.contains("is up to date"),
            "{}",
            again.stdout
        );
        repo.commit("pin the chart");

        // The remote chart renders exactly as the same chart from a folder.
        let rendered = envboot(&repo, &settings, &["render", &name]);
        assert_eq!(normalized(&rendered.assert_ok().stdout), expected);
    }

    // A second environment of the same repositories, for the refusals below.
    let http = Repo::new(
        &name,
        &chart_environment(&name, &remote(&servers.repository, "0.1.0")),
    );
    let oci = Repo::new(
        &name,
        &chart_environment(&name, &remote(&servers.registry, "0.1.0")),
    );
    for repo in [&http, &oci] {
        envboot(repo, &settings, &["charts", "lock", &name]).assert_ok();
        repo.commit("pin the chart");
    }

    // The same version published again with other content: refused, naming both digests,
    // once the cache no longer holds the pinned archive.
    let changed = tempfile::tempdir().expect("tempdir");
    copy_dir(&project_root().join("modules/hello"), changed.path());
    let configmap = changed.path().join("templates/configmap.yaml");
    let text = std::fs::read_to_string(&configmap).expect("read the template");
    std::fs::write(&configmap, text.replace("GREETING", "SALUTATION")).expect("write");
    let republished = servers.publish(changed.path());
    assert_ne!(digest(&republished), digest(&archive));
    std::fs::remove_dir_all(cache.path()).expect("empty the cache");
    for repo in [&http, &oci] {
        let run = envboot(repo, &settings, &["render", &name]);
        assert_eq!(run.code, 7, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&digest(&archive)) && run.stderr.contains(&digest(&republished)),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("refused"), "{}", run.stderr);
    }

    // A version the repository does not have: the nearest ones are named, nothing is written.
    for repository in [&servers.repository, &servers.registry] {
        let repo = Repo::new(
            &name,
            &chart_environment(&name, &remote(repository, "0.2.0")),
        );
        let run = envboot(&repo, &settings, &["charts", "lock", &name]);
        assert_eq!(run.code, 7, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("no version of chart `hello` that is 0.2.0 (nearest: 0.1.0)"),
            "{}",
            run.stderr
        );
        assert!(!repo.path().join(&lock_path).exists());
    }

    // What validate refuses before any fetch: a range, plain HTTP off loopback.
    for (chart, says) in [
        (
            remote(&servers.repository, "^0.1.0"),
            "is not an exact chart version",
        ),
        (remote("http://charts.example.com", "0.1.0"), "plain HTTP"),
    ] {
        let repo = Repo::new(&name, &chart_environment(&name, &chart));
        let run = envboot(&repo, &settings, &["validate", &name]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stderr.contains(says), "{}", run.stderr);
    }
}

#[test]
fn a_chart_folders_dependency_from_a_repository_renders_as_helm_dependency_update_does() {
    let servers = match ChartServers::start() {
        Ok(s) => s,
        Err(why) => {
            return skipped(
                "charts::a_chart_folders_dependency_from_a_repository_renders_as_helm_dependency_update_does",
                &why,
            )
        }
    };
    let archive = servers.publish(&project_root().join("modules/hello"));
    let name = unique("chartdeps");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: app\n    chart: app\n    namespace: {name}\n    values:\n      hello: {{greeting: From the parent}}\n"
    );
    let repo = Repo::new(&name, &env);
    let chart_yaml = format!(
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n  - name: hello\n    version: ^0.1.0\n    repository: {}\n",
        servers.repository
    );
    repo.write("modules/app/Chart.yaml", &chart_yaml);
    repo.commit("a chart with a dependency from a repository");
    let cache = tempfile::tempdir().expect("tempdir");
    let settings = with_chart_cache(unreachable(repo.path()), cache.path());

    let run = envboot(&repo, &settings, &["render", &name]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "modules/app/Chart.yaml:5:5: dependency hello ^0.1.0 from {} is not vendored in modules/app/charts/ and not pinned",
            servers.repository
        )),
        "{}",
        run.stderr
    );
    envboot(&repo, &settings, &["charts", "lock", &name]).assert_ok();
    let lock = repo.read(&format!("environments/{name}/charts.lock"));
    assert!(lock.contains("dependencyOf:\n  - modules/app"), "{lock}");
    assert!(lock.contains(&digest(&archive)), "{lock}");
    repo.commit("pin the dependency");
    let ours = envboot(&repo, &settings, &["render", &name]);
    let ours = documents(&ours.assert_ok().stdout);

    // helm: the repository added, `helm dependency update`, then `helm template`.
    let chart = tempfile::tempdir().expect("tempdir");
    std::fs::write(chart.path().join("Chart.yaml"), &chart_yaml).expect("write");
    servers.run_helm(&["repo", "add", "local", &servers.repository]);
    servers.run_helm(&[
        "dependency",
        "update",
        chart.path().to_str().expect("utf-8"),
    ]);
    let values = chart.path().join("given.yaml");
    std::fs::write(&values, "hello: {greeting: From the parent}\n").expect("write");
    let theirs = servers.run_helm(&[
        "template",
        "app",
        chart.path().to_str().expect("utf-8"),
        "--namespace",
        &name,
        "-f",
        values.to_str().expect("utf-8"),
    ]);
    let theirs = documents(&theirs);
    assert!(!theirs.is_empty());
    for (id, doc) in &theirs {
        let mine = ours
            .get(id)
            .unwrap_or_else(|| panic!("envboot did not render {id:?}: {:?}", ours.keys()));
        for field in ["data", "spec"] {
            assert_eq!(mine.get(field), doc.get(field), "{id:?} {field}");
        }
    }
}

/// The documents of a stream by (kind, name).
fn documents(text: &str) -> BTreeMap<(String, String), serde_yaml_ng::Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .filter_map(|d| serde_yaml_ng::Value::deserialize(d).ok())
        .filter(|v| v.get("kind").is_some())
        .map(|v| {
            let s = |v: Option<&serde_yaml_ng::Value>| {
                v.and_then(|v| v.as_str()).unwrap_or_default().to_string()
            };
            let name = s(v.get("metadata").and_then(|m| m.get("name")));
            ((s(v.get("kind")), name), v)
        })
        .collect()
}

#[tokio::test]
async fn vendored_charts_apply_with_the_repositories_and_the_cache_gone() {
    let sandbox = sandbox();
    let mut servers = match ChartServers::start() {
        Ok(s) => s,
        Err(why) => {
            return skipped(
                "charts::vendored_charts_apply_with_the_repositories_and_the_cache_gone",
                &why,
            )
        }
    };
    let archive = servers.publish(&project_root().join("modules/hello"));
    let name = unique("vendored");
    let repo = Repo::new(
        &name,
        &chart_environment(&name, &remote(&servers.registry, "0.1.0")),
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let settings = with_chart_cache(sandbox.settings().clone(), cache.path());
    envboot(&repo, &settings, &["charts", "lock", &name]).assert_ok();
    repo.commit("pin the chart");
    let run = envboot(&repo, &settings, &["charts", "vendor", &name]);
    assert!(
        run.assert_ok()
            .stdout
            .contains("vendor/charts/hello-0.1.0.tgz: hello 0.1.0"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(repo.path().join("vendor/charts/hello-0.1.0.tgz")).expect("vendored"),
        archive
    );
    repo.commit("vendor the chart");

    // Nothing to fetch from: the servers are stopped and the cache is gone.
    servers.stop();
    std::fs::remove_dir_all(cache.path()).expect("empty the cache");
    envboot(&repo, &settings, &["apply", &name]).assert_ok();
    let client = kube_client(&settings).await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, &name);
    let cm = cms
        .get("hello-config")
        .await
        .expect("the chart's ConfigMap");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("GREETING")
            .map(String::as_str),
        Some(format!("Hello from {name}").as_str())
    );
    let plan = envboot(&repo, &settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert!(!cache.path().exists(), "nothing was fetched into the cache");
    envboot(&repo, &settings, &["destroy", &name]).assert_ok();
}
