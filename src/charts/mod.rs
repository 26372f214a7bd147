//! Charts from where charts live: Helm repositories (`index.yaml` over HTTPS) and OCI
//! registries, pinned in Git by the environment's lock (`envboot_core::charts`).
//!
//! # Guarantees
//! - **Nothing is used that does not match its digest in the lock**: an archive from
//!   `vendor/charts/`, the cache or a repository is checked before the model sees it; a
//!   mismatch is refused naming both digests, before any AWS or Kubernetes call.
//! - Archives are cached by digest outside the repository ([`cache_dir`]), so a second run and
//!   an offline rebuild fetch nothing; after `charts vendor` nothing is fetched at all.
//! - Credentials (Helm's and Docker's configuration, or [`USERNAME_VAR`]/[`PASSWORD_VAR`])
//!   are sent only to the host they are for, over HTTPS or to loopback, and never printed.

mod auth;
mod fetch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use envboot_core::charts::{self as pins, Locked, Requirement};
use envboot_core::snapshot::Snapshot;

pub use auth::{HOSTS_VAR, PASSWORD_VAR, USERNAME_VAR};
pub use fetch::Fetcher;

/// Overrides where chart archives are cached.
pub const CACHE_VAR: &str = "ENVBOOT_CHART_CACHE";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot fetch {what} from {url}: {why}")]
    Fetch {
        what: String,
        url: String,
        why: String,
    },
    #[error("{repository} has no chart `{name}`{}", if .available.is_empty() { String::new() } else { format!(" (it has: {})", .available.join(", ")) })]
    UnknownChart {
        repository: String,
        name: String,
        available: Vec<String>,
    },
    #[error("{repository} has no version of chart `{name}` that is {wanted}{}", if .nearest.is_empty() { String::new() } else { format!(" (nearest: {})", .nearest.join(", ")) })]
    UnknownVersion {
        repository: String,
        name: String,
        wanted: String,
        nearest: Vec<String>,
    },
    #[error("{what}: the digest is {actual}, but {expected_by} pins {expected}; refused (re-published or tampered with); nothing was changed")]
    DigestMismatch {
        what: String,
        expected: String,
        expected_by: String,
        actual: String,
    },
    #[error("{what} is not a chart: {why}")]
    NotAChart { what: String, why: String },
    #[error("repository `{repository}`: {why}")]
    Repository { repository: String, why: String },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error(
        "`charts {command}` writes into a working tree: give a local repository, not `{repo}`"
    )]
    NotLocal { command: &'static str, repo: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where archives are cached: [`CACHE_VAR`], else `$XDG_CACHE_HOME/envboot/charts`, else
/// `~/.cache/envboot/charts`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("envboot").join("charts")
}

/// The archives committed under `vendor/charts/`, by digest.
fn vendored(snapshot: &Snapshot) -> BTreeMap<String, (&str, &[u8])> {
    snapshot
        .files_under(pins::VENDOR_DIR)
        .filter(|(rel, _)| rel.ends_with(".tgz") && !rel.contains('/'))
        .map(|(rel, bytes)| (pins::digest_of(bytes), (rel, bytes)))
        .collect()
}

/// The lock entries of environment `env` as committed, or none (a missing or invalid lock is
/// the model's to report, at its line).
fn committed_lock(snapshot: &Snapshot, env: &str) -> Vec<Locked> {
    let path = pins::lock_path(env);
    snapshot
        .file(&path)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|t| pins::parse_lock(&path, t).ok())
        .map(|(lock, _)| lock.charts)
        .unwrap_or_default()
}

/// The archives a lock pins that could not be had, each with why.
#[derive(Debug, Default)]
pub struct Unavailable(Vec<(String, Error)>);

impl Unavailable {
    /// Why an archive the model found missing (its error names the digest) could not be had:
    /// the fetch's error, which says more than "missing". An archive nothing uses is no error
    /// (the model warns of the unused entry).
    pub fn cause_of(self, model_error: &str) -> Option<Error> {
        self.0
            .into_iter()
            .find(|(digest, _)| model_error.contains(digest.as_str()))
            .map(|(_, e)| e)
    }
}

