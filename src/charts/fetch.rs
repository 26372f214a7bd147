//! Fetching charts: Helm HTTP repositories (`index.yaml`, then the archive) and OCI registries
//! (the Distribution API: tags, the manifest, the chart layer), with the cache by digest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envboot_core::charts::{self as pins, Locked, Requirement, Scheme};
use envboot_helm::versions;

use super::auth::Credentials;
use super::{write_atomically, Error, Result};

/// Helm's limit on a chart archive.
const MAX_ARCHIVE: u64 = 100 * 1024 * 1024;
/// A repository's index (large public repositories' are tens of megabytes).
const MAX_INDEX: u64 = 256 * 1024 * 1024;
const MAX_JSON: u64 = 16 * 1024 * 1024;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// The chart layer's media types Helm reads: today's, and the one of Helm's first OCI support.
const HELM_LAYERS: [&str; 2] = [
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
    "application/tar+gzip",
];
/// Redirects followed, each checked as the first request is (HTTPS, or HTTP on loopback).
const MAX_REDIRECTS: usize = 10;
/// Pages of a registry's tag list read.
const MAX_TAG_PAGES: usize = 100;

/// Fetches and caches chart archives. Cheap to share; counts its requests.
pub struct Fetcher {
    agent: ureq::Agent,
    cache: PathBuf,
    credentials: Credentials,
    indexes: Mutex<HashMap<String, Arc<Index>>>,
    /// Bearer tokens by registry and scope.
    tokens: Mutex<HashMap<String, String>>,
    requests: std::sync::atomic::AtomicUsize,
}

/// A repository's index: each chart's entries, an entry that does not read skipped (as Helm
/// skips invalid ones).
#[derive(Default)]
struct Index {
    entries: std::collections::BTreeMap<String, Vec<IndexEntry>>,
}

impl Index {
    fn read(body: &[u8]) -> std::result::Result<Index, serde_yaml_ng::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            entries: std::collections::BTreeMap<String, Vec<serde_yaml_ng::Value>>,
        }
        let raw: Raw = serde_yaml_ng::from_slice(body)?;
        let entries = raw
            .entries
            .into_iter()
            .map(|(name, list)| {
                let list = list
                    .into_iter()
                    .filter_map(|v| serde_yaml_ng::from_value::<IndexEntry>(v).ok())
                    .collect();
                (name, list)
            })
            .collect();
        Ok(Index { entries })
    }
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// A chart archive as a repository serves it, with the digest the repository publishes for
/// it (and where), if any.
struct Fetched {
    version: String,
    bytes: Vec<u8>,
    published: Option<(String, &'static str)>,
}

struct Response {
    status: u16,
    challenge: Option<String>,
    /// The `Link` header (a registry's next page of tags).
    link: Option<String>,
    body: Vec<u8>,
}

impl Fetcher {
    /// A fetcher caching in [`super::cache_dir`], with this user's credentials.
    pub fn from_env() -> Fetcher {
        Fetcher::new(super::cache_dir(), Credentials::from_env())
    }

