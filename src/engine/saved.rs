//! Saved plans (`plan --out FILE`, `apply FILE`): the plan reviewed is the plan applied.
//!
//! A saved plan holds the commit, the goal and options, the changes as the reviewer saw them
//! (secrets shown as `(sensitive)`, as everywhere), and a fingerprint of the live state the plan
//! was made against: every AWS resource found (id, revision, fields as read) and every
//! Kubernetes object found (its content without status and bookkeeping), the inventory, and
//! what exists without the environment's tags or labels. Applying it plans again from the same
//! commit; if the fingerprint or the changes differ, the live state moved since the review
//! (another apply, a change by hand), and apply refuses before any write.
//!
//! # Guarantees
//! - No plaintext secret: the file holds the masked plan and a SHA-256 digest, nothing else.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, Goal, Plan, PlanOptions, Result};

/// The format of a saved plan file.
pub const FORMAT_VERSION: &str = "envboot.dev/saved-plan/v1";

/// A plan as saved by `plan --out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedPlan {
    pub format_version: String,
    pub environment: String,
    pub commit: String,
    /// `apply` or `destroy`.
    pub goal: String,
    pub adopt: bool,
    pub force_conflicts: bool,
    /// SHA-256 of the live state the plan was made against.
    pub live: String,
    /// The plan as `plan --output json` prints it.
    pub plan: serde_json::Value,
}

impl SavedPlan {
    pub fn goal(&self) -> Goal {
        if self.goal == "destroy" {
            Goal::Destroy
        } else {
            Goal::Apply
        }
    }

    /// The options to plan with again (parallelism and waiting are the applier's).
    pub fn options(&self, base: PlanOptions) -> PlanOptions {
        PlanOptions {
            adopt: self.adopt,
            force_conflicts: self.force_conflicts,
            ..base
        }
    }

    /// Reads a saved plan file's text.
    ///
    /// # Errors
    /// The text is not a saved plan of this format.
    pub fn parse(origin: &str, text: &str) -> Result<SavedPlan> {
        let saved: SavedPlan = serde_json::from_str(text).map_err(|e| Error::SavedPlan {
            path: origin.to_string(),
            why: format!("not a saved plan ({e})"),
        })?;
        if saved.format_version != FORMAT_VERSION {
            return Err(Error::SavedPlan {
                path: origin.to_string(),
                why: format!(
                    "format `{}`, this envboot reads `{FORMAT_VERSION}`",
                    saved.format_version
                ),
            });
        }
        Ok(saved)
    }

    /// Refuses `fresh` (planned again just now from the saved commit) unless it is the saved
    /// plan against the same live state.
    ///
    /// # Errors
    /// [`Error::StalePlan`] naming what moved.
    pub fn check(&self, origin: &str, fresh: &Plan) -> Result<()> {
        let stale = |why: String| Error::StalePlan {
            path: origin.to_string(),
            why,
        };
        if fresh.commit != self.commit || fresh.environment != self.environment {
            return Err(stale(format!(
                "it is for environment {} at {}, not {} at {}",
                self.environment, self.commit, fresh.environment, fresh.commit
            )));
        }
        if fresh.live_fingerprint() != self.live {
            return Err(stale(
                "the live environment changed since the plan was made (another apply, or a change by hand)"
                    .into(),
            ));
        }
        let now: serde_json::Value = serde_json::from_str(&fresh.to_json()).unwrap_or_default();
        if now["changes"] != self.plan["changes"] {
            return Err(stale("planning again gives other changes".into()));
        }
        Ok(())
    }
}

/// Fields of a live Kubernetes object that change without anyone changing the object.
const VOLATILE: [&str; 5] = [
    "resourceVersion",
    "managedFields",
    "generation",
    "creationTimestamp",
    "selfLink",
];

impl Plan {
    /// The plan to save (`plan --out`).
    pub fn saved(&self) -> SavedPlan {
        SavedPlan {
            format_version: FORMAT_VERSION.to_string(),
            environment: self.environment.clone(),
            commit: self.commit.clone(),
            goal: match self.goal {
                Goal::Apply => "apply",
                Goal::Destroy => "destroy",
            }
            .to_string(),
            adopt: self.options.adopt,
            force_conflicts: self.options.force_conflicts,
            live: self.live_fingerprint(),
            plan: serde_json::from_str(&self.to_json()).unwrap_or_default(),
        }
    }

    /// SHA-256 of what the plan found live (see the module documentation).
    pub fn live_fingerprint(&self) -> String {
        let mut h = Sha256::new();
        let mut feed = |part: &str| {
            h.update(part.as_bytes());
            h.update([0]);
        };
        for c in &self.aws {
            feed(&c.change.address);
            feed(c.id.as_deref().unwrap_or("-"));
            feed(c.revision.as_deref().unwrap_or("-"));
            feed(&serde_json::to_string(&c.actual).unwrap_or_default());
            feed(c.conflict.as_deref().unwrap_or("-"));
        }
        for c in &self.kube {
            feed(&c.key.to_string());
            let live = c.live.as_ref().map(|l| {
                let mut l = l.clone();
                if let Some(o) = l.as_object_mut() {
                    o.remove("status");
                }
                if let Some(m) = l["metadata"].as_object_mut() {
                    for f in VOLATILE {
                        m.remove(f);
                    }
                }
                l
            });
            feed(&serde_json::to_string(&live).unwrap_or_default());
            feed(c.conflict.as_deref().unwrap_or("-"));
        }
        if let Some(inv) = &self.inventory {
            feed(&inv.revision);
            feed(&inv.applied_at);
            for (api_version, kind) in &inv.pending {
                feed(&format!("pending {api_version} {kind}"));
            }
        }
        feed(self.pending.as_deref().unwrap_or("-"));
        hex::encode(h.finalize())
    }
}

/// Writes `plan` to `path` as a saved plan (redacted once more, as everything printed is).
///
/// # Errors
/// The file cannot be written.
pub fn save_plan(plan: &Plan, path: &std::path::Path) -> Result<()> {
    let text = serde_json::to_string_pretty(&plan.saved()).unwrap_or_default();
    let text = envboot_core::sensitive::redact(&text);
    std::fs::write(path, text.as_bytes()).map_err(|source| Error::Output {
        path: path.display().to_string(),
        source,
    })
}

/// Reads the saved plan at `path`.
///
/// # Errors
/// It cannot be read or is not a saved plan.
pub fn read_plan(path: &std::path::Path) -> Result<SavedPlan> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::SavedPlan {
        path: origin.clone(),
        why: format!("cannot read it: {e}"),
    })?;
    SavedPlan::parse(&origin, &text)
}
