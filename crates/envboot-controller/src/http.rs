//! The controller's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, and `/hook`, the Git push
//! webhook receiver (GitHub's, Gitea's and Forgejo's `X-Hub-Signature-256`, or GitLab's
//! `X-Gitlab-Token`), which triggers a reconcile of the Environments that follow the pushed
//! repository at once.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use sha2::Sha256;

/// The largest webhook body read (GitHub's payloads are capped at 25 MB; a push is far less).
const MAX_BODY: usize = 5 * 1024 * 1024;

/// Queues reconciles of the Environments following any of these repository URLs; returns how
/// many were queued.
/// `None`: the Environments could not be listed (the sender should retry).
pub type Trigger =
    Arc<dyn Fn(Vec<String>) -> futures::future::BoxFuture<'static, Option<usize>> + Send + Sync>;

pub struct State {
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The watch of Environments runs (or this replica stands by, ready to lead).
    pub ready: AtomicBool,
    pub webhook_secret: Option<Vec<u8>>,
    pub trigger: Trigger,
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response
}

/// Whether the request carries a valid signature of `body` for `secret`.
pub fn signed(headers: &hyper::HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    if let Some(signature) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
    {
        let Ok(expected) = hex::decode(signature) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        return mac.verify_slice(&expected).is_ok();
    }
    if let Some(token) = headers.get("x-gitlab-token") {
        // compared through HMACs of both, so the time taken says nothing of the secret
        let digest = |bytes: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"envboot-token-compare")
                .expect("HMAC takes a key of any length");
            mac.update(bytes);
            mac.finalize().into_bytes()
        };
        return digest(token.as_bytes()) == digest(secret);
    }
    false
}

/// The repository URLs a push payload names (GitHub, Gitea, Forgejo, GitLab, Bitbucket), in
/// the form [`normalize`] gives.
pub fn pushed_repositories(payload: &serde_json::Value) -> Vec<String> {
    let mut urls = Vec::new();
    for (object, keys) in [
        (
            "repository",
            &[
                "clone_url",
                "git_url",
                "ssh_url",
                "html_url",
                "url",
                "git_http_url",
                "git_ssh_url",
                "homepage",
            ][..],
        ),
        (
            "project",
            &["git_http_url", "git_ssh_url", "web_url", "http_url"][..],
        ),
    ] {
        for key in keys {
            if let Some(url) = payload[object][key].as_str() {
                urls.push(normalize(url));
            }
        }
    }
    if let Some(links) = payload["repository"]["links"]["html"]["href"].as_str() {
        urls.push(normalize(links));
    }
    urls.sort();
    urls.dedup();
    urls
}

/// A repository URL reduced to host and path, for comparing a push's URLs with a spec's:
/// scheme, user, port, a trailing `.git` or `/` and letter case of the host dropped.
pub fn normalize(url: &str) -> String {
    let (host, path) = match url::Url::parse(url) {
        Ok(u) if u.host().is_some() => (
            u.host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            u.path().to_string(),
        ),
        // scp-like: git@host:path
        _ => {
            let (authority, path) = url.split_once(':').unwrap_or((url, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host.to_string(), path.to_string())
        }
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    // hosting services match paths case-insensitively (GitHub, GitLab, Gitea)
    format!(
        "{}/{}",
        host.to_ascii_lowercase(),
        path.trim_start_matches('/').to_ascii_lowercase()
    )
}

async fn handle(
    state: Arc<State>,
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let response = match (request.method().as_str(), path.as_str()) {
        ("GET", "/metrics") => {
            let mut r = text(StatusCode::OK, state.metrics.encode());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        ("GET", "/healthz") => text(StatusCode::OK, "ok\n"),
        ("GET", "/readyz") if state.ready.load(Ordering::Relaxed) => text(StatusCode::OK, "ok\n"),
        ("GET", "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        ("POST", "/hook") => hook(&state, request).await,
        (_, "/metrics" | "/healthz" | "/readyz" | "/hook") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: /metrics, /healthz, /readyz, /hook\n",
        ),
    };
    Ok(response)
}

async fn hook(state: &State, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let Some(secret) = &state.webhook_secret else {
        return text(
            StatusCode::NOT_FOUND,
            "the webhook receiver is off: start the controller with --webhook-secret-file\n",
        );
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut off\n"),
    };
    if !signed(&parts.headers, &body, secret) {
        return text(StatusCode::UNAUTHORIZED, "signature missing or wrong\n");
    }
    if parts
        .headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        == Some("ping")
    {
        return text(StatusCode::OK, "pong\n");
    }
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return text(StatusCode::BAD_REQUEST, "the body is not JSON\n");
    };
    let urls = pushed_repositories(&payload);
    if urls.is_empty() {
        return text(StatusCode::BAD_REQUEST, "the payload names no repository\n");
    }
    let Some(queued) = (state.trigger)(urls).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot list the Environments now: retry\n",
        );
    };
    text(
        StatusCode::ACCEPTED,
        format!("queued a reconcile of {queued} Environment(s)\n"),
    )
}

/// Serves the endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(state.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_as_github_and_gitlab_send_them() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("mac");
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-hub-signature-256", good.parse().expect("header"));
        assert!(signed(&headers, body, b"s3cret"));
        assert!(!signed(&headers, b"{}", b"s3cret"));
        assert!(!signed(&headers, body, b"other"));
        let mut gitlab = hyper::HeaderMap::new();
        gitlab.insert("x-gitlab-token", "s3cret".parse().expect("header"));
        assert!(signed(&gitlab, body, b"s3cret"));
        assert!(!signed(&hyper::HeaderMap::new(), body, b"s3cret"));
    }

    #[test]
    fn a_push_names_its_repository_in_any_of_its_forms() {
        let push = serde_json::json!({"repository": {
            "clone_url": "https://GitHub.com/acme/infra.git",
            "ssh_url": "git@github.com:acme/infra.git",
            "html_url": "https://github.com/acme/infra"}});
        assert_eq!(pushed_repositories(&push), ["github.com/acme/infra"]);
        assert_eq!(
            normalize("https://github.com/Acme/Infra"),
            "github.com/acme/infra"
        );
        assert_eq!(
            normalize("git://127.0.0.1:9418/infra.git/"),
            "127.0.0.1/infra"
        );
        assert_eq!(
            normalize("https://user@host.example/a/b"),
            "host.example/a/b"
        );
        assert_eq!(normalize("ssh://git@[::1]:2222/a/b.git"), "::1/a/b");
        assert_eq!(normalize("git@Example.com:a/b.git"), "example.com/a/b");
    }
}
