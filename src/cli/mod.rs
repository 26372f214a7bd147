//! The command line: one module per command, each with its own arguments (only the flags it
//! uses) and one `run` function that builds the library's options, calls it and prints.

#[macro_use]
mod redact;

pub mod apply;
pub mod charts;
pub mod cluster;
pub mod controller;
pub mod destroy;
pub mod drift;
mod execute;
pub mod kubeconfig;
pub mod plan;
mod printer;
pub mod reconcile;
pub mod recreate;
pub mod render;
pub mod secret;
pub mod shared;
pub mod status;
pub mod template;
pub mod validate;
pub mod verify;

use clap::{Parser, Subcommand};

pub const AFTER_HELP: &str = "\
Exit codes:
  0   success (plan --detailed-exitcode: no changes)
  1   AWS or Kubernetes failed, or destroy left something behind (the leak report lists it)
  2   plan --detailed-exitcode: there are changes; drift: the live environment drifted;
      verify: something declared is missing, differs from Git or is not ready;
      recreate: a phase failed (the reports say which); sync: the Environment drifted
  3   the environment is invalid (file:line:column is printed)
  4   the repository or revision cannot be read
  5   another run holds the environment's lock (it names the holder)
  6   something Git declares exists without the environment's tag or label: nothing was
      changed (the plan says CONFLICT; --adopt takes it over)
  7   a chart cannot be fetched, or what was fetched differs from its digest in the
      lock (both digests are printed): nothing was changed
  64  wrong command line

Environment:
  AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, ...   the standard AWS configuration chain
  KUBECONFIG                                       where the cluster contexts are
  ENVBOOT_K3S_ENDPOINT                             a k3s cluster's API server address
                                                   (default: https://<server public IP>:6443)
  ENVBOOT_AGE_IDENTITY_FILE, ENVBOOT_AGE_IDENTITY  the age identity that decrypts secrets
  ENVBOOT_OUTPUT=text|json                         output format (default: text on a terminal)
  ENVBOOT_CHART_CACHE                              where chart archives are cached by digest
                                                   (default: ~/.cache/envboot/charts)
  ENVBOOT_CHART_USERNAME, ENVBOOT_CHART_PASSWORD   credentials for the chart repositories and
  ENVBOOT_CHART_HOSTS                              registries on these hosts (comma-separated)
                                                   that Helm's and Docker's configuration has
                                                   none for
  ENVBOOT_KUBE_QPS, ENVBOOT_KUBE_BURST             client-side rate limit on Kubernetes API
                                                   requests (default 300 a second, bursts of 1000)
  ENVBOOT_TIMINGS=1                                where the time went: each phase's start and
                                                   length, printed to standard error at the end

Examples:
  envboot validate local
  envboot plan staging --revision main
  envboot apply local
  envboot apply local --revision v1.4.0          # roll back to an older revision
  envboot drift local                            # exit 2 if the live environment drifted
  envboot plan local --output json
  envboot recreate local --as local-nightly --report-dir reports
  envboot reconcile local --watch --interval 5m  # self-healing, until stopped
  envboot destroy local
  envboot cluster init edge                      # k3s credentials, then commit cluster.age
  envboot kubeconfig edge > ~/.kube/edge.yaml
  envboot render staging --repo https://example.com/infra.git
  envboot charts lock local                      # pin remote charts, then commit the lock
  envboot controller crd | kubectl apply -f -    # then run it: docs/controller.md
  envboot sync local -n envboot-system           # reconcile an Environment resource now";

/// Recreate a whole environment (AWS EC2, Kubernetes, charts, ConfigMaps) from one Git commit.
///
/// envboot reads environments/<ENVIRONMENT>/environment.yaml and modules/ from a commit (never
/// from uncommitted files), finds what exists by its own tags and labels (no state file), and
/// makes the live environment match Git.
#[derive(Debug, Parser)]
#[command(name = "envboot", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, in the order `envboot --help` lists them; each one's help text is on its
/// arguments' type.
#[derive(Debug, Subcommand)]
pub enum Command {
    Validate(validate::ValidateArgs),
    Render(render::RenderArgs),
    Plan(plan::PlanArgs),
    Verify(verify::VerifyArgs),
    Recreate(recreate::RecreateArgs),
    Reconcile(reconcile::ReconcileArgs),
    Status(status::StatusArgs),
    Drift(drift::DriftArgs),
    Apply(apply::ApplyArgs),
    Template(template::TemplateArgs),
    /// Encrypt, decrypt and edit secret files (age; the identity comes from ENVBOOT_AGE_IDENTITY_FILE
    /// or ENVBOOT_AGE_IDENTITY, never from Git).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    Destroy(destroy::DestroyArgs),
    /// A k3s cluster's credentials (`cluster: {type: k3s}`).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Charts from Helm repositories and OCI registries: pin them by digest in the
    /// environment's lock, and vendor them into the repository.
    #[command(subcommand)]
    Charts(charts::ChartsCommand),
    /// envboot as a Kubernetes controller of Environment resources (envboot.dev/v1alpha1):
    /// `run` it in the cluster, print its `crd`.
    #[command(subcommand)]
    Controller(controller::ControllerCommand),
    Sync(controller::SyncArgs),
}
