//! envboot: recreate a whole environment (AWS EC2, Kubernetes, charts, ConfigMaps) from one Git commit.
//!
//! The pipeline is `source` (read a commit) -> `model` (typed, validated desired state) ->
//! `render` (Kubernetes objects) -> `plan` (desired vs. what exists, found by tags and labels) ->
//! `apply` (the providers execute the plan). The pure stages live in `envboot-core`, the chart
//! renderer in `envboot-helm`, the providers in `envboot-aws` and `envboot-kube`; this crate
//! holds the engine that drives them, the Git source, secrets and the CLI. See ARCHITECTURE.md.

pub use envboot_aws as aws;
pub use envboot_controller as controller;
pub use envboot_core::{diag, k3s, model, plan, render};
pub use envboot_helm as helm;
pub use envboot_kube as kube;

pub mod charts;
pub mod engine;
pub mod output;
pub mod recreate;
pub mod secrets;
pub mod source;
