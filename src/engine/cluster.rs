//! The engine's part of a k3s cluster: its nodes' user-data from the decrypted credentials,
//! reaching its API server (the server's public IP, or `ENVBOOT_K3S_ENDPOINT`), planning the
//! Kubernetes layer before the server exists, and the wait for `/readyz` during apply.

use super::*;

/// For a k3s cluster: decrypts its credentials (in memory) and writes its nodes' user-data.
pub(crate) fn k3s_user_data(env: &mut Environment) -> Result<Option<k3s::Credentials>> {
    let Some((cluster, k)) = env
        .cluster
        .as_ref()
        .and_then(|c| c.k3s.as_ref().map(|k| (c.name.clone(), k.clone())))
    else {
        return Ok(None);
    };
    let failed = |message: String| Error::Secret {
        origin: k.origin.clone(),
        message: format!("{}: {message}", k.credentials_file),
    };
    let identities = crate::secrets::identities_from_env().map_err(|e| failed(e.to_string()))?;
    let plaintext =
        crate::secrets::decrypt(&k.ciphertext, &identities).map_err(|e| failed(e.to_string()))?;
    let credentials = k3s::Credentials::parse(&plaintext).map_err(|e| failed(e.to_string()))?;
    let node = k3s::NodeSettings {
        environment: env.name.clone(),
        cluster,
        version: k.version.clone(),
        install_script: k.install_script.clone(),
    };
    let agent = k3s::Role::Agent {
        server: format!("${{{}.private_ip}}", k.server),
    };
    for r in &mut env.resources {
        let role = if r.address == k.server {
            &k3s::Role::Server
        } else if k.agents.contains(&r.address) {
            &agent
        } else {
            continue;
        };
        if let model::spec::ResourceSpec::Instance(i) = &mut r.spec {
            i.user_data = Some(k3s::user_data(&credentials, &node, role));
        }
    }
    Ok(Some(credentials))
}

/// The API server address of a k3s cluster: `ENVBOOT_K3S_ENDPOINT`, else the server
/// instance's public IP (`attributes` of the server: what AWS says of it).
fn k3s_endpoint(attributes: Option<&BTreeMap<String, String>>) -> Option<String> {
    if let Ok(e) = std::env::var(k3s::ENDPOINT_VAR) {
        if !e.is_empty() {
            return Some(e);
        }
    }
    let ip = attributes?.get("public_ip").filter(|ip| !ip.is_empty())?;
    Some(format!("https://{ip}:{}", k3s::API_PORT))
}

/// The kubeconfig of the environment's k3s cluster, from Git and the decryption key alone:
/// the API server's address is the server instance's public IP (found by its tags) unless
/// `ENVBOOT_K3S_ENDPOINT` says otherwise.
pub async fn kubeconfig(loaded: &Loaded) -> Result<String> {
    let env = &loaded.env;
    let (Some(cluster), Some(creds)) = (&env.cluster, &loaded.credentials) else {
        return Err(Error::Secret {
            origin: format!("environments/{}/environment.yaml", env.name),
            message: "only a `type: k3s` cluster has a kubeconfig envboot writes; an existing cluster is reached through its kubeconfig context".into(),
        });
    };
    let server = cluster
        .k3s
        .as_ref()
        .map(|k| k.server.clone())
        .unwrap_or_default();
    let endpoint = k3s_live_endpoint(loaded)
        .await?
        .ok_or_else(|| Error::ApiUnreachable {
            endpoint: format!("({server} does not exist or has no public IP)"),
            seconds: 0,
            why: format!(
                "apply the environment first, or set {} to the API server's address",
                k3s::ENDPOINT_VAR
            ),
        })?;
    Ok(creds.kubeconfig_yaml(&cluster.name, &endpoint))
}

/// The API server address of the environment's k3s cluster: `ENVBOOT_K3S_ENDPOINT`, else the
/// public IP of its server instance as AWS describes it (found by tags); `None` without one.
pub(super) async fn k3s_live_endpoint(loaded: &Loaded) -> Result<Option<String>> {
    let env = &loaded.env;
    if let Some(overridden) = k3s_endpoint(None) {
        return Ok(Some(overridden));
    }
    let Some(server) = env
        .cluster
        .as_ref()
        .and_then(|c| c.k3s.as_ref())
        .map(|k| k.server.clone())
    else {
        return Ok(None);
    };
    let aws = Aws::connect(&env.region).await;
    let changes = super::plan_cloud(&aws, &env.name, &env.resources, false).await?;
    let attributes = changes
        .into_iter()
        .find(|c| c.change.address == server && c.change.action != Action::Create)
        .map(|c| c.attributes);
    Ok(k3s_endpoint(attributes.as_ref()))
}

