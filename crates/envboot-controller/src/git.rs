//! Fetching the followed revision into a bare mirror per Environment (blocking: libgit2).

use std::path::Path;

use crate::crd::GitReference;

/// HTTPS credentials from the Environment's Git Secret.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(sensitive)"))
            .finish()
    }
}

/// The commit a fetch resolved, and who made it (for the audit trail in Events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub commit: String,
    pub author: String,
    pub subject: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}: {message}")]
    Unsupported { url: String, message: String },
    #[error("cannot fetch {what} from {url}: {source}")]
    Fetch {
        url: String,
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("{url} has no {what}")]
    NotFound { url: String, what: String },
    #[error("the mirror at {path}: {source}")]
    Mirror {
        path: String,
        #[source]
        source: git2::Error,
    },
}

/// `url` without its user and password (a token in the URL is a credential): for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url).ok().filter(|u| u.host().is_some()) {
        Some(mut u) => {
            // only a URL that cannot have a user fails these, and it has none to remove
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        // scp-like `user@host:path` (which reads as a URL of scheme `user`), or no URL at
        // all: nothing before an `@`
        None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_string(),
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

/// What `reference` names, for messages: `branch main`, `tag v1`, `commit 1a2b`.
pub fn describe(reference: &GitReference) -> String {
    match (&reference.branch, &reference.tag, &reference.commit) {
        (_, _, Some(c)) => format!("commit {c}"),
        (_, Some(t), None) => format!("tag {t}"),
        (Some(b), None, None) => format!("branch {b}"),
        (None, None, None) => "branch main".to_string(),
    }
}

/// Checks a reference names exactly one of branch, tag and commit.
///
/// # Errors
/// Which fields are set.
pub fn check_reference(reference: &GitReference) -> Result<(), String> {
    let set = [
        reference.branch.is_some(),
        reference.tag.is_some(),
        reference.commit.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        return Err("spec.source.ref sets more than one of branch, tag and commit".to_string());
    }
    if let Some(c) = &reference.commit {
        if c.len() != 40 || !c.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "spec.source.ref.commit `{c}` is not a full 40-character commit SHA"
            ));
        }
    }
    Ok(())
}

/// Whether envboot can fetch `url` (libgit2 built with HTTPS, without SSH).
///
/// # Errors
/// Why not.
pub fn check_url(url: &str) -> Result<(), Error> {
    let unsupported = |message: &str| Error::Unsupported {
        url: redact_url(url),
        message: message.to_string(),
    };
    match url.split_once("://") {
        Some(("https" | "http" | "git" | "file", _)) => Ok(()),
        Some(("ssh", _)) => Err(unsupported(
            "ssh:// is not supported: use an https:// URL with a token in spec.source.secretRef",
        )),
        Some(_) => Err(unsupported(
            "not a Git URL envboot reads (https://, http://, git:// or file://)",
        )),
        None if url.contains('@') => Err(unsupported(
            "SSH (user@host:path) is not supported: use an https:// URL with a token in spec.source.secretRef",
        )),
        None => Err(unsupported(
            "not a URL (https://, http://, git:// or file://)",
        )),
    }
}

