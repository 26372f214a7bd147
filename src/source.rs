//! Git source: reads an environment repository at one commit.
//!
//! # Guarantees
//! - Only blobs of the commit are read, never the working tree. Uncommitted changes are listed in
//!   [`Snapshot::ignored_changes`] so the caller can tell the user they were ignored.
//! - A remote URL is cloned into a temporary directory that is removed when the snapshot is dropped.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Repository, StatusOptions};

pub use envboot_core::snapshot::{Snapshot, READ_PREFIXES};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the Git repository at {repo}: {source}")]
    OpenFailed {
        repo: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot clone {url}: {source}")]
    CloneFailed {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("revision `{revision}` does not exist in {repo} (give a branch, tag or commit SHA)")]
    RevisionNotFound { revision: String, repo: String },
    #[error("revision `{revision}` is {kind} in {repo}, not a commit (give a branch, tag or commit SHA)")]
    NotACommit {
        revision: String,
        kind: &'static str,
        repo: String,
    },
    #[error("reading commit {commit} failed: {source}")]
    ReadFailed {
        commit: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot create a temporary directory for the clone: {0}")]
    TempDir(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains('@') && repo.contains(':') && !Path::new(repo).exists())
}

/// Reads the commit `revision` (branch, tag or SHA; `HEAD` by default) of `repo`, a local path or a URL.
///
/// # Errors
/// The repository cannot be opened or cloned, or the revision does not exist.
pub fn read(repo: &str, revision: &str) -> Result<Snapshot> {
    if is_url(repo) {
        let dir = tempfile::tempdir().map_err(Error::TempDir)?;
        let repository = git2::build::RepoBuilder::new()
            .bare(true)
            .clone(repo, dir.path())
            .map_err(|source| Error::CloneFailed {
                url: repo.to_string(),
                source,
            })?;
        let snapshot = read_commit(&repository, repo, revision, false);
        drop(repository);
        drop(dir);
        snapshot
    } else {
        let repository = Repository::discover(repo).map_err(|source| Error::OpenFailed {
            repo: repo.to_string(),
            source,
        })?;
        read_commit(&repository, repo, revision, true)
    }
}

/// The working tree of the local repository `repo` (where `charts lock` and `charts vendor`
/// write), or `None` for a URL or a bare repository.
pub fn worktree(repo: &str) -> Option<std::path::PathBuf> {
    if is_url(repo) {
        return None;
    }
    Repository::discover(repo)
        .ok()
        .and_then(|r| r.workdir().map(Path::to_path_buf))
}

/// The commit `revision` names; otherwise what it names instead, if anything.
fn resolve<'r>(
    repo: &'r Repository,
    revision: &str,
) -> std::result::Result<git2::Commit<'r>, Option<git2::ObjectType>> {
    let candidates = [revision.to_string(), format!("origin/{revision}")];
    let object = candidates
        .iter()
        .find_map(|rev| repo.revparse_single(rev).ok())
        .ok_or(None)?;
    object.peel_to_commit().map_err(|_| {
        // a tag of a tree or blob says what it points at
        object
            .peel(git2::ObjectType::Any)
            .ok()
            .and_then(|o| o.kind())
            .or(object.kind())
    })
}

fn read_commit(repo: &Repository, name: &str, revision: &str, local: bool) -> Result<Snapshot> {
    let commit = resolve(repo, revision).map_err(|kind| match kind {
        Some(kind) => Error::NotACommit {
            revision: revision.to_string(),
            kind: match kind {
                git2::ObjectType::Tree => "a tree (a folder's listing)",
                git2::ObjectType::Blob => "a blob (a file's content)",
                git2::ObjectType::Tag => "a tag",
                _ => "an object",
            },
            repo: name.to_string(),
        },
        None => Error::RevisionNotFound {
            revision: revision.to_string(),
            repo: name.to_string(),
        },
    })?;
    let sha = commit.id().to_string();
    let read_failed = |source| Error::ReadFailed {
        commit: sha.clone(),
        source,
    };
    let tree = commit.tree().map_err(read_failed)?;
    let mut files = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let path = format!("{dir}{}", entry.name().unwrap_or_default());
        let wanted = READ_PREFIXES
            .iter()
            .any(|p| path.starts_with(p) || p.starts_with(&format!("{path}/")));
        if !wanted {
            return git2::TreeWalkResult::Skip;
        }
        if entry.kind() == Some(git2::ObjectType::Blob) {
            match entry.to_object(repo).and_then(|o| o.peel_to_blob()) {
                // a symbolic link is a blob holding its target
                Ok(blob) if entry.filemode() == 0o120000 => {
                    links.insert(path, String::from_utf8_lossy(blob.content()).into_owned());
                }
                Ok(blob) => {
                    files.insert(path, blob.content().to_vec());
                }
                Err(e) => {
                    failure = Some(e);
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })
    .map_err(read_failed)?;
    if let Some(e) = failure {
        return Err(read_failed(e));
    }
    let ignored_changes = if local && !repo.is_bare() {
        uncommitted(repo)
    } else {
        Vec::new()
    };
    Ok(Snapshot {
        links,
        commit: sha.clone(),
        summary: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string(),
        files,
        ignored_changes,
        archives: BTreeMap::new(),
    })
}

/// Paths under [`READ_PREFIXES`] whose working-tree state differs from HEAD.
fn uncommitted(repo: &Repository) -> Vec<String> {
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true);
    let Ok(statuses) = repo.statuses(Some(&mut options)) else {
        return Vec::new();
    };
    statuses
        .iter()
        .filter(|s| !s.status().is_ignored())
        .filter_map(|s| s.path().ok().map(str::to_string))
        .filter(|p| READ_PREFIXES.iter().any(|prefix| p.starts_with(prefix)))
        .collect()
}
