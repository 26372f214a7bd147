//! Charts from Helm repositories and OCI registries, as Git pins them: the environment's lock
//! file (`environments/<name>/charts.lock`: each chart's source, exact version and sha256
//! digest), the vendored archives (`vendor/charts/`), and what an environment asks for that
//! the lock must pin. Reading and checking only; the binary fetches (`src/charts/`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diag::{self, idx, key, Diagnostic, SourceFile};
use crate::model::spec::API_VERSION;

/// The lock file's `kind`.
pub const LOCK_KIND: &str = "ChartLock";

/// Where `envboot charts vendor` writes archives, found again by their digest.
pub const VENDOR_DIR: &str = "vendor/charts";

/// Path of environment `env`'s lock file in the repository.
pub fn lock_path(env: &str) -> String {
    format!("environments/{env}/charts.lock")
}

/// One chart the lock pins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Locked {
    /// As written in environment.yaml or the Chart.yaml that asks for it.
    pub repository: String,
    pub name: String,
    /// The exact version.
    pub version: String,
    /// `sha256:` and the hex digest of the chart's `.tgz` archive.
    pub digest: String,
    /// For a dependency that a chart folder declares and does not vendor: those folders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependency_of: Vec<String>,
}

impl Locked {
    /// `name version from repository`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {} from {}", self.name, self.version, self.repository)
    }

    /// Whether this entry pins a release's chart `name` at `version` from `repository`.
    pub fn is_release_chart(&self, repository: &str, name: &str, version: &str) -> bool {
        self.dependency_of.is_empty()
            && same_repository(&self.repository, repository)
            && self.name == name
            && self.version == version
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LockFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub charts: Vec<Locked>,
}

/// Reads a lock file, checking its header and every digest's form.
///
/// # Errors
/// Every finding, at `file:line:column`.
pub fn parse_lock(path: &str, text: &str) -> Result<(LockFile, SourceFile), Vec<Diagnostic>> {
    let (lock, file): (LockFile, SourceFile) = diag::parse(path, text).map_err(|d| vec![d])?;
    let mut found = crate::model::check_header(&file, &lock.api_version, &lock.kind, LOCK_KIND);
    for (i, c) in lock.charts.iter().enumerate() {
        // they name files (vendor/charts/<name>-<version>.tgz): nothing but a chart's name
        if !is_chart_name(&c.name) {
            found.push(file.at(
                &key(&idx("charts", i), "name"),
                format!(
                    "`{}` is not a chart name (letters, digits, `.`, `_`, `-`)",
                    c.name
                ),
            ));
        }
        if !envboot_helm::versions::is_valid(&c.version) {
            found.push(file.at(
                &key(&idx("charts", i), "version"),
                format!("`{}` is not a chart version", c.version),
            ));
        }
        if !is_digest(&c.digest) {
            found.push(file.at(
                &key(&idx("charts", i), "digest"),
                format!(
                    "`{}` is not a digest: expected `sha256:` and 64 hex digits",
                    c.digest
                ),
            ));
        }
    }
    if found.is_empty() {
        Ok((lock, file))
    } else {
        Err(found)
    }
}

/// The lock file's text, entries sorted, with a header saying what it is.
pub fn write_lock(charts: &[Locked]) -> String {
    let mut charts = charts.to_vec();
    charts.sort();
    charts.dedup();
    let lock = LockFile {
        api_version: API_VERSION.to_string(),
        kind: LOCK_KIND.to_string(),
        charts,
    };
    let body = serde_yaml_ng::to_string(&lock).unwrap_or_default();
    format!(
        "# Written by `envboot charts lock`: the exact charts this environment installs, by\n\
         # digest. Commit it; render, plan and apply use only what it pins.\n{body}"
    )
}

/// A chart's name as Helm allows it, and safe as part of a file name.
pub fn is_chart_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Two repository addresses name the same repository (a trailing `/` aside).
pub fn same_repository(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A Helm repository (`index.yaml` and archives) over HTTPS, or plain HTTP on loopback.
    Helm { tls: bool },
    /// An OCI registry: HTTPS, or plain HTTP on loopback (as Docker allows).
    Oci { tls: bool },
}