/// Puts every archive environment `env`'s lock pins into `snapshot.archives`: from
/// `vendor/charts/`, else the cache, else its repository, each checked against its digest.
/// What cannot be had is left out, and returned.
pub fn provide(snapshot: &mut Snapshot, env: &str, fetcher: &Fetcher) -> Unavailable {
    let lock = committed_lock(snapshot, env);
    let mut unavailable = Unavailable::default();
    if lock.is_empty() {
        return unavailable;
    }
    let vendored: BTreeMap<String, Vec<u8>> = vendored(snapshot)
        .into_iter()
        .map(|(d, (_, b))| (d, b.to_vec()))
        .collect();
    for locked in lock {
        if snapshot.archives.contains_key(&locked.digest) {
            continue;
        }
        let bytes = match vendored.get(&locked.digest) {
            Some(b) => b.clone(),
            None => match fetcher.locked(&locked) {
                Ok(b) => b,
                Err(e) => {
                    unavailable.0.push((locked.digest.clone(), e));
                    continue;
                }
            },
        };
        snapshot.archives.insert(locked.digest.clone(), bytes);
    }
    unavailable
}

/// What `charts lock` did with one chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChange {
    Added,
    /// Already pinned and still what the environment asks for.
    Kept,
    /// Pinned before at this version.
    Changed {
        from: String,
    },
}

#[derive(Debug, Clone)]
pub struct LockReport {
    pub path: PathBuf,
    pub charts: Vec<(Locked, LockChange)>,
    /// Entries dropped because nothing asks for them any more.
    pub dropped: Vec<Locked>,
    pub written: bool,
}

