//! Secrets: age-encrypted in Git, decrypted only in memory, applied as Kubernetes Secrets, and
//! never shown: every line envboot prints during a full lifecycle is searched for the plaintext.

use std::collections::HashMap;

use crate::common::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

const PASSWORD: &str = "correct-horse-battery-staple-7f3a";
const CHANGED: &str = "tr0ub4dor-and-3-second-value-91bc";

fn environment(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nsecrets:\n  - name: db-credentials\n    namespace: {name}\n    file: secrets/db.yaml.age\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}\n    values:\n      greeting: \"postgres://app:${{secret.db-credentials.password}}@db\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_applied_from_encrypted_files_and_never_printed() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("secret");
    let identity = age::x25519::Identity::generate();
    let repo = Repo::new(&name, &environment(&name));
    repo.write(
        ".age-recipients",
        &format!("# the team\n{}\n", identity.to_public()),
    );

    // The plaintext lives outside the repository; only the encrypted file is committed.
    let outside = tempfile::tempdir().expect("tempdir");
    let plain = outside.path().join("db.yaml");
    std::fs::write(&plain, format!("username: app\npassword: {PASSWORD}\n")).expect("write");
    let encrypted = repo
        .path()
        .join(format!("environments/{name}/secrets/db.yaml.age"));
    std::fs::create_dir_all(encrypted.parent().expect("parent")).expect("mkdir");
    // Run in the repository: it encrypts to the recipients of the `.age-recipients` there.
    let encrypt = || {
        Envboot::new(settings)
            .args(["secret", "encrypt"])
            .arg(&plain)
            .arg("--output")
            .arg(&encrypted)
            .current_dir(repo.path())
            .run()
    };
    encrypt().assert_ok();
    assert!(!repo
        .read(&format!("environments/{name}/secrets/db.yaml.age"))
        .contains(PASSWORD));
    repo.commit("add the database secret");

    use age::secrecy::ExposeSecret;
    let mut with_key: HashMap<String, String> = settings.clone();
    with_key.insert(
        "ENVBOOT_AGE_IDENTITY".into(),
        identity.to_string().expose_secret().to_string(),
    );
    let printed = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], settings: &HashMap<String, String>| {
        let r = envboot(&repo, settings, args);
        printed.borrow_mut().push_str(&r.stdout);
        printed.borrow_mut().push_str(&r.stderr);
        r
    };

    // Without the identity: an input error naming where the secret is declared, no API call.
    let r = run(&["plan", &name], settings);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "environments/{name}/environment.yaml:9:5: no age identity"
        )),
        "{}",
        r.stderr
    );

    // validate still checks everything else, and says what it could not.
    let r = run(&["validate", &name], settings);
    r.assert_ok();
    assert!(
        r.stdout
            .contains("Encrypted files were not decrypted (no age identity"),
        "{}",
        r.stdout
    );
    let r = run(&["validate", &name], &with_key);
    r.assert_ok();
    assert!(!r.stdout.contains("not decrypted"), "{}", r.stdout);

    run(&["render", &name], &with_key).assert_ok();
    let r = run(&["apply", &name], &with_key);
    r.assert_ok();
    let client = kube_client(settings).await;
    let secret = Api::<Secret>::namespaced(client.clone(), &name)
        .get("db-credentials")
        .await
        .expect("secret");
    let data = secret.data.unwrap_or_default();
    assert_eq!(data["password"].0, PASSWORD.as_bytes());
    assert_eq!(data["username"].0, b"app");
    // A chart value from the secret reaches the chart (here, its ConfigMap)...
    let config = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &name)
        .get("hello-config")
        .await
        .expect("chart's ConfigMap");
    assert_eq!(
        config.data.unwrap_or_default()["GREETING"],
        format!("postgres://app:{PASSWORD}@db")
    );
    // ...but no secret is in a label or an annotation of anything the environment owns.
    let owned = labelled(&name);
    let mut metadata = String::new();
    for m in Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &name)
        .list(&owned)
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| &o.metadata)
        .chain(
            Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &name)
                .list(&owned)
                .await
                .expect("list")
                .items
                .iter()
                .map(|o| &o.metadata),
        )
    {
        metadata.push_str(&format!("{:?}{:?}", m.labels, m.annotations));
    }
    assert!(metadata.contains("envboot.dev/environment"));
    assert!(!metadata.contains(PASSWORD), "{metadata}");

    // A changed value: the plan says the field changes, but not from what to what.
    std::fs::write(&plain, format!("username: app\npassword: {CHANGED}\n")).expect("write");
    let r = encrypt();
    r.assert_ok();
    printed.borrow_mut().push_str(&r.stdout);
    printed.borrow_mut().push_str(&r.stderr);
    repo.commit("rotate the password");
    let r = run(&["plan", &name], &with_key);
    r.assert_ok();
    assert!(
        r.stdout
            .contains("~ data.password: (sensitive) -> (sensitive)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("~ data.GREETING: (sensitive) -> (sensitive)"),
        "a field a chart value from a secret reaches is masked whole: {}",
        r.stdout
    );
    // A saved plan holds no secret in plain text either.
    let saved = tempfile::tempdir().expect("temp dir");
    let file = saved.path().join("rotate.plan");
    run(
        &["plan", &name, "--out", file.to_str().expect("utf-8")],
        &with_key,
    )
    .assert_ok();
    let text = std::fs::read_to_string(&file).expect("the saved plan");
    assert!(
        !text.contains(CHANGED) && !text.contains(PASSWORD),
        "{text}"
    );
    assert!(text.contains("(sensitive)"), "{text}");
    run(&["apply", &name], &with_key).assert_ok();
    let secret = Api::<Secret>::namespaced(client.clone(), &name)
        .get("db-credentials")
        .await
        .expect("secret");
    assert_eq!(
        secret.data.unwrap_or_default()["password"].0,
        CHANGED.as_bytes()
    );
    run(&["drift", &name], &with_key);
    run(&["plan", &name, "--output", "json"], &with_key);

    // Another identity cannot decrypt it.
    let mut wrong = settings.clone();
    wrong.insert(
        "ENVBOOT_AGE_IDENTITY".into(),
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_string(),
    );
    let r = run(&["plan", &name], &wrong);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("cannot decrypt"), "{}", r.stderr);

    run(&["destroy", &name], &with_key).assert_ok();
    let printed = printed.into_inner();
    for value in [PASSWORD, CHANGED] {
        assert!(
            !printed.contains(value),
            "a secret value was printed:\n{printed}"
        );
        let encoded = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        };
        assert!(
            !printed.contains(&encoded[..20]),
            "a secret value was printed in base64:\n{printed}"
        );
    }
    assert!(
        printed.contains("(sensitive)"),
        "values are shown as (sensitive)"
    );
}