/// The scheme of a repository address, or why it cannot be used.
///
/// # Errors
/// Not `https://`, `oci://`, or `http://` on a loopback host.
pub fn repository_scheme(url: &str) -> Result<Scheme, String> {
    let parsed = url::Url::parse(url).ok().filter(|u| u.host().is_some());
    let (scheme, loopback) = match &parsed {
        Some(u) => (u.scheme(), is_loopback(u)),
        None if ["https://", "http://", "oci://"]
            .iter()
            .any(|s| url.starts_with(s)) =>
        {
            return Err(format!("repository `{url}` has no host"));
        }
        None => ("", false),
    };
    match scheme {
        "https" => Ok(Scheme::Helm { tls: true }),
        "oci" => Ok(Scheme::Oci { tls: !loopback }),
        "http" if loopback => Ok(Scheme::Helm { tls: false }),
        "http" => Err(format!(
            "repository `{url}` is plain HTTP: charts are fetched over HTTPS (plain HTTP only from 127.0.0.1, ::1 or localhost)"
        )),
        _ => Err(format!(
            "repository `{url}`: expected an `https://` Helm repository or an `oci://` registry"
        )),
    }
}

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or ::1. (A scheme other than
/// http and https leaves the host unparsed: an address written there is read here.)
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A remote chart the environment uses, which the lock must pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub repository: String,
    pub name: String,
    /// An exact version (a release's chart, or one a chart's Chart.lock pins), or a
    /// constraint (`^1.2.0`) of a Chart.yaml dependency.
    pub version: String,
    pub exact: bool,
    /// The chart folder whose Chart.yaml declares it, for a dependency.
    pub dependency_of: Option<String>,
    /// Where it is asked for (`file:line:column`).
    pub origin: String,
}

impl Requirement {
    /// The lock entry that satisfies this requirement, if any.
    pub fn find<'a>(&self, lock: &'a [Locked]) -> Option<&'a Locked> {
        lock.iter().find(|l| self.is_satisfied_by(l))
    }

    pub fn is_satisfied_by(&self, l: &Locked) -> bool {
        if !same_repository(&l.repository, &self.repository) || l.name != self.name {
            return false;
        }
        match &self.dependency_of {
            None => l.dependency_of.is_empty() && l.version == self.version,
            Some(dir) => {
                l.dependency_of.contains(dir)
                    && if self.exact {
                        l.version == self.version
                    } else {
                        version_satisfies(&self.version, &l.version)
                    }
            }
        }
    }
}

/// `version` satisfies the Chart.yaml constraint (Masterminds semver, as Helm).
pub fn version_satisfies(constraint: &str, version: &str) -> bool {
    envboot_helm::versions::satisfies(constraint, version).unwrap_or(false)
}

/// A Chart.yaml dependency's repository is one envboot fetches from (not `file://`, not empty).
pub fn is_remote_repository(repository: &str) -> bool {
    ["https://", "http://", "oci://"]
        .iter()
        .any(|p| repository.starts_with(p))
        || repository.starts_with('@')
        || repository.starts_with("alias:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(
            repository_scheme("https://charts.example.com"),
            Ok(Scheme::Helm { tls: true })
        );
        assert_eq!(
            repository_scheme("http://127.0.0.1:8080/charts"),
            Ok(Scheme::Helm { tls: false })
        );
        assert_eq!(
            repository_scheme("oci://localhost:5000/charts"),
            Ok(Scheme::Oci { tls: false })
        );
        assert_eq!(
            repository_scheme("oci://[::1]:5000/c"),
            Ok(Scheme::Oci { tls: false })
        );
        assert_eq!(
            repository_scheme("oci://ghcr.io/org"),
            Ok(Scheme::Oci { tls: true })
        );
        assert!(repository_scheme("http://charts.example.com")
            .unwrap_err()
            .contains("plain HTTP"));
        assert!(repository_scheme("ftp://x").is_err());
        assert!(repository_scheme("https://").is_err());
        assert!(repository_scheme("http://127.0.0.1.example.com/c")
            .unwrap_err()
            .contains("plain HTTP"));
        assert_eq!(
            repository_scheme("http://user:pw@127.0.0.2:80/c"),
            Ok(Scheme::Helm { tls: false })
        );
    }

    #[test]
    fn lock_round_trips_and_rejects_bad_digests() {
        let entry = Locked {
            repository: "https://c.example.com".into(),
            name: "app".into(),
            version: "1.2.3".into(),
            digest: digest_of(b"x"),
            dependency_of: vec![],
        };
        let text = write_lock(&[entry.clone(), entry.clone()]);
        let (lock, _) = parse_lock("l", &text).unwrap();
        assert_eq!(lock.charts, vec![entry]);
        let bad = text.replace(&digest_of(b"x"), "sha256:abc");
        let err = parse_lock("l", &bad).unwrap_err();
        assert!(err[0].to_string().contains("is not a digest"), "{err:?}");
    }

    #[test]
    fn requirements_match_entries() {
        let dep = Requirement {
            repository: "https://r.example.com/".into(),
            name: "redis".into(),
            version: "^17.1".into(),
            exact: false,
            dependency_of: Some("modules/app".into()),
            origin: String::new(),
        };
        let mut l = Locked {
            repository: "https://r.example.com".into(),
            name: "redis".into(),
            version: "17.3.1".into(),
            digest: digest_of(b""),
            dependency_of: vec!["modules/app".into()],
        };
        assert!(dep.is_satisfied_by(&l));
        l.version = "18.0.0".into();
        assert!(!dep.is_satisfied_by(&l));
        l.version = "17.3.1".into();
        l.dependency_of = vec!["modules/other".into()];
        assert!(!dep.is_satisfied_by(&l));
    }
}