/// Generates a k3s cluster's credentials and encrypts them to `recipients`, as the file the
/// environment's `cluster.credentials` names. Refuses to overwrite: new credentials are a new
/// cluster.
pub fn cluster_init(
    path: &std::path::Path,
    recipients: &[age::x25519::Recipient],
    force: bool,
) -> Result<()> {
    let failed = |message: String| Error::Secret {
        origin: path.display().to_string(),
        message,
    };
    if path.exists() && !force {
        return Err(failed("exists already: new credentials make a new cluster, whose nodes must all be replaced (--force does it)".into()));
    }
    let creds = k3s::Credentials::generate().map_err(|e| failed(e.to_string()))?;
    let ciphertext = crate::secrets::encrypt(creds.to_yaml().as_bytes(), recipients)
        .map_err(|e| failed(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Output {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, ciphertext).map_err(|source| Error::Output {
        path: path.display().to_string(),
        source,
    })
}

/// A client for the k3s cluster at `endpoint`, from the decrypted credentials.
async fn k3s_client(loaded: &Loaded, endpoint: &str) -> Result<Kube> {
    let (Some(cluster), Some(creds)) = (&loaded.env.cluster, &loaded.credentials) else {
        return Err(Error::Secret {
            origin: loaded.env.name.clone(),
            message: "the k3s cluster's credentials are not decrypted".into(),
        });
    };
    let config =
        ::kube::config::Kubeconfig::from_yaml(&creds.kubeconfig_yaml(&cluster.name, endpoint))
            .map_err(|e| Error::Secret {
                origin: cluster.name.clone(),
                message: e.to_string(),
            })?;
    Ok(Kube::connect_kubeconfig(config).await?)
}

/// How long plan gives a k3s API server that should be up to answer.
const K3S_PROBE: Duration = Duration::from_secs(10);

/// A client for the k3s API server at `endpoint` if it answers `/readyz` within
/// [`K3S_PROBE`]; else why not.
pub(super) async fn k3s_ready_client(
    loaded: &Loaded,
    endpoint: &str,
) -> Result<std::result::Result<Kube, String>> {
    let k = k3s_client(loaded, endpoint).await?;
    Ok(match tokio::time::timeout(K3S_PROBE, k.api_ready()).await {
        Ok(Ok(())) => Ok(k),
        Ok(Err(why)) => Err(format!("the API server at {endpoint} is not ready ({why})")),
        Err(_) => Err(format!("the API server at {endpoint} does not answer")),
    })
}

/// Reaches a k3s cluster for a plan: not when this run creates its server (apply plans the
/// Kubernetes layer once the API answers), nor when its API server does not answer.
pub(super) async fn k3s_access(
    loaded: &Loaded,
    goal: Goal,
    aws_changes: &[AwsChange],
) -> Result<(Option<Kube>, Option<String>)> {
    let Some(k3s) = loaded.env.cluster.as_ref().and_then(|c| c.k3s.as_ref()) else {
        return Ok((None, None));
    };
    let server = aws_changes.iter().find(|c| c.change.address == k3s.server);
    let live = match server {
        Some(c) if goal == Goal::Destroy => c.change.action == Action::Delete,
        Some(c) => matches!(c.change.action, Action::NoOp | Action::Update),
        None => false,
    };
    if !live {
        let why = match goal {
            Goal::Apply => "planned once the k3s server this run creates answers",
            Goal::Destroy => "no k3s server runs: the cluster's objects are gone with it",
        };
        return Ok((None, Some(why.to_string())));
    }
    let Some(endpoint) = k3s_endpoint(server.map(|c| &c.attributes)) else {
        return Ok((
            None,
            Some(format!(
                "the k3s server has no public IP: set {} to its API server's address",
                k3s::ENDPOINT_VAR
            )),
        ));
    };
    let why = match k3s_ready_client(loaded, &endpoint).await? {
        Ok(k) => return Ok((Some(k), None)),
        Err(why) => why,
    };
    let then = match goal {
        Goal::Apply => "planned once it answers",
        Goal::Destroy => "the cluster's objects go with its instances",
    };
    Ok((None, Some(format!("{why}: {then}"))))
}

/// The declared objects as creations, for a plan made before the cluster answers.
pub(super) fn pending_creates(loaded: &Loaded, known: &HashMap<String, String>) -> Vec<KubeChange> {
    let cluster_scoped = envboot_core::render::cluster_scoped_kinds(&loaded.manifests);
    let desired: Vec<serde_json::Value> = loaded
        .manifests
        .iter()
        .map(|m| {
            let mut object = resolve_object(&m.object, known);
            if object["metadata"]["namespace"].is_null() && !cluster_scoped.contains(m.kind()) {
                if let Some(ns) = &m.default_namespace {
                    object["metadata"]["namespace"] = serde_json::json!(ns);
                }
            }
            object
        })
        .collect();
    kube::diff::diff(desired, Vec::new(), &BTreeSet::new())
}

/// How often the wait for a k3s API server asks `/readyz`.
const K3S_POLL: Duration = Duration::from_secs(2);
/// How often the wait says it is still waiting, and why.
const K3S_REPORT: Duration = Duration::from_secs(15);

/// Waits (within the cluster's `apiTimeout`) until the k3s API server answers `/readyz`, then
/// plans the Kubernetes layer against it.
pub(super) async fn k3s_plan(
    plan: &Plan,
    loaded: &Loaded,
    known: &HashMap<String, String>,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Plan> {
    let k3s = loaded
        .env
        .cluster
        .as_ref()
        .and_then(|c| c.k3s.as_ref())
        .ok_or_else(|| Error::Secret {
            origin: plan.environment.clone(),
            message: "no k3s cluster is declared".into(),
        })?;
    let server: BTreeMap<String, String> = known
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&format!("{}.", k3s.server))
                .map(|attr| (attr.to_string(), v.clone()))
        })
        .collect();
    let endpoint = k3s_endpoint(Some(&server)).ok_or_else(|| Error::ApiUnreachable {
        endpoint: format!("({} has no public IP)", k3s.server),
        seconds: 0,
        why: format!("set {} to the API server's address", k3s::ENDPOINT_VAR),
    })?;
    let k = k3s_client(loaded, &endpoint).await?;
    let waiting = Change {
        kind: "k3s_api_server".into(),
        address: endpoint.clone(),
        action: Action::NoOp,
        reason: None,
        fields: Vec::new(),
    };
    progress(Step {
        change: &waiting,
        action: Action::NoOp,
        id: None,
        note: Some(format!(
            "waiting up to {}s for /readyz",
            k3s.api_timeout.as_secs()
        )),
    });
    let started = Instant::now();
    let deadline = started + k3s.api_timeout;
    let mut reported = started;
    loop {
        let why = match k.api_ready().await {
            Ok(()) => break,
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(Error::ApiUnreachable {
                endpoint,
                seconds: k3s.api_timeout.as_secs(),
                why,
            });
        }
        if reported.elapsed() >= K3S_REPORT {
            reported = Instant::now();
            progress(Step {
                change: &waiting,
                action: Action::NoOp,
                id: None,
                note: Some(format!(
                    "still waiting after {}s: {why}",
                    started.elapsed().as_secs()
                )),
            });
        }
        tokio::time::sleep(K3S_POLL).await;
    }
    progress(Step {
        change: &waiting,
        action: Action::NoOp,
        id: None,
        note: Some(format!("ready after {}s", started.elapsed().as_secs())),
    });
    let (kube, inventory, hooks) = plan_kube(loaded, Goal::Apply, plan.options, &k, known).await?;
    Ok(Plan {
        environment: plan.environment.clone(),
        commit: plan.commit.clone(),
        goal: Goal::Apply,
        aws: Vec::new(),
        kube,
        aws_client: plan.aws_client.clone(),
        kube_client: Some(k),
        inventory,
        releases: plan.releases.clone(),
        hooks,
        options: plan.options,
        pending: None,
        deferred: None,
        cluster_client: std::sync::OnceLock::new(),
    })
}
