//! What apply renders is what `helm install` renders for the same cluster: `.Capabilities` from
//! the cluster's discovery, `lookup` reading the live cluster, and generated values derived from
//! the environment's age identity (the same from one plan to the next). Checked against the real
//! `helm install --dry-run=server` on the sandbox.

use std::collections::{BTreeMap, HashMap};

use crate::common::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};

const CHART: &str = "apiVersion: v2\nname: facts\nversion: 0.1.0\n";

/// Everything `helm install` answers from the cluster, in one ConfigMap (and a generated value).
const TEMPLATE: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: facts
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  minor: {{ .Capabilities.KubeVersion.Minor | quote }}
  deployments: {{ .Capabilities.APIVersions.Has "apps/v1/Deployment" | quote }}
  scale: {{ .Capabilities.APIVersions.Has "apps/v1/Scale" | quote }}
  widgets: {{ .Capabilities.APIVersions.Has "example.com/v1" | quote }}
  {{- $cm := lookup "v1" "ConfigMap" .Values.theirs "handmade" }}
  colour: {{ dig "data" "colour" "absent" $cm | quote }}
  {{- $gone := lookup "v1" "ConfigMap" .Values.theirs "no-such-thing" }}
  gone: {{ len $gone | quote }}
  {{- $ns := lookup "v1" "Namespace" "" .Values.theirs }}
  namespace: {{ $ns.metadata.name | quote }}
  {{- $listed := lookup "v1" "ConfigMap" .Values.theirs "" }}
  listed: {{ range $listed.items }}{{ if eq .metadata.name "handmade" }}{{ .kind }}{{ end }}{{ end }}
  password: {{ randAlphaNum 24 | quote }}
  ca: {{ (genCA "facts-ca" 365).Cert | quote }}
  upgrade: {{ .Release.IsUpgrade | quote }}
"#;

fn environment(name: &str, theirs: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: facts\n    chart: facts\n    namespace: {name}\n    values: {{theirs: {theirs}}}\n"
    )
}

