//! Faults between envboot and the Kubernetes API server: a proxy on 127.0.0.1 in front of the
//! sandbox's kube-apiserver answers some requests with 503, 429 (throttling), a dropped
//! connection or added latency. Apply converges through retries; when the faults never stop it
//! fails with a clear error, and a rerun finishes the job.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Faults {
    /// Every third request, up to `budget` faults: 503, 429, dropped connection (not for
    /// POST, which may have reached the server) and 300 ms of latency, in turn.
    EveryThird { budget: usize },
    /// Every request is answered 503.
    Always,
}

enum Fault {
    Unavailable,
    Throttled,
    Drop,
    Latency,
}

type ProxyBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn status(code: u16, extra: Option<(&'static str, &'static str)>) -> http::Response<ProxyBody> {
    let mut response = http::Response::builder().status(code);
    if let Some((k, v)) = extra {
        response = response.header(k, v);
    }
    response
        .body(
            Full::new(Bytes::new())
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("response")
}

/// Forwards one request to the API server through `client` (which adds the sandbox's
/// credentials), unless a fault is due.
async fn handle(
    request: http::Request<Incoming>,
    client: kube::Client,
    faults: Faults,
    seen: Arc<AtomicUsize>,
    injected: Arc<AtomicUsize>,
) -> Result<http::Response<ProxyBody>, std::io::Error> {
    let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
    let fault = match faults {
        Faults::Always => Some(Fault::Unavailable),
        Faults::EveryThird { budget }
            if n.is_multiple_of(3) && injected.load(Ordering::SeqCst) < budget =>
        {
            match (n / 3) % 4 {
                0 => Some(Fault::Unavailable),
                1 => Some(Fault::Throttled),
                2 if request.method() != http::Method::POST => Some(Fault::Drop),
                2 => Some(Fault::Unavailable),
                _ => Some(Fault::Latency),
            }
        }
        Faults::EveryThird { .. } => None,
    };
    if fault.is_some() {
        injected.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Some(Fault::Unavailable) => return Ok(status(503, None)),
        Some(Fault::Throttled) => return Ok(status(429, Some(("Retry-After", "0")))),
        Some(Fault::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected: connection dropped",
            ))
        }
        Some(Fault::Latency) => tokio::time::sleep(Duration::from_millis(300)).await,
        None => {}
    }
    let (mut parts, body) = request.into_parts();
    parts.headers.remove(http::header::HOST);
    parts.headers.remove(http::header::AUTHORIZATION);
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let forwarded = http::Request::from_parts(parts, kube::client::Body::from(bytes));
    match client.send(forwarded).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let body = body.map_err(|e| Box::new(e) as Box<_>).boxed_unsync();
            Ok(http::Response::from_parts(parts, body))
        }
        Err(_) => Ok(status(502, None)),
    }
}

/// Starts the proxy; returns its URL and the number of faults injected so far.
async fn proxy(settings: &HashMap<String, String>, faults: Faults) -> (String, Arc<AtomicUsize>) {
    let client = kube_client(settings).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(AtomicUsize::new(0));
    let injected = Arc::new(AtomicUsize::new(0));
    let counter = injected.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (client, seen, injected) = (client.clone(), seen.clone(), counter.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    handle(
                        request,
                        client.clone(),
                        faults,
                        seen.clone(),
                        injected.clone(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
        Ok::<(), Infallible>(())
    });
    (url, injected)
}

/// Settings whose kubeconfig points context `envboot-sandbox` at the proxy.
fn through(settings: &HashMap<String, String>, repo: &Repo, url: &str) -> HashMap<String, String> {
    let path = repo.path().join(".git/proxy-kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: {url}\nusers:\n- name: anonymous\n  user: {{}}\ncontexts:\n- name: envboot-sandbox\n  context:\n    cluster: proxy\n    user: anonymous\ncurrent-context: envboot-sandbox\n"
        ),
    )
    .expect("write kubeconfig");
    let mut settings = settings.clone();
    settings.insert("KUBECONFIG".into(), path.display().to_string());
    settings
}

/// A Kubernetes-only environment: one release of `hello` and 20 ConfigMaps.
fn cluster_only(name: &str) -> String {
    let mut text = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ncluster: {{type: existing, context: envboot-sandbox}}\nreleases:\n  - name: hello\n    chart: hello\n    namespace: {name}-apps\nconfigMaps:\n"
    );
    for i in 0..20 {
        text.push_str(&format!(
            "  - name: settings-{i}\n    namespace: {name}-apps\n    data: {{INDEX: \"{i}\"}}\n"
        ));
    }
    text
}

/// Runs envboot off the runtime: the proxy's tasks run on it.
async fn run(repo: &Repo, settings: HashMap<String, String>, args: &[&str]) -> Run {
    Envboot::new(&settings)
        .args(args)
        .repo(repo)
        .run_off_runtime()
        .await
}

async fn config_maps(settings: &HashMap<String, String>, ns: &str) -> usize {
    Api::<ConfigMap>::namespaced(kube_client(settings).await, ns)
        .list(&ListParams::default().labels("envboot.dev/environment"))
        .await
        .map(|l| l.items.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_through_503s_throttling_dropped_connections_and_latency() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("kfaults");
    let repo = Repo::new(&name, &cluster_only(&name));
    let (url, injected) = proxy(settings, Faults::EveryThird { budget: 40 }).await;

    let applied = run(&repo, through(settings, &repo, &url), &["apply", &name]).await;
    applied.assert_ok();
    assert!(
        injected.load(Ordering::SeqCst) >= 8,
        "faults of every kind were injected: {}",
        injected.load(Ordering::SeqCst)
    );
    // The hello chart's ConfigMap and the 20 declared ones, once each.
    assert_eq!(config_maps(settings, &format!("{name}-apps")).await, 21);

    // Straight to the API server: nothing left to do.
    let plan = run(
        &repo,
        settings.clone(),
        &["plan", &name, "--detailed-exitcode"],
    )
    .await;
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_that_stays_unavailable_ends_the_run_clearly_and_a_rerun_finishes() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("koutage");
    let repo = Repo::new(&name, &cluster_only(&name));
    let (url, injected) = proxy(settings, Faults::Always).await;

    let failed = run(&repo, through(settings, &repo, &url), &["apply", &name]).await;
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stderr
            .contains("failed: the API server answered HTTP 503 Service Unavailable"),
        "names the call and what the server answered: {}",
        failed.stderr
    );
    assert!(
        injected.load(Ordering::SeqCst) >= 9,
        "the request was retried before giving up"
    );
    assert_eq!(config_maps(settings, &format!("{name}-apps")).await, 0);

    envboot(&repo, settings, &["apply", &name]).assert_ok();
    assert_eq!(config_maps(settings, &format!("{name}-apps")).await, 21);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