    fn new(cache: PathBuf, credentials: Credentials) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // followed by `get`, which checks every hop
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(600)))
            .user_agent(concat!("envboot/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Fetcher {
            agent,
            cache,
            credentials,
            indexes: Mutex::default(),
            tokens: Mutex::default(),
            requests: Default::default(),
        }
    }

    /// HTTP requests made so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The archive `locked` pins: from the cache, else its repository; checked against the
    /// lock's digest either way.
    ///
    /// # Errors
    /// It cannot be fetched, or its digest differs from the lock's.
    pub fn locked(&self, locked: &Locked) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cached(&locked.digest) {
            return Ok(bytes);
        }
        let exact = Requirement {
            repository: locked.repository.clone(),
            name: locked.name.clone(),
            version: locked.version.clone(),
            exact: true,
            dependency_of: None,
            origin: String::new(),
        };
        let (found, bytes) = self.fetch(&exact)?;
        if found.digest != locked.digest {
            return Err(Error::DigestMismatch {
                what: locked.describe(),
                expected: locked.digest.clone(),
                expected_by: "the lock".into(),
                actual: found.digest,
            });
        }
        Ok(bytes)
    }

    /// The newest version that satisfies `r` (its exact version, or the highest its constraint
    /// allows, as Helm chooses), fetched, checked to be that chart, and cached.
    ///
    /// # Errors
    /// The repository cannot be read, has no such chart or version, or serves something else.
    pub fn resolve(&self, r: &Requirement) -> Result<Locked> {
        self.fetch(r).map(|(l, _)| l)
    }

    fn fetch(&self, r: &Requirement) -> Result<(Locked, Vec<u8>)> {
        let url = self.repository_url(&r.repository)?;
        let scheme = pins::repository_scheme(&url).map_err(|why| Error::Repository {
            repository: r.repository.clone(),
            why,
        })?;
        let Fetched {
            version,
            bytes,
            published,
        } = match scheme {
            Scheme::Helm { .. } => self.helm_repository_chart(&url, r)?,
            Scheme::Oci { tls } => self.registry_chart(&url, tls, r)?,
        };
        let digest = pins::digest_of(&bytes);
        let what = format!("chart {} {} from {}", r.name, version, r.repository);
        if let Some((expected, by)) = published {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what,
                    expected,
                    expected_by: by.into(),
                    actual: digest,
                });
            }
        }
        let files = envboot_helm::unpack_archive(&bytes).map_err(|why| Error::NotAChart {
            what: what.clone(),
            why,
        })?;
        check_metadata(&files, &r.name, &version).map_err(|why| Error::NotAChart {
            what: what.clone(),
            why,
        })?;
        self.store(&digest, &bytes)?;
        Ok((
            Locked {
                repository: r.repository.clone(),
                name: r.name.clone(),
                version,
                digest,
                dependency_of: Vec::new(),
            },
            bytes,
        ))
    }

    /// `@name` and `alias:name` (Helm's forms) are repositories.yaml's URL for `name`.
    fn repository_url(&self, repository: &str) -> Result<String> {
        let alias = repository
            .strip_prefix('@')
            .or_else(|| repository.strip_prefix("alias:"));
        match alias {
            None => Ok(repository.to_string()),
            Some(name) => self
                .credentials
                .repository_url(name)
                .map(str::to_string)
                .ok_or_else(|| Error::Repository {
                    repository: repository.to_string(),
                    why: format!("no repository named `{name}` in Helm's repositories.yaml"),
                }),
        }
    }

    // --- Helm repositories ---------------------------------------------------------------------

    fn helm_repository_chart(&self, url: &str, r: &Requirement) -> Result<Fetched> {
        let index = self.index(url)?;
        let Some(entries) = index.entries.get(&r.name) else {
            return Err(Error::UnknownChart {
                repository: r.repository.clone(),
                name: r.name.clone(),
                available: index.entries.keys().take(20).cloned().collect(),
            });
        };
        let all: Vec<String> = entries.iter().map(|e| e.version.clone()).collect();
        let version = choose(&all, r)?;
        let Some(entry) = entries.iter().find(|e| e.version == version) else {
            return Err(unknown_version(r, &all));
        };
        let Some(chart_url) = entry.urls.first() else {
            return Err(Error::Repository {
                repository: r.repository.clone(),
                why: format!("index.yaml lists no URL for {} {version}", r.name),
            });
        };
        let absolute = resolve_reference(url, chart_url).map_err(|why| Error::Repository {
            repository: r.repository.clone(),
            why: format!(
                "index.yaml lists {} {version} at `{chart_url}`: {why}",
                r.name
            ),
        })?;
        // credentials go to the repository's scheme and host only, as Helm sends them
        let auth = same_origin(&absolute, url)
            .then(|| self.repository_auth(url))
            .flatten();
        let what = format!("chart {} {version}", r.name);
        let response = self.get(&absolute, &what, None, auth.as_deref(), MAX_ARCHIVE)?;
        let bytes = ok_body(response, &what, &absolute)?;
        let published = entry.digest.as_deref().filter(|d| !d.is_empty()).map(|d| {
            let d = if d.starts_with("sha256:") {
                d.to_string()
            } else {
                format!("sha256:{d}")
            };
            (d, "the repository's index.yaml")
        });
        Ok(Fetched {
            version,
            bytes,
            published,
        })
    }

    fn index(&self, url: &str) -> Result<Arc<Index>> {
        let key = url.trim_end_matches('/').to_string();
        if let Some(found) = lock(&self.indexes).get(&key) {
            return Ok(found.clone());
        }
        let index_url = resolve_reference(url, "index.yaml").map_err(|why| Error::Repository {
            repository: url.to_string(),
            why,
        })?;
        let auth = self.repository_auth(url);
        let response = self.get(
            &index_url,
            "the repository index",
            None,
            auth.as_deref(),
            MAX_INDEX,
        )?;
        let body = ok_body(response, "the repository index", &index_url)?;
        let index = Index::read(&body).map_err(|e| Error::Repository {
            repository: url.to_string(),
            why: format!("{index_url} is not a Helm repository index: {e}"),
        })?;
        let index = Arc::new(index);
        lock(&self.indexes).insert(key, index.clone());
        Ok(index)
    }

    fn repository_auth(&self, url: &str) -> Option<String> {
        let host = url::Url::parse(url)
            .ok()
            .map(|u| authority(&u))
            .unwrap_or_default();
        self.credentials.for_repository(url, &host)
    }

    // --- OCI registries ------------------------------------------------------------------------

    fn registry_chart(&self, url: &str, tls: bool, r: &Requirement) -> Result<Fetched> {
        let rest = url.trim_start_matches("oci://").trim_end_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let repo = if path.is_empty() {
            r.name.clone()
        } else {
            format!("{path}/{}", r.name)
        };
        let registry = Registry {
            base: format!("{}://{host}", if tls { "https" } else { "http" }),
            host: host.to_string(),
            repo,
        };
        let version = if r.exact {
            r.version.clone()
        } else {
            let tags = self.tags(&registry, r)?;
            choose(&tags, r)?
        };
        // OCI tags cannot hold `+`: Helm writes it as `_`
        let tag = version.replace('+', "_");
        let what = format!("chart {} {version}", r.name);
        let manifest = self.registry_get(
            &registry,
            &format!("manifests/{tag}"),
            Some(OCI_MANIFEST),
            MAX_JSON,
            &what,
        )?;
        let manifest = match manifest.status {
            200 => manifest.body,
            404 => {
                let tags = self.tags(&registry, r).unwrap_or_default();
                return Err(unknown_version(r, &tags));
            }
            status => {
                return Err(status_error(
                    status,
                    &manifest.body,
                    &what,
                    &registry.url(&format!("manifests/{tag}")),
                ))
            }
        };
        #[derive(serde::Deserialize)]
        struct Manifest {
            #[serde(default)]
            config: Option<Layer>,
            #[serde(default)]
            layers: Vec<Layer>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layer {
            media_type: String,
            digest: String,
        }
        let parsed: Manifest = serde_json::from_slice(&manifest).map_err(|e| Error::NotAChart {
            what: what.clone(),
            why: format!("its manifest does not read as an OCI manifest: {e}"),
        })?;
        let config = parsed.config.as_ref().map(|c| c.media_type.as_str());
        if config != Some(HELM_CONFIG) {
            return Err(Error::NotAChart {
                what,
                why: format!(
                    "its manifest's config is of media type {}, not a Helm chart's ({HELM_CONFIG})",
                    config.unwrap_or("(none)")
                ),
            });
        }
        let Some(layer) = parsed
            .layers
            .iter()
            .find(|l| HELM_LAYERS.contains(&l.media_type.as_str()))
        else {
            return Err(Error::NotAChart {
                what,
                why: format!("its manifest has no layer of media type {}", HELM_LAYERS[0]),
            });
        };
        if !pins::is_digest(&layer.digest) {
            return Err(Error::NotAChart {
                what,
                why: format!(
                    "its chart layer's digest `{}` is not a sha256 digest",
                    layer.digest
                ),
            });
        }
        let blob_path = format!("blobs/{}", layer.digest);
        let blob = self.registry_get(&registry, &blob_path, None, MAX_ARCHIVE, &what)?;
        let bytes = ok_body(blob, &what, &registry.url(&blob_path))?;
        Ok(Fetched {
            version,
            bytes,
            published: Some((layer.digest.clone(), "the registry's manifest")),
        })
    }

    fn tags(&self, registry: &Registry, r: &Requirement) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("the tags of chart {}", r.name);
        let mut all = Vec::new();
        let mut path = "tags/list".to_string();
        for _ in 0..MAX_TAG_PAGES {
            let response = self.registry_get(registry, &path, None, MAX_JSON, &what)?;
            if response.status == 404 {
                return Err(Error::UnknownChart {
                    repository: r.repository.clone(),
                    name: r.name.clone(),
                    available: Vec::new(),
                });
            }
            let next = response
                .link
                .as_deref()
                .and_then(next_page)
                .map(str::to_string);
            let body = ok_body(response, &what, &registry.url(&path))?;
            let tags: Tags = serde_json::from_slice(&body).map_err(|e| Error::Repository {
                repository: r.repository.clone(),
                why: format!("its tag list does not read: {e}"),
            })?;
            all.extend(tags.tags.unwrap_or_default());
            // the next page: `</v2/<name>/tags/list?last=...>; rel="next"`
            match next.and_then(|n| n.split_once("/tags/list").map(|(_, q)| q.to_string())) {
                Some(query) => path = format!("tags/list{query}"),
                None => break,
            }
        }
        Ok(all
            .into_iter()
            .map(|t| t.replace('_', "+"))
            .filter(|t| versions::is_valid(t))
            .collect())
    }

    /// A GET of the registry's API, answering its challenge: a bearer token from its realm
    /// (with this user's credentials, if any), or basic credentials.
    fn registry_get(
        &self,
        registry: &Registry,
        path: &str,
        accept: Option<&str>,
        limit: u64,
        what: &str,
    ) -> Result<Response> {
        let url = registry.url(path);
        let scope = format!("repository:{}:pull", registry.repo);
        let key = format!("{} {scope}", registry.host);
        let token = lock(&self.tokens).get(&key).cloned();
        let response = self.get(&url, what, accept, token.as_deref(), limit)?;
        if response.status != 401 {
            return Ok(response);
        }
        let basic = self.credentials.for_registry(&registry.host);
        let challenge = response.challenge.unwrap_or_default();
        let authorization = if let Some(params) = strip_prefix_ci(&challenge, "bearer ") {
            let params = challenge_params(params);
            let Some(realm) = params.get("realm") else {
                return Err(status_error(401, &response.body, what, &url));
            };
            let separator = if realm.contains('?') { '&' } else { '?' };
            let mut token_url = format!("{realm}{separator}scope={}", query_escape(&scope));
            if let Some(service) = params.get("service") {
                token_url.push_str(&format!("&service={}", query_escape(service)));
            }
            let answer = self.get(
                &token_url,
                "a registry token",
                None,
                basic.as_deref(),
                MAX_JSON,
            )?;
            let body = ok_body(answer, "a registry token", &token_url)?;
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let Some(token) = json
                .get("token")
                .or_else(|| json.get("access_token"))
                .and_then(|t| t.as_str())
            else {
                return Err(Error::Fetch {
                    what: "a registry token".into(),
                    url: realm.clone(),
                    why: "the answer holds no token".into(),
                });
            };
            let bearer = format!("Bearer {token}");
            lock(&self.tokens).insert(key, bearer.clone());
            bearer
        } else {
            match basic {
                Some(b) => b,
                None => return Err(status_error(401, &response.body, what, &url)),
            }
        };
        self.get(&url, what, accept, Some(&authorization), limit)
    }

    // --- HTTP and the cache --------------------------------------------------------------------

    /// A GET, following redirects itself: every hop must be HTTPS (or HTTP on loopback), and
    /// credentials go only to hops of the first URL's scheme, host and port.
    fn get(
        &self,
        url: &str,
        what: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
        limit: u64,
    ) -> Result<Response> {
        let mut current = url.to_string();
        let mut authorization = authorization.map(str::to_string);
        for _ in 0..=MAX_REDIRECTS {
            let fetch_error = |why: String| Error::Fetch {
                what: what.to_string(),
                url: current.clone(),
                why,
            };
            let parsed = url::Url::parse(&current).map_err(|e| fetch_error(e.to_string()))?;
            if !secure_transport(&parsed) {
                return Err(fetch_error(
                    "plain HTTP is used only on loopback (127.0.0.1, ::1, localhost)".into(),
                ));
            }
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut request = self.agent.get(&current);
            if let Some(a) = accept {
                request = request.header("Accept", a);
            }
            if let Some(a) = &authorization {
                request = request.header("Authorization", a);
            }
            let mut response = request.call().map_err(|e| fetch_error(e.to_string()))?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let Some(location) = header("location") else {
                    return Err(fetch_error(format!("HTTP {status} without a Location")));
                };
                let next = parsed
                    .join(&location)
                    .map_err(|e| fetch_error(format!("redirect to `{location}`: {e}")))?;
                if next.origin() != parsed.origin() {
                    authorization = None;
                }
                current = next.to_string();
                continue;
            }
            let (challenge, link) = (header("www-authenticate"), header("link"));
            let body = response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| fetch_error(e.to_string()))?;
            return Ok(Response {
                status,
                challenge,
                link,
                body,
            });
        }
        Err(Error::Fetch {
            what: what.to_string(),
            url: url.to_string(),
            why: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        self.cache
            .join("sha256")
            .join(format!("{}.tgz", digest.trim_start_matches("sha256:")))
    }

    /// A cached archive, if it is there and still has its digest.
    fn cached(&self, digest: &str) -> Option<Vec<u8>> {
        std::fs::read(self.cache_path(digest))
            .ok()
            .filter(|b| pins::digest_of(b) == digest)
    }

    fn store(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self.cache_path(digest);
        if path.exists() {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }
}

struct Registry {
    base: String,
    host: String,
    repo: String,
}

impl Registry {
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repo)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ok_body(response: Response, what: &str, url: &str) -> Result<Vec<u8>> {
    if response.status == 200 {
        Ok(response.body)
    } else {
        Err(status_error(response.status, &response.body, what, url))
    }
}

fn status_error(status: u16, body: &[u8], what: &str, url: &str) -> Error {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_string();
    let why = match status {
        401 | 403 => format!("HTTP {status}: not authorized (credentials come from Helm's repositories.yaml or registry configuration, Docker's config.json without credential helpers, or {} and {} for the hosts in {})", super::USERNAME_VAR, super::PASSWORD_VAR, super::HOSTS_VAR),
        404 => "HTTP 404: not found".to_string(),
        _ if text.is_empty() => format!("HTTP {status}"),
        _ => format!("HTTP {status}: {text}"),
    };
    Error::Fetch {
        what: what.to_string(),
        url: url.to_string(),
        why,
    }
}

/// The version of `all` that `r` asks for: its exact version, or the highest its constraint
/// allows (an empty constraint allows any).
fn choose(all: &[String], r: &Requirement) -> Result<String> {
    if r.exact {
        return all
            .iter()
            .find(|v| **v == r.version)
            .cloned()
            .ok_or_else(|| unknown_version(r, all));
    }

    all.iter()
        .filter(|v| pins::version_satisfies(&r.version, v))
        .max_by(|a, b| versions::cmp(a, b))
        .cloned()
        .ok_or_else(|| unknown_version(r, all))
}

/// An unknown version, with the versions nearest to the one asked for.
fn unknown_version(r: &Requirement, all: &[String]) -> Error {
    let mut sorted: Vec<&String> = all.iter().collect();
    sorted.sort_by(|a, b| versions::cmp(a, b));
    sorted.dedup();
    let wanted = r.version.trim_start_matches(['^', '~', '=', '>', '<', ' ']);
    let at = sorted
        .iter()
        .position(|v| versions::cmp(v, wanted).is_ge())
        .unwrap_or(sorted.len());
    let nearest = sorted[at.saturating_sub(2)..(at + 2).min(sorted.len())]
        .iter()
        .map(|v| v.to_string())
        .collect();
    Error::UnknownVersion {
        repository: r.repository.clone(),
        name: r.name.clone(),
        wanted: if r.exact {
            r.version.clone()
        } else {
            format!("`{}`", r.version)
        },
        nearest,
    }
}

/// The archive's Chart.yaml names the chart and version asked for.
fn check_metadata(
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    name: &str,
    version: &str,
) -> std::result::Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(default)]
        name: String,
        #[serde(default)]
        version: String,
    }
    let meta: Meta = files
        .get("Chart.yaml")
        .and_then(|b| serde_yaml_ng::from_slice(b).ok())
        .ok_or("its Chart.yaml does not read")?;
    if meta.name != name || meta.version != version {
        return Err(format!(
            "its Chart.yaml says {} {}",
            meta.name, meta.version
        ));
    }
    Ok(())
}