/// Resolves every remote chart environment `env` uses at `snapshot` and writes its lock into
/// the working tree `worktree`. An entry already pinned is kept unless `upgrade`.
///
/// # Errors
/// A chart cannot be resolved or fetched, or the lock cannot be written.
pub fn lock(
    worktree: &Path,
    snapshot: &Snapshot,
    requirements: &[Requirement],
    env: &str,
    upgrade: bool,
    fetcher: &Fetcher,
) -> Result<LockReport> {
    let rel = pins::lock_path(env);
    let path = worktree.join(&rel);
    let current = std::fs::read_to_string(&path).ok();
    let previous: Vec<Locked> = match &current {
        Some(text) => pins::parse_lock(&rel, text)
            .map(|(l, _)| l.charts)
            .unwrap_or_default(),
        None => committed_lock(snapshot, env),
    };
    let mut out: Vec<(Locked, LockChange)> = Vec::new();
    for r in requirements {
        let kept = (!upgrade).then(|| r.find(&previous)).flatten();
        let (mut entry, change) = match kept {
            Some(l) => (l.clone(), LockChange::Kept),
            None => {
                let entry = fetcher.resolve(r)?;
                let before = previous.iter().find(|p| {
                    pins::same_repository(&p.repository, &r.repository)
                        && p.name == r.name
                        && p.dependency_of.is_empty() == r.dependency_of.is_none()
                });
                let change = match before {
                    Some(p) if p.version == entry.version && p.digest == entry.digest => {
                        LockChange::Kept
                    }
                    Some(p) => LockChange::Changed {
                        from: p.version.clone(),
                    },
                    None => LockChange::Added,
                };
                (entry, change)
            }
        };
        entry.dependency_of = r.dependency_of.iter().cloned().collect();
        // one archive asked for by several folders is one entry listing them all
        if let Some((same, _)) = out.iter_mut().find(|(e, _)| {
            e.digest == entry.digest
                && e.name == entry.name
                && pins::same_repository(&e.repository, &entry.repository)
                && e.dependency_of.is_empty() == entry.dependency_of.is_empty()
        }) {
            for d in entry.dependency_of {
                if !same.dependency_of.contains(&d) {
                    same.dependency_of.push(d);
                }
            }
            same.dependency_of.sort();
            continue;
        }
        out.push((entry, change));
    }
    let locked: Vec<Locked> = out.iter().map(|(l, _)| l.clone()).collect();
    let dropped: Vec<Locked> = previous
        .iter()
        .filter(|p| {
            !locked
                .iter()
                .any(|l| l.digest == p.digest && l.name == p.name)
        })
        .cloned()
        .collect();
    let text = pins::write_lock(&locked);
    let unchanged = current.as_deref() == Some(text.as_str());
    let written = if locked.is_empty() && current.is_none() || unchanged {
        false
    } else {
        write_atomically(&path, text.as_bytes())?;
        true
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(LockReport {
        path: PathBuf::from(rel),
        charts: out,
        dropped,
        written,
    })
}

#[derive(Debug, Clone)]
pub struct VendorReport {
    /// Repository paths written (or already there with the same bytes).
    pub files: Vec<(String, Locked)>,
    /// `.tgz` files under `vendor/charts/` no lock entry pins any more, removed.
    pub removed: Vec<String>,
}

/// Copies every archive environment `env`'s committed lock pins into `vendor/charts/` of the
/// working tree, checked against its digest, and removes archives there that no environment's
/// committed lock pins.
///
/// # Errors
/// An archive cannot be fetched or differs from its digest, or a file cannot be written.
pub fn vendor(
    worktree: &Path,
    snapshot: &Snapshot,
    env: &str,
    fetcher: &Fetcher,
) -> Result<VendorReport> {
    let lock = committed_lock(snapshot, env);
    let dir = worktree.join(pins::VENDOR_DIR);
    let mut files = Vec::new();
    let mut keep = Vec::new();
    let present = vendored(snapshot);
    for locked in lock {
        let name = match present.get(&locked.digest) {
            Some((rel, _)) => (*rel).to_string(),
            None => {
                let plain = format!("{}-{}.tgz", locked.name, locked.version);
                let taken = dir.join(&plain).exists()
                    && std::fs::read(dir.join(&plain))
                        .map(|b| pins::digest_of(&b) != locked.digest)
                        .unwrap_or(true);
                if taken {
                    let hex = locked.digest.trim_start_matches("sha256:");
                    format!(
                        "{}-{}-{}.tgz",
                        locked.name,
                        locked.version,
                        &hex[..12.min(hex.len())]
                    )
                } else {
                    plain
                }
            }
        };
        let target = dir.join(&name);
        let current = std::fs::read(&target).ok();
        if current.as_deref().map(pins::digest_of).as_deref() != Some(locked.digest.as_str()) {
            let bytes = match present.get(&locked.digest) {
                Some((_, b)) => b.to_vec(),
                None => fetcher.locked(&locked)?,
            };
            write_atomically(&target, &bytes)?;
        }
        keep.push(name.clone());
        files.push((format!("{}/{name}", pins::VENDOR_DIR), locked));
    }
    // what any environment pins stays (the folder is the repository's, not one environment's)
    let pinned: std::collections::BTreeSet<String> = snapshot
        .files
        .keys()
        .filter_map(|p| {
            p.strip_prefix("environments/")
                .and_then(|r| r.strip_suffix("/charts.lock"))
                .filter(|e| !e.contains('/'))
        })
        .flat_map(|e| committed_lock(snapshot, e))
        .map(|l| l.digest)
        .collect();
    let mut removed = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pinned_elsewhere =
                || std::fs::read(e.path()).is_ok_and(|b| pinned.contains(&pins::digest_of(&b)));
            if name.ends_with(".tgz") && !keep.contains(&name) && !pinned_elsewhere() {
                std::fs::remove_file(e.path()).map_err(|err| io_error(&e.path(), &err))?;
                removed.push(format!("{}/{name}", pins::VENDOR_DIR));
            }
        }
    }
    removed.sort();
    Ok(VendorReport { files, removed })
}

fn io_error(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, so a reader sees the
/// old file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_error(dir, &e))?;
    tmp.write_all(bytes).map_err(|e| io_error(path, &e))?;
    tmp.persist(path).map_err(|e| io_error(path, &e.error))?;
    Ok(())
}
