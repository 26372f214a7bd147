//! Notifications to webhooks on apply, drift and failure: a generic JSON document, or Slack's
//! incoming-webhook format. They carry the commit, its author and the plan's summary: never a
//! secret (plans show none, and envboot's errors are redacted).

use std::time::Duration;

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Generic,
    Slack,
}

/// Where to send notifications: `slack=URL`, `webhook=URL`, or a URL (generic).
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub format: Format,
    pub url: String,
}

impl std::fmt::Debug for Target {
    // a webhook URL is a credential (Slack's hold their token): only the host is shown
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} webhook on {}", self.format, host(&self.url))
    }
}

/// The host of `url`, for messages: nothing else of a webhook URL is shown.
fn host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(not a URL)".to_string())
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (format, url) = match text.split_once('=') {
            Some(("slack", url)) => (Format::Slack, url),
            Some(("webhook", url)) => (Format::Generic, url),
            _ => (Format::Generic, text),
        };
        let allowed = url::Url::parse(url).is_ok_and(|u| match u.scheme() {
            "https" => u.host().is_some(),
            "http" => crate::git::is_loopback(&u),
            _ => false,
        });
        if !allowed {
            return Err(format!(
                "`{}`: a notification URL is https:// (plain http:// only to this machine)",
                host(url)
            ));
        }
        Ok(Target {
            format,
            url: url.to_string(),
        })
    }
}

/// What happened, for the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `applied`, `drift_healed`, `drifted` or `failed`.
    pub event: String,
    /// `namespace/name` of the Environment.
    pub resource: String,
    pub environment: String,
    pub commit: Option<String>,
    pub author: Option<String>,
    pub summary: String,
    /// Who ran it: the controller replica.
    pub reporter: String,
}

/// The request body for `format`.
pub fn payload(format: Format, n: &Notification) -> Value {
    match format {
        Format::Generic => json!({
            "formatVersion": "envboot.dev/notification/v1",
            "event": n.event,
            "resource": n.resource,
            "environment": n.environment,
            "commit": n.commit,
            "author": n.author,
            "summary": n.summary,
            "reporter": n.reporter,
        }),
        Format::Slack => {
            let icon = match n.event.as_str() {
                "failed" => ":x:",
                "drifted" => ":warning:",
                _ => ":white_check_mark:",
            };
            let commit = n
                .commit
                .as_deref()
                .map(|c| format!(" at `{}`", crate::decide::short(c)))
                .unwrap_or_default();
            let author = n
                .author
                .as_deref()
                .map(|a| format!(" by {a}"))
                .unwrap_or_default();
            json!({
                "text": format!(
                    "{icon} envboot {} {} ({}){commit}{author}: {}",
                    n.event.replace('_', " "), n.environment, n.resource, n.summary
                ),
            })
        }
    }
}

/// Sends `n` to every target; returns how many deliveries failed (each is logged by the caller).
pub async fn send(targets: &[Target], n: &Notification) -> Vec<String> {
    let mut failures = Vec::new();
    for target in targets {
        let body = payload(target.format, n).to_string();
        let url = target.url.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = sent {
            failures.push(format!("{target:?}: {e}"));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_https_or_loopback_and_never_printed_whole() {
        let t: Target = "slack=https://hooks.example.com/services/T0/B0/secret"
            .parse()
            .expect("slack");
        assert_eq!(t.format, Format::Slack);
        assert_eq!(format!("{t:?}"), "Slack webhook on hooks.example.com");
        assert!("http://127.0.0.1:9000/hook".parse::<Target>().is_ok());
        assert!("http://example.com/hook".parse::<Target>().is_err());
        assert!("http://127.0.0.1.example.com/hook"
            .parse::<Target>()
            .is_err());
        assert!("http://[::1]:9000/hook".parse::<Target>().is_ok());
        assert!("ftp://127.0.0.1/hook".parse::<Target>().is_err());
        let bad = "webhook=https//token@hooks.example.com"
            .parse::<Target>()
            .unwrap_err();
        assert!(!bad.contains("token"), "{bad}");
    }

    #[test]
    fn payloads_carry_the_commit_author_and_summary() {
        let n = Notification {
            event: "drift_healed".into(),
            resource: "ops/local".into(),
            environment: "local".into(),
            commit: Some("0123456789abcdef0123".into()),
            author: Some("Ada <ada@example.com>".into()),
            summary: "0 to create, 1 to update".into(),
            reporter: "envboot-controller/pod-1".into(),
        };
        let slack = payload(Format::Slack, &n);
        assert_eq!(
            slack["text"],
            ":white_check_mark: envboot drift healed local (ops/local) at `0123456789ab` by Ada <ada@example.com>: 0 to create, 1 to update"
        );
        let generic = payload(Format::Generic, &n);
        assert_eq!(generic["event"], "drift_healed");
        assert_eq!(generic["commit"], "0123456789abcdef0123");
    }
}