/// Fetches `reference` of `url` into the bare mirror `mirror` (created if missing) and
/// resolves it to a commit.
///
/// # Errors
/// The URL is not supported, the fetch fails, or the reference does not exist.
pub fn fetch(
    mirror: &Path,
    url: &str,
    reference: &GitReference,
    credentials: &Credentials,
) -> Result<Fetched, Error> {
    check_url(url)?;
    let mirror_error = |source| Error::Mirror {
        path: mirror.display().to_string(),
        source,
    };
    let repo = match git2::Repository::open_bare(mirror) {
        Ok(r) => r,
        Err(_) => git2::Repository::init_bare(mirror).map_err(mirror_error)?,
    };
    let (refspecs, local): (Vec<String>, Option<String>) =
        match (&reference.branch, &reference.tag, &reference.commit) {
            (_, _, Some(_)) => (
                vec![
                    "+refs/heads/*:refs/heads/*".into(),
                    "+refs/tags/*:refs/tags/*".into(),
                ],
                None,
            ),
            (_, Some(t), None) => (
                vec![format!("+refs/tags/{t}:refs/tags/{t}")],
                Some(format!("refs/tags/{t}")),
            ),
            (b, None, None) => {
                let b = b.as_deref().unwrap_or("main");
                (
                    vec![format!("+refs/heads/{b}:refs/heads/{b}")],
                    Some(format!("refs/heads/{b}")),
                )
            }
        };
    let what = describe(reference);
    let mut remote = repo.remote_anonymous(url).map_err(mirror_error)?;
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut attempts = 0;
    callbacks.credentials(move |_url, user_from_url, allowed| {
        attempts += 1;
        match (&credentials.username, &credentials.password) {
            (user, Some(password))
                if attempts <= 1 && allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) =>
            {
                let user = user.as_deref().or(user_from_url).unwrap_or("git");
                git2::Cred::userpass_plaintext(user, password)
            }
            _ if attempts > 1 => Err(git2::Error::from_str(
                "the credentials of spec.source.secretRef were refused",
            )),
            _ => Err(git2::Error::from_str(
                "the repository asks for credentials: give `username` and `password` in the Secret that spec.source.secretRef names",
            )),
        }
    });
    let mut options = git2::FetchOptions::new();
    options
        .remote_callbacks(callbacks)
        .download_tags(git2::AutotagOption::None);
    remote
        .fetch(&refspecs, Some(&mut options), None)
        .map_err(|source| Error::Fetch {
            url: redact_url(url),
            what: what.clone(),
            source,
        })?;
    let not_found = || Error::NotFound {
        url: redact_url(url),
        what: what.clone(),
    };
    let commit = match (&local, &reference.commit) {
        (Some(name), _) => repo
            .find_reference(name)
            .and_then(|r| r.peel_to_commit())
            .map_err(|_| not_found())?,
        (None, Some(sha)) => git2::Oid::from_str(sha)
            .and_then(|oid| repo.find_commit(oid))
            .map_err(|_| not_found())?,
        (None, None) => return Err(not_found()),
    };
    let author = commit.author();
    Ok(Fetched {
        commit: commit.id().to_string(),
        author: match (author.name().ok(), author.email().ok()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => "unknown".to_string(),
        },
        subject: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit_file(repo: &git2::Repository, message: &str) -> git2::Oid {
        let sig = git2::Signature::now("Ada", "ada@example.com").expect("signature");
        let mut index = repo.index().expect("index");
        let blob = repo.blob(message.as_bytes()).expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: message.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: b"file".to_vec(),
        };
        index.add(&entry).expect("add");
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let parents: Vec<git2::Commit<'_>> = repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .expect("commit")
    }

    #[test]
    fn fetches_a_branch_a_tag_and_a_commit_into_one_mirror() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = git2::Repository::init(dir.path().join("origin")).expect("init");
        origin.set_head("refs/heads/main").expect("head");
        let first = commit_file(&origin, "first");
        origin
            .tag_lightweight("v1", &origin.find_object(first, None).expect("obj"), false)
            .expect("tag");
        let second = commit_file(&origin, "second");
        let url = format!("file://{}", dir.path().join("origin").display());
        let mirror = dir.path().join("mirror.git");
        let none = Credentials::default();
        let branch = fetch(&mirror, &url, &GitReference::default(), &none).expect("branch");
        assert_eq!(branch.commit, second.to_string());
        assert_eq!(branch.author, "Ada <ada@example.com>");
        assert_eq!(branch.subject, "second");
        let tag = GitReference {
            tag: Some("v1".into()),
            ..GitReference::default()
        };
        assert_eq!(
            fetch(&mirror, &url, &tag, &none).expect("tag").commit,
            first.to_string()
        );
        let pinned = GitReference {
            commit: Some(first.to_string()),
            ..GitReference::default()
        };
        assert_eq!(
            fetch(&mirror, &url, &pinned, &none).expect("sha").commit,
            first.to_string()
        );
        let missing = GitReference {
            branch: Some("nope".into()),
            ..GitReference::default()
        };
        assert!(fetch(&mirror, &url, &missing, &none).is_err());
    }

    #[test]
    fn only_the_schemes_libgit2_reads_here_are_accepted() {
        assert!(check_url("https://example.com/a.git").is_ok());
        assert!(check_url("git://127.0.0.1/a.git").is_ok());
        assert!(check_url("ssh://git@example.com/a.git").is_err());
        assert!(check_url("git@example.com:a.git").is_err());
        assert!(check_url("/local/path").is_err());
        assert_eq!(
            redact_url("https://x-access-token:ghp_secret@github.com/a/b.git"),
            "https://github.com/a/b.git"
        );
        assert_eq!(
            redact_url("git://127.0.0.1:9418/r"),
            "git://127.0.0.1:9418/r"
        );
        assert_eq!(
            redact_url("https://:only-a-token@example.com/r.git"),
            "https://example.com/r.git"
        );
        assert_eq!(
            redact_url("deploy:pw@example.com:r.git"),
            "example.com:r.git"
        );
        assert!(check_reference(&GitReference {
            branch: Some("a".into()),
            tag: Some("b".into()),
            commit: None
        })
        .is_err());
        assert!(check_reference(&GitReference {
            commit: Some("abc".into()),
            ..GitReference::default()
        })
        .is_err());
    }
}
