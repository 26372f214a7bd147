//! `cluster.type: k3s`, as far as this machine allows: envboot generates the cluster's
//! credentials, keeps them encrypted in Git, provisions the server and agent instances (moto)
//! with user-data that installs k3s with them, waits for the API server, and continues into the
//! cluster layer.
//!
//! No k3s runs here: a private sandbox's kube-apiserver stands in for the k3s server, reached
//! through the endpoint override (`ENVBOOT_K3S_ENDPOINT`). It is set up exactly as k3s sets
//! itself up from the user-data: its serving certificate is issued by the generated server CA
//! and it trusts client certificates of the generated client CA, so envboot's kubeconfig (Git
//! plus the age identity, nothing else) is what authenticates.

use std::collections::HashMap;

use crate::common::*;
use age::secrecy::ExposeSecret;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

fn environment(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1
kind: Environment
name: {name}
cloud: {{provider: aws, region: us-east-1}}
infrastructure:
  - name: network
    module: network
    inputs: {{cidr: 10.77.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.77.1.0/24, subnet_b_cidr: 10.77.2.0/24}}
cluster:
  type: k3s
  version: v1.33.5+k3s1
  apiTimeout: 2m
  server:
    ami: ami-03cf127a
    instanceType: t3.medium
    subnetId: ${{module.network.subnet_a_id}}
  agents:
    count: 2
    ami: ami-03cf127a
    instanceType: t3.large
    subnetId: ${{module.network.subnet_b_id}}
configMaps:
  - name: cluster-info
    namespace: {name}
    data:
      VPC_ID: ${{module.network.vpc_id}}
"
    )
}

/// The instances environment `env` owns: address to (id, private IP, tags as JSON).
async fn instances(
    ec2: &aws_sdk_ec2::Client,
    env: &str,
) -> HashMap<String, (String, String, String)> {
    let owned = owned_aws(ec2, env).await;
    let ids = owned.ids("aws_instance");
    if ids.is_empty() {
        return HashMap::new();
    }
    let out = ec2
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let t = tags(i.tags());
            (
                t.get("envboot:address").cloned().unwrap_or_default(),
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.private_ip_address().unwrap_or_default().to_string(),
                    serde_json::to_string(&t).unwrap_or_default(),
                ),
            )
        })
        .collect()
}

