//! envboot: recreate a whole environment (AWS EC2, Kubernetes, charts, ConfigMaps) from one Git commit.
//!
//! The pipeline is `source` (read a commit) -> `model` (typed, validated desired state) ->
//! `render` (Kubernetes objects) -> `plan` (desired vs. what exists, found by tags and labels) ->
//! `apply` (the providers execute the plan). See ARCHITECTURE.md.

pub mod aws;
pub mod diag;
pub mod engine;
pub mod helm;
pub mod k3s;
pub mod kube;
pub mod model;
pub mod plan;
pub mod recreate;
pub mod render;
pub mod secrets;
pub mod source;
