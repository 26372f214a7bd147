//! The integration tests: one test binary (linking the AWS SDK and kube once), one module per
//! area. Most run against the local sandbox (moto's EC2 API and a real kube-apiserver, started
//! by `scripts/sandbox`); see `common` for the helpers and for what tests share as threads of
//! this one process.

/// Helpers: the sandbox, repositories, running envboot, reading AWS and Kubernetes.
mod common;

/// Approval before apply and destroy; saved plans applied exactly, stale ones refused.
mod approval;
/// The AWS layer against moto: every resource type, in-place updates and replacements,
/// conflicts and adoption, destroy's sweep, API errors, mutually referring security groups.
mod aws;
/// The corpus of broken environments: each fails with its own located message before any API
/// call.
mod broken;
/// A chart from an OCI registry asking for credentials (htpasswd): refused without them, locked
/// with Docker's config.json or envboot's variables, the password never printed.
mod chart_auth;
/// Charts from a Helm repository and an OCI registry, pinned by digest: lock, refusals,
/// vendor, and dependencies of chart folders.
mod charts;
/// ConfigMaps from folders, env files and binary files; hash suffixes; `render --output-dir`.
mod configmaps;
/// `envboot controller`: Environment resources reconciled from a Git daemon, drift healed and
/// reported, sync, the push webhook, Events, metrics, notifications, leader election.
mod controller;
/// Crash recovery: envboot killed (SIGKILL) at many points of an apply and a destroy.
mod crash;
/// Faults between envboot and AWS (a proxy injecting 503s, throttling, dropped connections).
mod faults;
/// Helm hooks at their phases, and a failing hook stopping an upgrade.
mod hooks;
/// Reading the environment from Git and rejecting bad input, with no server.
mod input;
/// Rendering for the cluster as `helm install` does: `.Capabilities`, `lookup`, generated values.
mod install;
/// The inventory envboot keeps in the cluster, and pruning without it.
mod inventory;
/// `cluster.type: k3s`: generated credentials, nodes, user-data, the cluster layer (private
/// sandbox), and cloud-init's validation of the user-data.
mod k3s;
/// Faults between envboot and the Kubernetes API server (a proxy injecting faults).
mod kube_faults;
/// The Kubernetes layer: drift, field-manager conflicts, normalisation, plan cost, the lock,
/// readiness, reconcile, a public chart, the client-side rate limit.
mod kubernetes;
/// The whole lifecycle of one environment: create, no-op apply, change, rollback, destroy.
mod lifecycle;
/// Folders of plain manifests: applied, drift healed, pruned.
mod manifests;
/// Ordering: a CRD and its resources in one run, `dependsOn` between releases.
mod ordering;
/// Ownership in Kubernetes: namespaces holding foreign objects kept, unlabelled objects a
/// conflict until adopted.
mod ownership;
/// Disaster recovery (everything deleted behind envboot's back) and destroy's leak report.
mod recovery;
/// The nightly `recreate` job: a throwaway copy built, verified, destroyed.
mod recreate;
/// Servers restarted in the middle of a run (private sandbox).
mod restart;
/// Secrets: age-encrypted in Git, applied as Secrets, never printed.
mod secrets;
