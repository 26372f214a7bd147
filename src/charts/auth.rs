//! Credentials for chart repositories and registries, where Helm and Docker users keep them:
//! Helm's `repositories.yaml` (HTTP repositories, and `@name` aliases), Helm's registry
//! configuration and Docker's `config.json` (registries), or [`USERNAME_VAR`] and
//! [`PASSWORD_VAR`] for the hosts [`HOSTS_VAR`] names. Each is sent only to the host it is
//! for. Read once; never printed (`Debug` shows only where they came from).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;

/// A username for the repositories and registries on the hosts of [`HOSTS_VAR`] that have no
/// other credentials.
pub const USERNAME_VAR: &str = "ENVBOOT_CHART_USERNAME";
/// Its password (or token).
pub const PASSWORD_VAR: &str = "ENVBOOT_CHART_PASSWORD";
/// The hosts (`host` or `host:port`, comma-separated) the two variables are for.
pub const HOSTS_VAR: &str = "ENVBOOT_CHART_HOSTS";

/// A Helm repository of repositories.yaml: name, URL and optional username and password.
#[derive(Clone, Debug, PartialEq)]
struct Repository {
    name: String,
    url: String,
    login: Option<(String, String)>,
}

#[derive(Clone, Default)]
pub struct Credentials {
    repositories: Vec<Repository>,
    /// Registry host (`host:port`) to username and password.
    registries: BTreeMap<String, (String, String)>,
    fallback: Option<(String, String)>,
    /// Where `fallback` may be sent, lower-case.
    fallback_hosts: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("repositories", &self.repositories.len())
            .field("registries", &self.registries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".config")))
}

fn var_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Credentials {
    /// Reads the configuration files and variables of this machine's user.
    pub fn from_env() -> Credentials {
        let mut out = Credentials::default();
        let repos = var_path("HELM_REPOSITORY_CONFIG")
            .or_else(|| config_home().map(|c| c.join("helm/repositories.yaml")));
        if let Some(text) = repos.and_then(|p| std::fs::read_to_string(p).ok()) {
            out.repositories = parse_repositories(&text);
        }
        let registry_files = [
            var_path("HELM_REGISTRY_CONFIG")
                .or_else(|| config_home().map(|c| c.join("helm/registry/config.json"))),
            var_path("DOCKER_CONFIG")
                .map(|d| d.join("config.json"))
                .or_else(|| home().map(|h| h.join(".docker/config.json"))),
        ];
        // Helm's own file first: an entry there wins over Docker's
        for path in registry_files.into_iter().flatten() {
            if let Ok(text) = std::fs::read_to_string(path) {
                for (host, c) in parse_docker_config(&text) {
                    out.registries.entry(host).or_insert(c);
                }
            }
        }
        out.fallback = match (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR)) {
            (Ok(u), Ok(p)) if !u.is_empty() => Some((u, p)),
            _ => None,
        };
        out.fallback_hosts = std::env::var(HOSTS_VAR)
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        out
    }

    /// The variables' credentials, if they are for `host` (`host[:port]`).
    fn fallback_for(&self, host: &str) -> Option<(String, String)> {
        let host = host.to_ascii_lowercase();
        let bare = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        self.fallback_hosts
            .iter()
            .any(|h| *h == host || h == bare)
            .then(|| self.fallback.clone())
            .flatten()
    }

    /// The URL of the Helm repository named `name` in repositories.yaml.
    pub fn repository_url(&self, name: &str) -> Option<&str> {
        self.repositories
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.url.as_str())
    }

    /// The `Authorization` header for Helm repository `url` on `host` (`host[:port]`).
    pub fn for_repository(&self, url: &str, host: &str) -> Option<String> {
        let url = url.trim_end_matches('/');
        self.repositories
            .iter()
            .find(|r| r.url.trim_end_matches('/') == url && r.login.is_some())
            .and_then(|r| r.login.clone())
            .or_else(|| self.fallback_for(host))
            .map(|(u, p)| basic(&u, &p))
    }

    /// The `Authorization: Basic` header for registry `host` (`host:port`). Docker Hub's
    /// registry is keyed `index.docker.io`, as `docker login` writes it.
    pub fn for_registry(&self, host: &str) -> Option<String> {
        let hub = matches!(host, "registry-1.docker.io" | "docker.io");
        self.registries
            .get(host)
            .or_else(|| {
                hub.then(|| self.registries.get("index.docker.io"))
                    .flatten()
            })
            .cloned()
            .or_else(|| self.fallback_for(host))
            .map(|(u, p)| basic(&u, &p))
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn parse_repositories(text: &str) -> Vec<Repository> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        repositories: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        url: String,
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
    }
    serde_yaml_ng::from_str::<File>(text)
        .map(|f| {
            f.repositories
                .into_iter()
                .map(|e| Repository {
                    login: (!e.username.is_empty()).then_some((e.username, e.password)),
                    name: e.name,
                    url: e.url,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `auths` of a Docker-format config: `auth` (base64 of `user:password`) or the two fields.
/// Hosts are keyed without a scheme or path (`https://index.docker.io/v1/` is
/// `index.docker.io`).
fn parse_docker_config(text: &str) -> Vec<(String, (String, String))> {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (host, entry) in auths {
        let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(field("auth"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let pair = match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None if !field("username").is_empty() => {
                (field("username").to_string(), field("password").to_string())
            }
            None => continue,
        };
        let host = host
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        out.push((host, pair));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_forms() {
        let text = r#"{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"},
            "127.0.0.1:5000": {"username": "a", "password": "b"}, "x": {}}}"#;
        let found = parse_docker_config(text);
        assert_eq!(
            found,
            vec![
                ("index.docker.io".into(), ("u".into(), "p".into())),
                ("127.0.0.1:5000".into(), ("a".into(), "b".into())),
            ]
        );
        let c = Credentials {
            registries: found.into_iter().collect(),
            ..Default::default()
        };
        assert_eq!(
            c.for_registry("127.0.0.1:5000").as_deref(),
            Some("Basic YTpi")
        );
        assert_eq!(
            c.for_registry("registry-1.docker.io").as_deref(),
            Some("Basic dTpw")
        );
        assert_eq!(c.for_registry("other"), None);
        assert!(!format!("{c:?}").contains("YTpi"));
    }

    #[test]
    fn repositories_yaml() {
        let c = Credentials {
            repositories: parse_repositories(
                "repositories:\n- name: team\n  url: https://c.example.com/\n  username: u\n  password: p\n- name: open\n  url: https://o.example.com\n",
            ),
            ..Default::default()
        };
        assert_eq!(c.repository_url("open"), Some("https://o.example.com"));
        assert_eq!(
            c.for_repository("https://c.example.com", "c.example.com")
                .as_deref(),
            Some("Basic dTpw")
        );
        assert_eq!(
            c.for_repository("https://o.example.com", "o.example.com"),
            None
        );
    }

    #[test]
    fn the_variables_go_only_to_their_hosts() {
        let c = Credentials {
            fallback: Some(("u".into(), "p".into())),
            fallback_hosts: vec!["charts.example.com".into(), "127.0.0.1:5000".into()],
            ..Default::default()
        };
        assert!(c.for_registry("127.0.0.1:5000").is_some());
        assert!(c.for_registry("CHARTS.example.com:443").is_some());
        assert!(c.for_registry("127.0.0.1:5001").is_none());
        assert!(c
            .for_repository("https://evil.example.com", "evil.example.com")
            .is_none());
    }
}