/// The `data` of the ConfigMap `helm install --dry-run=server` would create.
fn helm_install_dry_run(
    helm: &str,
    chart: &std::path::Path,
    namespace: &str,
    theirs: &str,
    settings: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    let out = std::process::Command::new(helm)
        .args(["install", "facts"])
        .arg(chart)
        .args([
            "--dry-run=server",
            "--namespace",
            namespace,
            "--create-namespace",
        ])
        .args(["--kube-context", "envboot-sandbox", "--set"])
        .arg(format!("theirs={theirs}"))
        .env_clear()
        .envs(settings)
        .env("HOME", chart)
        .output()
        .expect("run helm");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = text
        .split("MANIFEST:\n")
        .nth(1)
        .and_then(|m| m.split("\nNOTES:").next())
        .unwrap_or_default();
    let doc = manifest
        .split("\n---")
        .find(|d| d.contains("kind: ConfigMap"))
        .expect("the ConfigMap in helm's manifest");
    let doc = doc
        .lines()
        .filter(|l| !l.starts_with("# Source"))
        .collect::<Vec<_>>()
        .join("\n");
    let cm: ConfigMap = serde_yaml_ng::from_str(&doc).expect("helm's ConfigMap");
    cm.data.unwrap_or_default().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_renders_for_the_cluster_as_helm_install_does() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("install");
    let theirs = format!("{name}-theirs");
    let client = kube_client(settings).await;

    // What the chart looks up: someone else's namespace and ConfigMap, not envboot's.
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": theirs}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create their namespace");
    let handmade: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "handmade"}, "data": {"colour": "blue"}}),
    )
    .expect("cm");
    Api::<ConfigMap>::namespaced(client.clone(), &theirs)
        .create(&PostParams::default(), &handmade)
        .await
        .expect("create their ConfigMap");

    let repo = Repo::new(&name, &environment(&name, &theirs));
    repo.write("modules/facts/Chart.yaml", CHART);
    repo.write("modules/facts/templates/facts.yaml", TEMPLATE);
    repo.commit("the facts chart");

    // Generated values derive from the environment's key: without one, plan says so.
    let r = envboot(&repo, settings, &["plan", &name]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("release `facts` draws random values")
            && r.stderr.contains("ENVBOOT_AGE_IDENTITY"),
        "{}",
        r.stderr
    );
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let mut with_key = settings.clone();
    with_key.insert(
        "ENVBOOT_AGE_IDENTITY".into(),
        identity.to_string().expose_secret().to_string(),
    );

    envboot(&repo, &with_key, &["apply", &name]).assert_ok();
    let live: BTreeMap<String, String> = Api::<ConfigMap>::namespaced(client.clone(), &name)
        .get("facts")
        .await
        .expect("the facts ConfigMap")
        .data
        .unwrap_or_default()
        .into_iter()
        .collect();
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(live["kubeVersion"], version.git_version, "{live:?}");
    assert_eq!(live["minor"], version.minor);
    assert_eq!(live["deployments"], "true");
    assert_eq!(
        live["scale"], "true",
        "subresources' kinds count, as in Helm"
    );
    assert_eq!(live["widgets"], "false");
    assert_eq!(live["colour"], "blue");
    assert_eq!(live["gone"], "0");
    assert_eq!(live["namespace"], theirs);
    assert_eq!(live["listed"], "ConfigMap");
    assert_eq!(live["password"].len(), 24);

    assert_eq!(live["upgrade"], "false", "the first apply installs");

    // The release is installed now: the next render is an upgrade, as `helm upgrade` renders it
    // (a chart that renders differently on upgrade changes once, as under Helm), and the same
    // key renders the same generated value.
    let r = envboot(&repo, &with_key, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    envboot(&repo, &with_key, &["apply", &name]).assert_ok();
    let upgraded = Api::<ConfigMap>::namespaced(client.clone(), &name)
        .get("facts")
        .await
        .expect("the facts ConfigMap")
        .data
        .unwrap_or_default();
    assert_eq!(upgraded["upgrade"], "true");
    assert_eq!(upgraded["password"], live["password"]);
    assert_eq!(
        upgraded["ca"], live["ca"],
        "a derived certificate stays the same"
    );
    assert!(live["ca"].starts_with("-----BEGIN CERTIFICATE-----\n"));
    // and then nothing is left to do
    let r = envboot(&repo, &with_key, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // `render` (no cluster) is `helm template`: lookups are empty there, and this chart, which
    // needs what one finds, fails as it fails in `helm template`.
    let r = envboot(&repo, &with_key, &["render", &name]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("at <$ns.metadata.name>:\n    nil pointer evaluating interface {}.name"),
        "{}",
        r.stderr
    );

    // helm install against the same cluster renders the same facts (its password is its own).
    match helm() {
        Err(why) => skipped(
            "install::apply_renders_for_the_cluster_as_helm_install_does (helm part)",
            &format!("no helm binary: {why}"),
        ),
        Ok(helm) => {
            let mut from_helm = helm_install_dry_run(
                &helm,
                &repo.path().join("modules/facts"),
                &format!("{name}-helm"),
                &theirs,
                settings,
            );
            let mut ours = live.clone();
            assert_eq!(from_helm.remove("password").map(|p| p.len()), Some(24));
            ours.remove("password");
            let theirs_ca = from_helm.remove("ca").unwrap_or_default();
            assert!(theirs_ca.starts_with("-----BEGIN CERTIFICATE-----\n"));
            ours.remove("ca");
            assert_eq!(ours, from_helm);
        }
    }

    envboot(&repo, &with_key, &["destroy", &name]).assert_ok();
    // what was not envboot's is still there
    Api::<ConfigMap>::namespaced(client.clone(), &theirs)
        .get("handmade")
        .await
        .expect("their ConfigMap is left alone");
    Api::<Namespace>::all(client)
        .delete(&theirs, &Default::default())
        .await
        .expect("delete their namespace");
}

/// Objects of a YAML stream, read as `helm install` reads them (sigs.k8s.io/yaml), by
/// `Kind namespace/name`, with what envboot adds (its labels and annotation, the namespace it
/// places objects in) taken out.
fn objects_of(stream: &str) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for doc in stream.split("\n---") {
        let Ok(mut o) = envboot_helm::manifest::to_json(doc) else {
            continue;
        };
        if !o.is_object() {
            continue;
        }
        let key = format!(
            "{} {}",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        );
        if let Some(md) = o["metadata"].as_object_mut() {
            md.remove("namespace");
            for field in ["labels", "annotations"] {
                if let Some(m) = md.get_mut(field).and_then(|m| m.as_object_mut()) {
                    m.retain(|k, _| !k.starts_with("envboot.dev/"));
                }
                // envboot writes its own into an empty or null map
                if md
                    .get(field)
                    .is_some_and(|m| m.is_null() || m.as_object().is_some_and(|m| m.is_empty()))
                {
                    md.remove(field);
                }
            }
        }
        // a Secret's values are printed as `(sensitive)`: compare its keys
        if o["kind"] == "Secret" {
            for field in ["data", "stringData"] {
                if let Some(m) = o.get_mut(field).and_then(|m| m.as_object_mut()) {
                    m.values_mut()
                        .for_each(|v| *v = serde_json::json!("(value)"));
                }
            }
        }
        out.insert(key, o);
    }
    out
}

/// Whether a chart draws random values (its objects then differ between any two renders).
fn draws_random(chart: &std::path::Path) -> bool {
    fn walk(dir: &std::path::Path) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    return walk(&p);
                }
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                [
                    "rand",
                    "uuidv4",
                    "shuffle",
                    "genCA",
                    "genSelfSigned",
                    "genSigned",
                    "genPrivateKey",
                ]
                .iter()
                .any(|w| text.contains(w))
            })
    }
    walk(chart)
}

