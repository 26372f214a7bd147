//! The sandbox: the shared servers (moto's EC2 API and a kube-apiserver, from
//! `scripts/sandbox`), private ones for tests that restart servers or need their own
//! certificates, settings under which no API answers, names unique to this run, and skips.
//!
//! All tests are threads of one process, so what used to be separate per test binary is shared
//! now. The hazards, and how they are handled here:
//! - the cluster's API surface: a test that adds a CustomResourceDefinition changes what every
//!   other run discovers (destroy and pruning list every kind the cluster serves; a kind that
//!   goes away between discovery and list fails that run). Such a test takes the shared
//!   sandbox [`sandbox_alone`]; every other test holds it shared ([`sandbox`]) for its whole run;
//! - ports of private sandboxes: two may start at once, so [`free_port`] never hands out a port
//!   twice in this process, and picks them below the kernel's range for outgoing connections;
//! - the process environment: no test changes it, and `envboot` children never inherit it (see
//!   `run`);
//! - the library's registry of secret values to redact (`envboot::secrets::register_sensitive`)
//!   is process-wide: tests that parse k3s credentials in-process register them here. No test
//!   checks in-process redaction, and the values are random, so nothing else is masked by them.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::project_root;

/// Reads a sandbox folder's `env` file (`export K=V` lines).
fn read_settings(dir: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("env")).expect("read the sandbox's env file");
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Starts the shared sandbox if it is not running (`scripts/sandbox up`, idempotent and
/// locked), once per process, and returns its settings (`.sandbox/env`). Also what private
/// sandboxes need: the Kubernetes build and moto's virtualenv, cached by the first `up`.
pub fn sandbox_ready() -> &'static HashMap<String, String> {
    static SETTINGS: OnceLock<HashMap<String, String>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let root = project_root();
        let status = Command::new("bash")
            .arg(root.join("scripts/sandbox"))
            .arg("up")
            .status()
            .expect("run scripts/sandbox up");
        assert!(
            status.success(),
            "scripts/sandbox up failed; see its output above"
        );
        let dir = std::env::var("ENVBOOT_SANDBOX_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".sandbox"));
        read_settings(&dir)
    })
}

/// Held by every test that uses the shared sandbox: shared by most, alone by a test that
/// changes what the whole cluster serves.
static CLUSTER: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread (this test) holds [`CLUSTER`]: taking it twice could deadlock.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// The shared sandbox, held for as long as this value lives (the whole test).
pub struct Sandbox {
    settings: &'static HashMap<String, String>,
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl Sandbox {
    fn take(alone: bool) -> Sandbox {
        assert!(
            !HOLDING.get(),
            "this test holds the sandbox already: pass its settings down instead"
        );
        let settings = sandbox_ready();
        let (shared, alone) = if alone {
            let guard = CLUSTER.write().unwrap_or_else(PoisonError::into_inner);
            (None, Some(guard))
        } else {
            let guard = CLUSTER.read().unwrap_or_else(PoisonError::into_inner);
            (Some(guard), None)
        };
        HOLDING.set(true);
        Sandbox {
            settings,
            _shared: shared,
            _alone: alone,
        }
    }

    /// Its settings (the environment `envboot` runs with), for as long as it is held.
    pub fn settings(&self) -> &HashMap<String, String> {
        self.settings
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        HOLDING.set(false);
    }
}

/// The shared sandbox, shared with the other tests that run at the same time.
pub fn sandbox() -> Sandbox {
    Sandbox::take(false)
}

/// The shared sandbox with no other test using it: for a test that changes what the whole
/// cluster serves (a CustomResourceDefinition).
pub fn sandbox_alone() -> Sandbox {
    Sandbox::take(true)
}

/// A name unique to this test run: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Says that `test` did not run and why, on the process's standard error itself: the test
/// harness captures `println!` and `eprintln!` of passing tests, so those would never be seen.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Settings under which any AWS or Kubernetes call fails at once (closed port 9 on loopback):
/// a test of input errors that gets exit code 1 instead of its own code made an API call.
pub fn unreachable(dir: &Path) -> HashMap<String, String> {
    let kubeconfig = dir.join(".kubeconfig-unreachable");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: envboot-sandbox\n  context: {cluster: c, user: u}\ncurrent-context: envboot-sandbox\n",
    )
    .expect("write kubeconfig");
    [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "none"),
        ("AWS_SECRET_ACCESS_KEY", "none"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("KUBECONFIG", kubeconfig.to_str().expect("utf-8 path")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The shared sandbox's own ports (`scripts/sandbox`'s defaults), never given to a private one.
const SHARED_PORTS: [u16; 4] = [23790, 23800, 25000, 26443];

/// A port for a private sandbox's server: free now, never handed out before in this process
/// (two private sandboxes may start at once), and below the kernel's range of ports for
/// outgoing connections, so that no client socket takes it before the server binds it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let outgoing_from: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (
        outgoing_from.saturating_sub(12_000).max(1024),
        outgoing_from,
    );
    let span = u32::from(high - low);
    // Start where another process running these tests would not (by PID).
    let start = std::process::id() * 7 % span;
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    (0..span)
        .map(|i| low + ((start + i) % span) as u16)
        .find(|port| {
            !given.contains(port)
                && !SHARED_PORTS.contains(port)
                && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
        })
        .inspect(|port| {
            given.insert(*port);
        })
        .expect("a free port below the outgoing range")
}

/// A sandbox of this test's own (a control plane and moto, without a node), stopped (its
/// processes only) when dropped.
pub struct PrivateSandbox {
    pub dir: tempfile::TempDir,
    pub ports: Vec<(&'static str, u16)>,
    pub settings: HashMap<String, String>,
}

impl PrivateSandbox {
    fn command(&self, verb: &str) -> std::process::ExitStatus {
        Command::new("bash")
            .arg(project_root().join("scripts/sandbox"))
            .arg(verb)
            .env("ENVBOOT_SANDBOX_DIR", self.dir.path())
            // The machine's one node belongs to the shared sandbox.
            .env("ENVBOOT_SANDBOX_NODE", "0")
            .envs(self.ports.iter().map(|(k, v)| (*k, v.to_string())))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/sandbox")
    }

    pub fn start() -> PrivateSandbox {
        Self::start_with(|_| {})
    }

    /// Starts one whose folder `prepare` filled first: `ca.crt` and `ca.key` there make the
    /// API server's certificate issued by that CA; `client-ca.crt` makes it accept client
    /// certificates that CA signed.
    pub fn start_with(prepare: impl FnOnce(&Path)) -> PrivateSandbox {
        sandbox_ready(); // builds what a private sandbox needs, if it is not cached yet
        let mut sandbox = PrivateSandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            ports: ["ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT", "MOTO_PORT"]
                .into_iter()
                .map(|k| (k, free_port()))
                .collect(),
            settings: HashMap::new(),
        };
        prepare(sandbox.dir.path());
        assert!(sandbox.command("up").success(), "private sandbox up");
        sandbox.settings = read_settings(sandbox.dir.path());
        sandbox
    }

    /// The port of one of its servers (`APISERVER_PORT`, ...).
    pub fn port(&self, name: &str) -> u16 {
        self.ports
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.ports))
    }

    /// Kills one of its servers (SIGKILL, by the PID the sandbox recorded) and starts it again.
    pub fn restart(&self, server: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join(format!("{server}.pid")))
            .expect("pid file");
        let killed = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill");
        assert!(killed.success(), "killed {server}");
        assert!(self.command("up").success(), "{server} restarted");
    }
}

impl Drop for PrivateSandbox {
    fn drop(&mut self) {
        self.command("down");
    }
}
