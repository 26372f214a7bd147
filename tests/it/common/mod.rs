//! Shared helpers for the integration tests, by concern:
//!
//! - [`sandbox`](self::sandbox): the shared sandbox servers (and the lock every test that uses
//!   them holds), private sandboxes, settings under which no API answers, unique names, skips;
//! - [`repo`](self::repo): throwaway Git repositories holding an environment;
//! - [`run`](self::run): the one way to start the `envboot` binary;
//! - [`aws`](self::aws): the EC2 client and what an environment owns in AWS;
//! - [`kube`](self::kube): the Kubernetes client and the environment's label selector.
//!
//! Every test uses its own environment name (and so its own tags, labels and namespaces), so
//! tests run in parallel, as threads of this one process, against one sandbox without seeing
//! each other. What they do share is process-wide or cluster-wide; see `sandbox`.

mod aws;
mod charts;
mod kube;
mod repo;
mod run;
mod sandbox;

pub use self::aws::*;
pub use self::charts::*;
pub use self::kube::*;
pub use self::repo::*;
pub use self::run::*;
pub use self::sandbox::*;

/// The project's root folder.
pub fn project_root() -> std::path::PathBuf {
    manifest_dir()
}

/// The package's folder: as cargo gives it when it runs the test (a test binary built in a
/// shared target directory from a checkout elsewhere is reused as it is), else as compiled.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The reference `helm` binary (`scripts/fetch-helm`), or why there is none.
pub fn helm() -> Result<String, String> {
    let out = std::process::Command::new("bash")
        .arg(project_root().join("scripts/fetch-helm"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
