//! The input of the pure pipeline: the files of one commit, read by the binary's Git source.

use std::collections::BTreeMap;

/// Folders of the repository that envboot reads; everything else in the commit is ignored.
pub const READ_PREFIXES: [&str; 3] = ["environments/", "modules/", "vendor/charts/"];

/// The files of one commit under [`READ_PREFIXES`], with the commit's identity.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Full SHA of the commit.
    pub commit: String,
    /// First line of the commit message.
    pub summary: String,
    /// Repository-relative path (with `/`) to contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Paths with uncommitted changes in the working tree that were ignored.
    pub ignored_changes: Vec<String>,
    /// Symbolic links committed under [`READ_PREFIXES`]: path to target. envboot never follows
    /// them (a link's target is outside what Git pins); a link where envboot reads is an error.
    pub links: BTreeMap<String, String>,
    /// Chart archives the environment's lock pins, by digest (`sha256:...`): the binary puts
    /// them here from `vendor/charts/`, its cache or the chart's repository, each checked
    /// against its digest.
    pub archives: BTreeMap<String, Vec<u8>>,
}

impl Snapshot {
    /// Builds a snapshot from files in memory (for tests of pure logic).
    pub fn from_files(commit: &str, files: BTreeMap<String, Vec<u8>>) -> Snapshot {
        Snapshot {
            commit: commit.to_string(),
            summary: String::new(),
            files,
            ignored_changes: Vec::new(),
            links: BTreeMap::new(),
            archives: BTreeMap::new(),
        }
    }

    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Files below a folder (`dir` without trailing slash), as (path relative to `dir`, contents).
    pub fn files_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let len = prefix.len();
        self.files
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(move |(k, v)| (&k[len..], v.as_slice()))
    }

    pub fn short_commit(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }
}