async fn user_data(ec2: &aws_sdk_ec2::Client, id: &str) -> String {
    use base64::Engine;
    let out = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .expect("DescribeInstanceAttribute");
    let encoded = out.user_data().and_then(|u| u.value()).unwrap_or_default();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64 user-data"),
    )
    .expect("UTF-8 user-data")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_k3s_cluster_is_provisioned_with_generated_credentials_then_its_layer_applied() {
    let name = unique("k3s");
    let identity = age::x25519::Identity::generate();
    let repo = Repo::new(&name, &environment(&name));
    repo.write(".age-recipients", &format!("{}\n", identity.to_public()));

    // Without credentials in the commit: a located error, before any API call.
    let key = identity.to_string().expose_secret().to_string();
    let offline = {
        let mut s = unreachable(repo.path());
        s.insert("ENVBOOT_AGE_IDENTITY".into(), key.clone());
        s
    };
    let r = envboot(&repo, &offline, &["plan", &name]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("envboot cluster init"), "{}", r.stderr);

    // `envboot cluster init` writes them encrypted; they are committed like any file.
    let init = || -> Run {
        Envboot::new(&offline)
            .args(["cluster", "init", &name])
            .current_dir(repo.path())
            .run()
    };
    init().assert_ok();
    let file = format!("environments/{name}/cluster.age");
    let ciphertext = std::fs::read(repo.path().join(&file)).expect("cluster.age");
    assert!(ciphertext.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
    // A second init would make a new cluster: refused.
    let again = init();
    assert_ne!(again.code, 0, "{}", again.stdout);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert_eq!(
        std::fs::read(repo.path().join(&file)).expect("cluster.age"),
        ciphertext
    );
    repo.commit("k3s credentials");
    // Without the identity, validate checks the rest (a pull request's CI without the key).
    let mut keyless = offline.clone();
    keyless.remove("ENVBOOT_AGE_IDENTITY");
    let r = envboot(&repo, &keyless, &["validate", &name]);
    r.assert_ok();
    assert!(r.stdout.contains("not decrypted"), "{}", r.stdout);
    let plaintext =
        envboot::secrets::decrypt(&ciphertext, std::slice::from_ref(&identity)).expect("decrypt");
    let creds = envboot::k3s::Credentials::parse(&plaintext).expect("credentials");

    // The stand-in for the k3s server: trusts the generated client CA, serves with a
    // certificate of the generated server CA.
    let private = PrivateSandbox::start_with(|dir| {
        std::fs::write(dir.join("ca.crt"), &creds.server_ca.cert).expect("ca.crt");
        std::fs::write(dir.join("ca.key"), &creds.server_ca.key).expect("ca.key");
        std::fs::write(dir.join("client-ca.crt"), &creds.client_ca.cert).expect("client-ca.crt");
    });
    let endpoint = format!("https://127.0.0.1:{}", private.port("APISERVER_PORT"));
    let mut settings = private.settings.clone();
    // No kubeconfig context: the cluster is reached with what Git and the identity give.
    settings.insert("KUBECONFIG".into(), "/nonexistent/kubeconfig".into());
    settings.insert("ENVBOOT_AGE_IDENTITY".into(), key.clone());
    settings.insert("ENVBOOT_K3S_ENDPOINT".into(), endpoint.clone());
    let printed = std::cell::RefCell::new(String::new());
    let run = |args: &[&str]| {
        let r = envboot(&repo, &settings, args);
        printed.borrow_mut().push_str(&r.stdout);
        printed.borrow_mut().push_str(&r.stderr);
        r
    };

    // The plan creates the nodes; the cluster's objects wait for its API server.
    let r = run(&["plan", &name]);
    r.assert_ok();
    for expected in [
        "+ aws_instance cluster.server",
        "+ aws_instance cluster.agent-1",
        "+ aws_instance cluster.agent-2",
        &format!("+ ConfigMap {name}/cluster-info"),
        "planned once the k3s server this run creates answers",
    ] {
        assert!(r.stdout.contains(expected), "{expected}:\n{}", r.stdout);
    }

    // An API server that never answers: apply stops after `apiTimeout`, saying where and why.
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "apiTimeout: 2m",
        "apiTimeout: 3s",
    );
    repo.commit("impatient");
    let mut silent = settings.clone();
    silent.insert("ENVBOOT_K3S_ENDPOINT".into(), "https://127.0.0.1:9".into());
    let r = envboot(&repo, &silent, &["apply", &name]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the k3s API server at https://127.0.0.1:9 did not answer /readyz within 3s"),
        "{}",
        r.stderr
    );
    printed.borrow_mut().push_str(&r.stdout);
    printed.borrow_mut().push_str(&r.stderr);
    repo.edit(
        &format!("environments/{name}/environment.yaml"),
        "apiTimeout: 3s",
        "apiTimeout: 2m",
    );
    repo.commit("patient");

    assert!(
        r.stdout
            .contains("k3s_api_server https://127.0.0.1:9: waiting up to 3s for /readyz"),
        "{}",
        r.stdout
    );

    // The rerun finds the nodes made, and the API server answering: it goes on into the cluster.
    let r = run(&["apply", &name]);
    r.assert_ok();
    assert!(
        !r.stdout.contains("aws_instance cluster."),
        "the nodes were made by the first run:\n{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("+ ConfigMap {name}/cluster-info: created")),
        "{}",
        r.stdout
    );

    // AWS: one server and two agents, with cloud-init user-data carrying the credentials;
    // an agent's names the server's private IP, resolved at apply time.
    let ec2 = ec2(&settings).await;
    let nodes = instances(&ec2, &name).await;
    let mut addresses: Vec<&String> = nodes.keys().collect();
    addresses.sort();
    assert_eq!(
        addresses,
        ["cluster.agent-1", "cluster.agent-2", "cluster.server"]
    );
    let (server_id, server_ip, server_tags) = &nodes["cluster.server"];
    let server_data = user_data(&ec2, server_id).await;
    assert!(server_data.starts_with("#cloud-config\n"), "{server_data}");
    assert!(server_data.contains(
        creds
            .server_ca
            .cert
            .trim_end()
            .lines()
            .nth(1)
            .unwrap_or("?")
    ));
    // The version as one shell word (quoted only if it needs it: see tests/golden).
    assert!(
        server_data.contains("INSTALL_K3S_VERSION=v1.33.5+k3s1 INSTALL_K3S_EXEC="),
        "{server_data}"
    );
    let (agent_id, _, agent_tags) = &nodes["cluster.agent-1"];
    let agent_data = user_data(&ec2, agent_id).await;
    assert!(
        agent_data.contains(&format!("server: \"https://{server_ip}:6443\"")),
        "{agent_data}"
    );
    assert!(
        !agent_data.contains("BEGIN PRIVATE KEY"),
        "an agent holds no CA key"
    );
    // Tags hold a hash of the user-data, never the user-data or the token.
    for t in [server_tags, agent_tags] {
        assert!(!t.contains(&creds.token), "{t}");
        assert!(t.contains("envboot:user-data"), "{t}");
    }

    // Kubernetes, through the kubeconfig envboot writes (the admin certificate authenticates).
    // (Not recorded with the rest: it prints the admin key, which is its purpose.)
    let r = envboot(&repo, &settings, &["kubeconfig", &name]);
    r.assert_ok();
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&r.stdout).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    assert_eq!(config.cluster_url.to_string(), format!("{endpoint}/"));
    let client = kube::Client::try_from(config).expect("client");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &name)
        .get("cluster-info")
        .await
        .expect("the ConfigMap, read with the generated admin certificate");
    let vpc = cm
        .data
        .as_ref()
        .and_then(|d| d.get("VPC_ID"))
        .cloned()
        .unwrap_or_default();
    assert!(vpc.starts_with("vpc-"), "{vpc}");

    // Once the API answers, a second run changes nothing.
    let r = run(&["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Once the API server answers, the environment is locked there like any other: a run
    // holding the lock stops a second one at once, naming it.
    let guard = envboot::kube::Kube::from_client(client.clone())
        .lock(
            &name,
            "a colleague's run",
            std::time::Duration::from_secs(60),
            Default::default(),
        )
        .await
        .expect("lock");
    let r = run(&["apply", &name]);
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("locked by a colleague's run"),
        "{}",
        r.stderr
    );
    guard.release().await;

    // Disaster: the server instance is terminated behind envboot's back. One apply brings a
    // new server from Git; agents follow its new address; the cluster layer is planned once
    // the API answers again.
    ec2.terminate_instances()
        .instance_ids(server_id)
        .send()
        .await
        .expect("TerminateInstances");
    let r = run(&["plan", &name, "--output", "json"]);
    r.assert_ok();
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).expect("plan JSON");
    assert!(
        plan["kubernetesPending"]
            .as_str()
            .is_some_and(|p| p.contains("k3s server")),
        "{}",
        r.stdout
    );
    let server_change = plan["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["address"] == "cluster.server"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(server_change["action"], "create", "{server_change}");
    let r = run(&["apply", &name]);
    r.assert_ok();
    // The cluster layer waited for the new server's API server, then found nothing to do.
    assert!(
        r.stdout
            .contains(&format!("k3s_api_server {endpoint}: ready after")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("cluster-info: created"), "{}", r.stdout);
    let nodes = instances(&ec2, &name).await;
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let (new_server, new_ip, _) = &nodes["cluster.server"];
    assert_ne!(new_server, server_id);
    for agent in ["cluster.agent-1", "cluster.agent-2"] {
        let data = user_data(&ec2, &nodes[agent].0).await;
        assert!(
            data.contains(&format!("server: \"https://{new_ip}:6443\"")),
            "{agent} does not join the new server:\n{data}"
        );
    }
    let r = run(&["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Nothing secret was printed.
    let all = printed.borrow().clone();
    let secret_lines: Vec<&str> = [&creds.server_ca.key, &creds.client_ca.key, &creds.admin.key]
        .iter()
        .flat_map(|k| k.lines())
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!all.contains(&creds.token), "the join token was printed");
    for line in secret_lines {
        assert!(!all.contains(line), "a key was printed");
    }

    // verify and status see the cluster layer through the generated credentials too.
    let r = run(&["verify", &name, "--timeout", "30s"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(&["status", &name]);
    r.assert_ok();
    assert!(r.stdout.contains("Drift:  none"), "{}", r.stdout);
    assert!(r.stdout.contains(", applied "), "{}", r.stdout);

    let r = run(&["destroy", &name]);
    r.assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
    // The cluster layer went first, while its API server still answered.
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
        .get_opt(&name)
        .await
        .expect("get namespace");
    assert!(
        namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the namespace is left"
    );
}

/// Runs scripts/cloud-init-schema (cloud-init's own validator) on `files`.
fn cloud_init_schema(files: &[&std::path::Path]) -> Run {
    std::process::Command::new("bash")
        .arg(project_root().join("scripts/cloud-init-schema"))
        .args(files)
        .output()
        .expect("run scripts/cloud-init-schema")
        .into()
}

#[test]
fn user_data_is_a_valid_cloud_config_document() {
    if std::process::Command::new("apt-get")
        .arg("--version")
        .output()
        .is_err()
    {
        skipped(
            "k3s::user_data_is_a_valid_cloud_config_document",
            "cloud-init comes from Debian's packages and this machine has no apt-get",
        );
        return;
    }
    let creds = envboot::k3s::Credentials::generate().expect("credentials");
    let node = envboot::k3s::NodeSettings {
        environment: "edge".into(),
        cluster: "edge".into(),
        version: "v1.33.5+k3s1".into(),
        install_script: "https://get.k3s.io".into(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = dir.path().join("server.yaml");
    let agent = dir.path().join("agent.yaml");
    std::fs::write(
        &server,
        envboot::k3s::user_data(&creds, &node, &envboot::k3s::Role::Server),
    )
    .expect("write");
    std::fs::write(
        &agent,
        envboot::k3s::user_data(
            &creds,
            &node,
            &envboot::k3s::Role::Agent {
                server: "10.77.1.10".into(),
            },
        ),
    )
    .expect("write");
    let golden = project_root().join("tests/golden");
    let r = cloud_init_schema(&[
        &server,
        &agent,
        &golden.join("k3s-server.user-data"),
        &golden.join("k3s-agent.user-data"),
    ]);
    r.assert_ok();
    assert_eq!(
        r.stdout.matches("Valid cloud-config").count(),
        4,
        "{}",
        r.stdout
    );
    // The check is real: a document with a mistake cloud-init would skip fails it.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&agent)
            .expect("read")
            .replace("permissions: \"0600\"", "permissions: 0600\n    mode: x"),
    )
    .expect("write");
    let r = cloud_init_schema(&[&broken]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("Additional properties are not allowed"),
        "{}{}",
        r.stdout,
        r.stderr
    );
}
