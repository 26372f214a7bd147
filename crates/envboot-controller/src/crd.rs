//! The `Environment` custom resource (`envboot.dev/v1alpha1`): which repository, revision and
//! environment to keep applied, and what the controller last saw.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that asks for a reconcile now (`envboot sync` sets it to the current time); a
/// value the status has not handled yet also applies drift under `drift: Report`.
pub const REQUESTED_AT: &str = "envboot.dev/requested-at";
/// The annotation the Git push webhook sets: a reconcile now, whether or not it is due.
pub const PUSHED_AT: &str = "envboot.dev/pushed-at";
/// The label that assigns an Environment to a controller shard (`envboot controller --shard`).
pub const SHARD_LABEL: &str = "envboot.dev/shard";

/// An environment of a Git repository that the controller keeps applied.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "envboot.dev",
    version = "v1alpha1",
    kind = "Environment",
    plural = "environments",
    shortname = "envb",
    namespaced,
    status = "EnvironmentStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Drifted","type":"string","jsonPath":".status.conditions[?(@.type==\"Drifted\")].status"}"#,
    printcolumn = r#"{"name":"Commit","type":"string","jsonPath":".status.lastAppliedCommit"}"#,
    printcolumn = r#"{"name":"Applied","type":"date","jsonPath":".status.lastAppliedAt"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// The Git repository and the revision to follow.
    pub source: GitSource,
    /// The environment's name in the repository (its folder under environments/).
    pub environment: String,
    /// Time between two reconciles (Go duration: 30s, 5m, 1h).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Longest a plan or an apply may run before it is stopped (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Stop reconciling (what exists is left as it is).
    #[serde(default)]
    pub suspend: bool,
    /// What a difference found while the commit did not move does: `Heal` applies Git again at
    /// once; `Report` marks the Environment `Drifted` and waits for a new commit or a sync.
    #[serde(default)]
    pub drift: DriftPolicy,
    /// The Secret holding the age identity that decrypts the environment's secrets (key
    /// `identity`, or the first key ending in `.agekey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<SecretReference>,
    /// The Secret holding AWS credentials for the run: each key named `AWS_*` (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL) is given to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<SecretReference>,
    /// The Secret holding a kubeconfig (key `kubeconfig`) for an environment whose cluster is
    /// not the controller's own kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config: Option<SecretReference>,
}

fn default_interval() -> String {
    "5m".to_string()
}

/// A Git repository and one of a branch, a tag or a commit (default: the branch `main`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// `https://`, `ssh://` (or `git@host:path`), `git://` or `file://`.
    pub url: String,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitReference>,
    /// The Secret with the credentials: `username` and `password` (HTTPS), or `identity`
    /// (an SSH private key) and optionally `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// What to follow; exactly one field.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DriftPolicy {
    #[default]
    Heal,
    Report,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    pub secret_ref: LocalObjectReference,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    pub name: String,
}

/// What the controller last did and saw.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation of the spec last applied (or found in sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_generation: Option<i64>,
    /// The commit whose environment is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<String>,
    /// When it was last applied, or found already in sync (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_at: Option<String>,
    /// The commit the last reconcile read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_commit: Option<String>,
    /// When the last reconcile ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconciled_at: Option<String>,
    /// The last plan's counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<PlanSummary>,
    /// The last failure, cleared by a reconcile that succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The `envboot.dev/requested-at` value last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_requested_at: Option<String>,
    /// The `envboot.dev/pushed-at` value last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_pushed_at: Option<String>,
}

/// Counts of a plan's changes, as `envboot plan --output json` gives them.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    pub create: u64,
    pub update: u64,
    pub replace: u64,
    pub delete: u64,
    pub unchanged: u64,
}

impl PlanSummary {
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

impl std::fmt::Display for PlanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to replace, {} to delete",
            self.create, self.update, self.replace, self.delete
        )
    }
}

/// A condition as Kubernetes' API conventions define it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling`, `Drifted` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl EnvironmentStatus {
    /// The JSON merge patch that makes the live status this one: a field this status lacks is
    /// sent as null, which removes it (omitting it would keep the old value, a stale
    /// `lastError` say).
    pub fn merge_patch(&self) -> serde_json::Value {
        let mut status = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = status.as_object_mut() {
            for key in [
                "observedGeneration",
                "lastAppliedGeneration",
                "lastAppliedCommit",
                "lastAppliedAt",
                "lastAttemptedCommit",
                "lastReconciledAt",
                "lastPlan",
                "lastError",
                "lastHandledRequestedAt",
                "lastHandledPushedAt",
            ] {
                fields.entry(key).or_insert(serde_json::Value::Null);
            }
        }
        serde_json::json!({ "status": status })
    }
}

/// The CustomResourceDefinition as YAML (for `kubectl apply -f -` and the chart's `crds/`).
///
/// # Errors
/// Never in practice: the definition is built from types.
pub fn definition_yaml() -> Result<String, serde_yaml_ng::Error> {
    use kube::CustomResourceExt;
    serde_yaml_ng::to_string(&Environment::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_removes_what_the_status_no_longer_has() {
        let status = EnvironmentStatus {
            last_applied_commit: Some("c1".into()),
            ..EnvironmentStatus::default()
        };
        let patch = status.merge_patch();
        assert_eq!(patch["status"]["lastAppliedCommit"], "c1");
        assert!(patch["status"]["lastError"].is_null());
        assert!(patch["status"]
            .as_object()
            .is_some_and(|s| s.contains_key("lastError")));
        // every optional field of the type is listed
        let full = EnvironmentStatus {
            observed_generation: Some(1),
            last_applied_generation: Some(1),
            conditions: Vec::new(),
            last_applied_commit: Some(String::new()),
            last_applied_at: Some(String::new()),
            last_attempted_commit: Some(String::new()),
            last_reconciled_at: Some(String::new()),
            last_plan: Some(PlanSummary::default()),
            last_error: Some(String::new()),
            last_handled_requested_at: Some(String::new()),
            last_handled_pushed_at: Some(String::new()),
        };
        let keys =
            |v: &serde_json::Value| v["status"].as_object().map(|o| o.len()).unwrap_or_default();
        assert_eq!(
            keys(&full.merge_patch()),
            keys(&EnvironmentStatus::default().merge_patch())
        );
    }
}