/// A URL of an index resolved against the repository's URL as Helm's `ResolveReferenceURL`
/// does: an absolute URL as it is; otherwise relative to the repository's folder (its path
/// with one trailing `/`), with the repository's query.
fn resolve_reference(repository: &str, reference: &str) -> std::result::Result<String, String> {
    if url::Url::parse(reference).is_ok() {
        return Ok(reference.to_string());
    }
    let mut base = url::Url::parse(repository).map_err(|e| e.to_string())?;
    let path = format!("{}/", base.path().trim_end_matches('/'));
    base.set_path(&path);
    let mut resolved = base.join(reference).map_err(|e| e.to_string())?;
    resolved.set_query(base.query());
    Ok(resolved.to_string())
}

/// Same scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// HTTPS, or HTTP to a loopback host.
fn secure_transport(u: &url::Url) -> bool {
    match u.scheme() {
        "https" => true,
        "http" => pins::is_loopback(u),
        _ => false,
    }
}

/// `host[:port]` of a URL, lower-case.
fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or_default().to_ascii_lowercase();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_page(link: &str) -> Option<&str> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// `realm="...",service="...",scope="..."` of a `WWW-Authenticate` challenge.
fn challenge_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or_default())
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.insert(k, v.to_string());
        rest = next.trim_start_matches(',').trim();
    }
    out
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: &str, exact: bool) -> Requirement {
        Requirement {
            repository: "https://r".into(),
            name: "app".into(),
            version: version.into(),
            exact,
            dependency_of: None,
            origin: String::new(),
        }
    }

    #[test]
    fn chooses_as_helm_does() {
        let all: Vec<String> = ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0"]
            .map(String::from)
            .to_vec();
        assert_eq!(choose(&all, &req("^1.0", false)).unwrap(), "1.10.0");
        assert_eq!(choose(&all, &req("*", false)).unwrap(), "2.0.0");
        assert_eq!(choose(&all, &req("1.2.0", true)).unwrap(), "1.2.0");
        let Err(Error::UnknownVersion { nearest, .. }) = choose(&all, &req("1.3.0", true)) else {
            panic!("expected an unknown version");
        };
        assert_eq!(nearest, ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]);
    }

    #[test]
    fn references_and_challenges() {
        let r = |b, x| resolve_reference(b, x).unwrap();
        assert_eq!(r("https://h/c/", "a-1.tgz"), "https://h/c/a-1.tgz");
        assert_eq!(r("https://h/c", "/x/a.tgz"), "https://h/x/a.tgz");
        assert_eq!(r("https://h/c", "https://o/a.tgz"), "https://o/a.tgz");
        assert_eq!(r("https://h/c/d", "../a.tgz"), "https://h/c/a.tgz");
        assert_eq!(
            r("https://h/c?sig=1", "index.yaml"),
            "https://h/c/index.yaml?sig=1"
        );
        assert!(same_origin("https://h/a", "https://H:443/b"));
        assert!(!same_origin("https://h/a", "http://h/a"));
        assert_eq!(
            next_page(r#"</v2/c/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/c/tags/list?last=b&n=2")
        );
        assert!(secure_transport(
            &url::Url::parse("http://[::1]:5/").unwrap()
        ));
        assert!(!secure_transport(
            &url::Url::parse("http://10.0.0.1/").unwrap()
        ));
        let p = challenge_params(
            r#"realm="https://auth/token",service="reg",scope="repository:a:pull""#,
        );
        assert_eq!(p["realm"], "https://auth/token");
        assert_eq!(p["scope"], "repository:a:pull");
    }
}
