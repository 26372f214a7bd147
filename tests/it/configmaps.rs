//! ConfigMaps from inline data, files, whole folders (binary files as binaryData) and env files;
//! a content-hash name suffix with every reference in the environment's workloads rewritten, so
//! that a change of content rolls them; `render --output-dir`.

use crate::common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

fn environment(name: &str) -> String {
    format!(
        r#"apiVersion: envboot.dev/v1alpha1
kind: Environment
name: {name}
cloud: {{provider: aws, region: us-east-1}}
cluster: {{type: existing, context: envboot-sandbox}}
releases:
  - name: web
    chart: web
    namespace: {name}
configMaps:
  - name: web-config
    namespace: {name}
    hashSuffix: true
    data: {{MODE: production}}
    folders: [config/nginx]
    envFiles: [config/app.env]
"#
    )
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\n";
const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes:
        - name: config
          configMap: {name: web-config}
      containers:
        - name: web
          image: envboot.local/busybox:1.35
          imagePullPolicy: Never
          command: [sh, -c, "echo level $LEVEL; trap 'exit 0' TERM; sleep 3600 & wait"]
          envFrom: [{configMapRef: {name: web-config}}]
          env:
            - name: LEVEL
              valueFrom: {configMapKeyRef: {name: web-config, key: LOG_LEVEL}}
            - name: OTHER
              valueFrom: {configMapKeyRef: {name: not-ours, key: X, optional: true}}
"#;

fn repo(name: &str) -> Repo {
    let repo = Repo::new(name, &environment(name));
    repo.write("modules/web/Chart.yaml", CHART);
    repo.write("modules/web/templates/deployment.yaml", DEPLOYMENT);
    let dir = format!("environments/{name}/config");
    repo.write(
        &format!("{dir}/nginx/nginx.conf"),
        "server { listen 80; }\n",
    );
    repo.write(&format!("{dir}/nginx/sub/ignored.conf"), "not a key\n");
    repo.write(
        &format!("{dir}/app.env"),
        "# settings\nLOG_LEVEL=info\n\nGREETING=hello=world\n",
    );
    std::fs::write(
        repo.path().join(format!("{dir}/nginx/favicon.ico")),
        [0u8, 159, 146, 150, 255],
    )
    .expect("binary file");
    repo.commit("web with its config");
    repo
}

/// The environment's ConfigMaps (name to the object).
async fn config_maps(
    settings: &std::collections::HashMap<String, String>,
    ns: &str,
) -> Vec<ConfigMap> {
    Api::<ConfigMap>::namespaced(kube_client(settings).await, ns)
        .list(&labelled(ns))
        .await
        .expect("list")
        .items
}

fn referenced(deployment: &Deployment) -> Vec<String> {
    let spec = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let c = &spec.containers[0];
    let mut names = vec![spec.volumes.as_ref().expect("volumes")[0]
        .config_map
        .as_ref()
        .expect("configMap volume")
        .name
        .clone()];
    names.push(
        c.env_from.as_ref().expect("envFrom")[0]
            .config_map_ref
            .as_ref()
            .expect("ref")
            .name
            .clone(),
    );
    for e in c.env.as_ref().expect("env") {
        names.push(
            e.value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
                .expect("key ref")
                .name
                .clone(),
        );
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn folders_env_files_and_binary_files_with_a_hash_suffix_that_rolls_the_workload() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("configmaps");
    let repo = repo(&name);
    envboot(&repo, settings, &["apply", &name, "--wait", "120s"]).assert_ok();
    let client = kube_client(settings).await;
    let first_pods = pods(&client, &name, "app=web").await;
    assert_eq!(first_pods.len(), 1, "{first_pods:?}");

    let cms = config_maps(settings, &name).await;
    assert_eq!(cms.len(), 1, "{cms:?}");
    let cm = &cms[0];
    let first_name = cm.metadata.name.clone().expect("name");
    assert!(
        first_name.starts_with("web-config-") && first_name.len() == "web-config-".len() + 10,
        "{first_name}"
    );
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(data["MODE"], "production");
    assert_eq!(data["nginx.conf"], "server { listen 80; }\n");
    assert_eq!(data["LOG_LEVEL"], "info");
    assert_eq!(
        data["GREETING"], "hello=world",
        "split at the first `=` only"
    );
    assert!(
        !data.contains_key("ignored.conf"),
        "subfolders are not read"
    );
    let binary = cm.binary_data.clone().unwrap_or_default();
    assert_eq!(binary["favicon.ico"].0, vec![0u8, 159, 146, 150, 255]);

    let deployments = Api::<Deployment>::namespaced(kube_client(settings).await, &name);
    let web = deployments.get("web").await.expect("deployment");
    assert_eq!(
        referenced(&web),
        vec![
            first_name.clone(),
            first_name.clone(),
            first_name.clone(),
            "not-ours".to_string()
        ]
    );

    // Same content, same name: nothing to do.
    let plan = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    // New content: a new name, the workload rolls to it, the old ConfigMap is pruned.
    repo.edit(
        &format!("environments/{name}/config/app.env"),
        "LOG_LEVEL=info",
        "LOG_LEVEL=debug",
    );
    repo.commit("more logs");
    envboot(&repo, settings, &["apply", &name, "--wait", "120s"]).assert_ok();
    let cms = config_maps(settings, &name).await;
    assert_eq!(cms.len(), 1, "the old one is pruned: {cms:?}");
    let second_name = cms[0].metadata.name.clone().expect("name");
    assert_ne!(second_name, first_name);
    let web = deployments.get("web").await.expect("deployment");
    assert_eq!(
        referenced(&web)[..3],
        [
            second_name.clone(),
            second_name.clone(),
            second_name.clone()
        ]
    );
    // The rollout is real: a new pod runs with the new ConfigMap, and the old pod goes.
    await_pods_deleted(&client, &first_pods, std::time::Duration::from_secs(90)).await;
    let now = pods(&client, &name, "app=web").await;
    assert_eq!(now.len(), 1, "{now:?}");
    let pod = &now[0];
    assert_eq!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running"),
        "{pod:?}"
    );
    let env = &pod.spec.as_ref().expect("spec").containers[0].env;
    assert!(
        env.iter().flatten().any(|e| e
            .value_from
            .as_ref()
            .and_then(|v| v.config_map_key_ref.as_ref())
            .is_some_and(|r| r.name == second_name)),
        "{pod:?}"
    );

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[test]
fn render_writes_one_file_per_object_into_a_folder() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("outdir");
    let repo = repo(&name);
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("manifests");
    let run = envboot(
        &repo,
        settings,
        &[
            "render",
            &name,
            "--output-dir",
            dir.to_str().expect("utf-8 path"),
        ],
    );
    run.assert_ok();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[0], format!("001-namespace-{name}.yaml"));
    assert!(
        files[1].starts_with(&format!("002-configmap-{name}-web-config-")),
        "{files:?}"
    );
    assert_eq!(files[2], format!("003-deployment-{name}-web.yaml"));
    let deployment = std::fs::read_to_string(dir.join(&files[2])).expect("read");
    assert!(
        deployment.starts_with("# Source: modules/web/templates/deployment.yaml\n"),
        "{deployment}"
    );
    assert!(run.stderr.contains("wrote 3 files"), "{}", run.stderr);
}