/// Every chart of the corpus (../shared/helm-corpus/charts), rendered by `envboot render
/// --cluster` and by the real `helm install --dry-run=server` against the same API server,
/// gives the same objects (random values aside), or both refuse it.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_charts_render_for_the_cluster_as_helm_install_does() {
    let corpus = project_root().join("../shared/helm-corpus/charts");
    if !corpus.is_dir() {
        skipped(
            "install::corpus_charts_render_for_the_cluster_as_helm_install_does",
            "../shared/helm-corpus/charts not found",
        );
        return;
    }
    let helm = match helm() {
        Ok(h) => h,
        Err(why) => {
            skipped(
                "install::corpus_charts_render_for_the_cluster_as_helm_install_does",
                &format!("no helm binary: {why}"),
            );
            return;
        }
    };
    let shared = sandbox();
    let settings = shared.settings();
    let mut charts: Vec<String> = std::fs::read_dir(&corpus)
        .expect("the corpus")
        .flatten()
        .filter(|e| e.path().join("Chart.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    charts.sort();
    let prefix = unique("corpus");
    let mut envs = Vec::new();
    let repo = Repo::new(&format!("{prefix}-0"), "");
    for (i, chart) in charts.iter().enumerate() {
        let env = format!("{prefix}-{i}");
        copy_dir(
            &corpus.join(chart),
            &repo.path().join("modules").join(chart),
        );
        repo.write(
            &format!("environments/{env}/environment.yaml"),
            &format!("apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {env}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: rel\n    chart: {chart}\n    namespace: {env}\n"),
        );
        envs.push(env);
    }
    repo.commit("the corpus's charts");

    let (mut same, mut refused) = (Vec::new(), Vec::new());
    let mut differ = Vec::new();
    for (chart, env) in charts.iter().zip(&envs) {
        let ours = envboot(&repo, settings, &["render", env, "--cluster"]);
        let theirs = std::process::Command::new(&helm)
            .args(["install", "rel"])
            .arg(repo.path().join("modules").join(chart))
            .args(["--dry-run=server", "--namespace", env, "--create-namespace"])
            .args(["--kube-context", "envboot-sandbox"])
            .env_clear()
            .envs(settings)
            .env("HOME", repo.path())
            .output()
            .expect("run helm");
        let helm_out = String::from_utf8_lossy(&theirs.stdout).into_owned();
        match (ours.code, theirs.status.success()) {
            (0, true) => {
                let sections = helm_out
                    .split_once("HOOKS:\n")
                    .map_or(helm_out.as_str(), |(_, rest)| rest);
                let sections = sections.split("\nNOTES:").next().unwrap_or_default();
                let helm_objects = objects_of(&sections.replace("MANIFEST:\n", "---\n"));
                let mut our_objects = objects_of(&ours.stdout);
                // the release's namespace, which envboot creates (helm: --create-namespace)
                our_objects.remove(&format!("Namespace {env}"));
                if std::env::var_os("ENVBOOT_TEST_SHOW_DIFF").is_some() {
                    for (k, v) in &helm_objects {
                        if our_objects.get(k) != Some(v) {
                            eprintln!("{chart} {k}\n  helm: {v}\n  ours: {:?}", our_objects.get(k));
                        }
                    }
                }
                let random = draws_random(&repo.path().join("modules").join(chart));
                let agree = if random {
                    helm_objects.keys().eq(our_objects.keys())
                } else {
                    helm_objects == our_objects
                };
                if agree && !helm_objects.is_empty() {
                    same.push(chart.clone());
                } else {
                    let only: Vec<_> = helm_objects
                        .iter()
                        .filter(|(k, v)| our_objects.get(*k) != Some(v))
                        .map(|(k, _)| k.clone())
                        .chain(
                            our_objects
                                .keys()
                                .filter(|k| !helm_objects.contains_key(*k))
                                .cloned(),
                        )
                        .collect();
                    differ.push(format!("{chart}: objects differ: {only:?}"));
                }
            }
            (0, false) => differ.push(format!(
                "{chart}: helm refuses, envboot renders: {}",
                String::from_utf8_lossy(&theirs.stderr).trim()
            )),
            (_, true) => differ.push(format!(
                "{chart}: envboot refuses (exit {}), helm renders: {}",
                ours.code,
                ours.stderr.trim()
            )),
            (_, false) => refused.push(format!(
                "{chart}: helm: {} / envboot: {}",
                String::from_utf8_lossy(&theirs.stderr).trim(),
                ours.stderr.trim()
            )),
        }
    }
    eprintln!(
        "corpus against the cluster: {} same, {} refused by both, {} differ",
        same.len(),
        refused.len(),
        differ.len()
    );
    for r in &refused {
        eprintln!("  refused: {r}");
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert!(same.len() > charts.len() / 2, "{same:?}");

    // what the cluster's schema refuses, plan refuses before anything is sent (exit 3)
    if let Some(i) = charts
        .iter()
        .position(|c| c == "prometheus-windows-exporter")
    {
        let r = envboot(&repo, settings, &["plan", &envs[i]]);
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(
                "unknown field \"hostProcess\" in io.k8s.api.core.v1.WindowsSecurityContextOptions"
            ),
            "{}",
            r.stderr
        );
    }
}
