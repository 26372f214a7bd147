//! envboot's pure pipeline: a commit's files ([`snapshot`]) become a validated model
//! ([`model`]), rendered Kubernetes objects ([`render`]) and a plan ([`plan`]), with the
//! dependency-graph executor the engine runs changes with ([`executor`]).
//!
//! *Architecture invariant*: **this crate does no IO.** It depends on no async runtime, cloud
//! SDK, Kubernetes client or Git library, so the compiler keeps it pure.

pub mod charts;
pub mod diag;
pub mod executor;
pub mod k3s;
pub mod lock;
pub mod model;
pub mod plan;
pub mod render;
pub mod sensitive;
pub mod snapshot;