/// What a chart does to a secret value does not hide it from envboot: every field that derives
/// from it is `(sensitive)` in render's output and files, and no transformed form is printed.
#[test]
fn secrets_transformed_by_a_chart_are_sensitive_wherever_they_land() {
    const TOKEN: &str = "Zq9-tokenvalue-\"quoted\"-x7";
    let name = "taint";
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nsecrets:\n  - name: api\n    namespace: {name}\n    file: secrets/api.yaml.age\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}\n    values:\n      token: \"${{secret.api.token}}\"\n"
    );
    let repo = Repo::new(name, &env);
    let identity = age::x25519::Identity::generate();
    repo.write(".age-recipients", &format!("{}\n", identity.to_public()));
    repo.write(
        "modules/hello/templates/derived.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: derived
data:
  upper: {{ .Values.token | upper | quote }}
  twice: {{ .Values.token | b64enc | b64enc | quote }}
  json: {{ dict "t" .Values.token | toJson | quote }}
  query: {{ .Values.token | urlquery | quote }}
  short: {{ .Values.token | trunc 3 | quote }}
  {{- range $i, $c := splitList "" .Values.token }}
  c{{ $i }}: {{ $c | quote }}
  {{- end }}
  plain: not a secret
"#,
    );
    let outside = tempfile::tempdir().expect("tempdir");
    let plain = outside.path().join("api.yaml");
    std::fs::write(&plain, format!("token: '{TOKEN}'\n")).expect("write");
    let encrypted = repo
        .path()
        .join(format!("environments/{name}/secrets/api.yaml.age"));
    std::fs::create_dir_all(encrypted.parent().expect("parent")).expect("mkdir");
    let settings = unreachable(repo.path());
    Envboot::new(&settings)
        .args(["secret", "encrypt"])
        .arg(&plain)
        .arg("--output")
        .arg(&encrypted)
        .current_dir(repo.path())
        .run()
        .assert_ok();
    repo.commit("a chart that transforms its secret");

    use age::secrecy::ExposeSecret;
    let mut with_key = settings.clone();
    with_key.insert(
        "ENVBOOT_AGE_IDENTITY".into(),
        identity.to_string().expose_secret().to_string(),
    );
    let run = envboot(&repo, &with_key, &["render", name]);
    run.assert_ok();
    let files = tempfile::tempdir().expect("tempdir");
    let dir = files.path().join("out");
    envboot(
        &repo,
        &with_key,
        &["render", name, "--output-dir", dir.to_str().expect("utf-8")],
    )
    .assert_ok();
    let mut printed = format!("{}{}", run.stdout, run.stderr);
    for entry in std::fs::read_dir(&dir).expect("files") {
        printed.push_str(&std::fs::read_to_string(entry.expect("entry").path()).expect("read"));
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        TOKEN.to_string(),
        TOKEN.to_uppercase(),
        b64.encode(b64.encode(TOKEN)),
        serde_json::to_string(&serde_json::json!({"t": TOKEN})).expect("json"),
        "Zq9-tokenvalue-%22quoted%22-x7".to_string(),
    ];
    for form in &forms {
        assert!(
            !printed.contains(form.as_str()),
            "{form} was printed:\n{printed}"
        );
    }
    let derived = printed
        .split("# Source: ")
        .find(|d| d.contains("name: derived"))
        .expect("the derived ConfigMap")
        .to_string();
    // every character, punctuation too (its place would tell the secret's shape)
    let keys = ["upper", "twice", "json", "query", "short"].map(String::from);
    let chars = (0..TOKEN.len()).map(|i| format!("c{i}"));
    for key in keys.into_iter().chain(chars) {
        assert!(
            derived.contains(&format!("{key}: (sensitive)")),
            "{key} is not masked:\n{derived}"
        );
    }
    assert!(derived.contains("plain: not a secret"), "{derived}");
}
