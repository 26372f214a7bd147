//! Plan: what apply would do, as one [`Change`] per resource, printed like `terraform plan`.
//!
//! *Architecture invariant*: a plan is data. Building and printing one never writes to AWS or
//! Kubernetes; only `engine::apply` executes it, through the providers.

use std::fmt::Write as _;

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    /// The action's name in JSON output and events.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

/// A changed field, with the values before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Changing this field needs a new resource.
    pub forces_replacement: bool,
}

/// Printed for a value that is only known once a dependency exists.
pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// A field's value in a plan. Whether it is known is part of the type, never read from the text:
/// a value a user wrote that happens to read `(known after apply)` is still [`Value::Known`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Known now, as JSON text.
    Known(String),
    /// A structure some of whose parts only apply can tell (they refer to resources still to be
    /// created). The text is for people: those parts read `(known after apply)`.
    Partial(String),
    /// Only apply can tell: it refers to a resource still to be created.
    Unknown,
    /// Hidden: it is, or held, a secret.
    Sensitive,
}

impl Value {
    /// The value of a known JSON value.
    pub fn json(v: &serde_json::Value) -> Value {
        Value::Known(v.to_string())
    }

    /// A value of the model: the parts that still hold a `${...}` reference are only known after
    /// apply.
    pub fn of(v: &serde_json::Value) -> Value {
        use crate::model::refs;
        if !refs::any(v) {
            return Value::json(v);
        }
        if v.is_string() {
            return Value::Unknown;
        }
        // Only the text is shown: the unknown parts are marked, printed, and the marks replaced.
        const MARK: &str = "\u{0}envboot:unknown\u{0}";
        fn mark(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::String(s) if !refs::expressions(s).is_empty() => {
                    *s = MARK.to_string();
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(mark),
                serde_json::Value::Object(map) => map.values_mut().for_each(mark),
                _ => {}
            }
        }
        let mut shown = v.clone();
        mark(&mut shown);
        let quoted = serde_json::Value::String(MARK.to_string()).to_string();
        Value::Partial(shown.to_string().replace(&quoted, KNOWN_AFTER_APPLY))
    }

    /// The JSON text, when the value is wholly known.
    pub fn known(&self) -> Option<&str> {
        match self {
            Value::Known(text) => Some(text),
            _ => None,
        }
    }

    /// False where apply must resolve something first.
    pub fn is_known(&self) -> bool {
        !matches!(self, Value::Partial(_) | Value::Unknown)
    }

    /// What the plan prints.
    pub fn text(&self) -> &str {
        match self {
            Value::Known(text) | Value::Partial(text) => text,
            Value::Unknown => KNOWN_AFTER_APPLY,
            Value::Sensitive => crate::sensitive::SENSITIVE,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// One resource's change, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `aws_vpc`, `ConfigMap`, ...
    pub kind: String,
    /// `network.vpc` for AWS, `namespace/name` for Kubernetes.
    pub address: String,
    pub action: Action,
    pub fields: Vec<FieldChange>,
    /// Why, when the fields do not tell (e.g. "no longer declared in Git").
    pub reason: Option<String>,
}

/// The machine-readable plan (`plan --output json`), documented in docs/plan-json.md.
/// These types are the boundary: change them only with a new `formatVersion`.
pub mod json {
    use serde::Serialize;

    /// The `formatVersion` of the JSON plan.
    pub const FORMAT_VERSION: &str = "envboot.dev/plan/v1";

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Plan<'a> {
        pub format_version: &'static str,
        pub environment: &'a str,
        pub commit: &'a str,
        /// `apply` or `destroy`.
        pub goal: &'static str,
        pub summary: Summary,
        pub changes: Vec<Change<'a>>,
        /// Why the Kubernetes changes are provisional (a k3s cluster not answering yet).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub kubernetes_pending: Option<&'a str>,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Summary {
        pub create: usize,
        pub update: usize,
        pub replace: usize,
        pub delete: usize,
        pub unchanged: usize,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Change<'a> {
        /// `aws` or `kubernetes`.
        pub layer: &'static str,
        pub kind: &'a str,
        pub address: &'a str,
        /// `create`, `update`, `replace`, `delete` or `no-op`.
        pub action: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reason: Option<&'a str>,
        pub fields: Vec<Field<'a>>,
    }

    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Field<'a> {
        pub path: &'a str,
        /// The value before, as JSON text (`null` when absent).
        pub before: Option<&'a str>,
        /// The value after, as JSON text; `(known after apply)` when only apply can tell.
        pub after: Option<&'a str>,
        /// `false` when apply must create something before the value is known (wholly or in
        /// part): then `after` is for people, not JSON.
        pub after_known: bool,
        /// The values are hidden: `before`/`after` read `(sensitive)`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub sensitive: bool,
        pub forces_replacement: bool,
    }

    impl<'a> Change<'a> {
        pub fn new(layer: &'static str, c: &'a super::Change, id: Option<&'a str>) -> Change<'a> {
            Change {
                layer,
                kind: &c.kind,
                address: &c.address,
                action: c.action.name(),
                id,
                reason: c.reason.as_deref(),
                fields: c
                    .fields
                    .iter()
                    .map(|f| Field {
                        path: &f.path,
                        before: f.before.as_ref().map(super::Value::text),
                        after: f.after.as_ref().map(super::Value::text),
                        after_known: f.after.as_ref().is_none_or(super::Value::is_known),
                        sensitive: [&f.before, &f.after]
                            .iter()
                            .any(|v| matches!(v, Some(super::Value::Sensitive))),
                        forces_replacement: f.forces_replacement,
                    })
                    .collect(),
            }
        }
    }

    impl From<super::Summary> for Summary {
        fn from(s: super::Summary) -> Summary {
            Summary {
                create: s.create,
                update: s.update,
                replace: s.replace,
                delete: s.delete,
                unchanged: s.unchanged,
            }
        }
    }
}

/// Counts of a plan's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => s.unchanged += 1,
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

/// Prints changes like `terraform plan`: one block per changed resource, then a summary line.
pub fn format_changes<'a>(changes: impl IntoIterator<Item = &'a Change> + Clone) -> String {
    let mut out = String::new();
    for c in changes
        .clone()
        .into_iter()
        .filter(|c| c.action != Action::NoOp)
    {
        let _ = write!(out, "  {} {} {}", c.action.symbol(), c.kind, c.address);
        if let Some(reason) = &c.reason {
            let _ = write!(out, "  ({reason})");
        }
        out.push('\n');
        for f in &c.fields {
            let before = f.before.as_ref().map_or("null", Value::text);
            let after = f.after.as_ref().map_or("null", Value::text);
            let note = if f.forces_replacement && c.action == Action::Replace {
                "  # forces replacement"
            } else {
                ""
            };
            let list = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(Value::known)
                    .and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).ok())
            };
            let lists = (list(&f.before), list(&f.after));
            let _ = match (c.action, lists) {
                (Action::Create, _) => writeln!(out, "      {} = {after}", f.path),
                (Action::Delete, _) => writeln!(out, "      {} = {before}", f.path),
                // Lists are shown item by item: what goes and what comes.
                (_, (Some(b), Some(a))) if !b.is_empty() || !a.is_empty() => {
                    let _ = writeln!(out, "      ~ {}:{note}", f.path);
                    for item in b.iter().filter(|i| !a.contains(i)) {
                        let _ = writeln!(out, "          - {item}");
                    }
                    for item in a.iter().filter(|i| !b.contains(i)) {
                        let _ = writeln!(out, "          + {item}");
                    }
                    Ok(())
                }
                _ => writeln!(out, "      ~ {}: {before} -> {after}{note}", f.path),
            };
        }
    }
    let s = Summary::of(changes);
    if s.has_changes() {
        let _ = writeln!(
            out,
            "\nPlan: {} to add, {} to change, {} to replace, {} to destroy, {} unchanged.",
            s.create, s.update, s.replace, s.delete, s.unchanged
        );
    } else {
        let _ = writeln!(
            out,
            "No changes. The live environment matches Git ({} resources unchanged).",
            s.unchanged
        );
    }
    out
}

/// The plan as Markdown, for a pull-request comment: a heading naming the environment and the
/// commit, the summary line, and the changes as a `diff` block (what `format_changes` prints).
pub fn format_markdown<'a>(
    environment: &str,
    commit: &str,
    changes: impl IntoIterator<Item = &'a Change> + Clone,
    pending: Option<&str>,
) -> String {
    let text = format_changes(changes.clone());
    let s = Summary::of(changes);
    let short = &commit[..commit.len().min(12)];
    let mut out = format!("### envboot plan: `{environment}` at `{short}`\n\n");
    if !s.has_changes() {
        out.push_str("**No changes.** The live environment matches Git.\n");
        return out;
    }
    let _ = writeln!(
        out,
        "**Plan:** {} to add, {} to change, {} to replace, {} to destroy, {} unchanged.\n",
        s.create, s.update, s.replace, s.delete, s.unchanged
    );
    if let Some(why) = pending {
        let _ = writeln!(out, "> Kubernetes: {why}.\n");
    }
    out.push_str("<details open><summary>Changes</summary>\n\n```diff\n");
    for line in text.lines().take_while(|l| !l.starts_with("Plan: ")) {
        if line.is_empty() {
            continue;
        }
        // `diff` colours lines by their first character: the action symbol goes first. A
        // fence inside a value would end the block: it is shown with quotes instead.
        let line = line
            .strip_prefix("  ")
            .unwrap_or(line)
            .replace("```", "'''");
        let _ = writeln!(out, "{line}");
    }
    out.push_str("```\n\n</details>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_plans_put_the_action_first_in_a_diff_block() {
        let changes = vec![
            Change {
                kind: "aws_vpc".into(),
                address: "net.vpc".into(),
                action: Action::Create,
                fields: vec![FieldChange {
                    path: "cidr_block".into(),
                    before: None,
                    after: Some(Value::Known("\"10.0.0.0/16\"".into())),
                    forces_replacement: false,
                }],
                reason: None,
            },
            Change {
                kind: "ConfigMap".into(),
                address: "apps/old".into(),
                action: Action::Delete,
                fields: vec![],
                reason: Some("no longer declared in Git".into()),
            },
        ];
        let md = format_markdown("staging", "0123456789abcdef", &changes, None);
        assert!(
            md.starts_with("### envboot plan: `staging` at `0123456789ab`\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "**Plan:** 1 to add, 0 to change, 0 to replace, 1 to destroy, 0 unchanged."
            ),
            "{md}"
        );
        assert!(md.contains("```diff\n+ aws_vpc net.vpc\n"), "{md}");
        assert!(
            md.contains("\n- ConfigMap apps/old  (no longer declared in Git)\n"),
            "{md}"
        );
        assert!(md.trim_end().ends_with("</details>"), "{md}");
        let none = format_markdown("staging", "0123", &[], None);
        assert!(none.contains("**No changes.**"), "{none}");
    }

    fn change(action: Action) -> Change {
        Change {
            kind: "aws_vpc".into(),
            address: "net.vpc".into(),
            action,
            fields: vec![FieldChange {
                path: "cidr_block".into(),
                before: Some(Value::Known("\"10.0.0.0/16\"".into())),
                after: Some(Value::Known("\"10.1.0.0/16\"".into())),
                forces_replacement: true,
            }],
            reason: None,
        }
    }

    #[test]
    fn replacement_names_the_field_that_forces_it() {
        let text = format_changes(&[change(Action::Replace)]);
        assert!(text.contains("-/+ aws_vpc net.vpc"), "{text}");
        assert!(
            text.contains("~ cidr_block: \"10.0.0.0/16\" -> \"10.1.0.0/16\"  # forces replacement"),
            "{text}"
        );
        assert!(
            text.contains("0 to add, 0 to change, 1 to replace"),
            "{text}"
        );
    }

    #[test]
    fn lists_are_shown_item_by_item() {
        let mut c = change(Action::Update);
        c.fields[0] = FieldChange {
            path: "ingress".into(),
            before: Some(Value::Known(r#"[{"port":22},{"port":80}]"#.into())),
            after: Some(Value::Known(r#"[{"port":80},{"port":443}]"#.into())),
            forces_replacement: false,
        };
        let text = format_changes(&[c]);
        assert!(
            text.contains("~ ingress:\n          - {\"port\":22}\n          + {\"port\":443}\n"),
            "{text}"
        );
    }

    #[test]
    fn no_changes_says_so() {
        let text = format_changes(&[change(Action::NoOp)]);
        assert!(text.starts_with("No changes."), "{text}");
    }

    #[test]
    fn values_holding_references_are_unknown_by_type_not_by_text() {
        use serde_json::json;
        assert_eq!(Value::of(&json!("${net.vpc.id}")), Value::Unknown);
        assert_eq!(Value::of(&json!("sg-${net.sg.id}-x")), Value::Unknown);
        let written = json!("(known after apply)");
        assert_eq!(
            Value::of(&written),
            Value::Known("\"(known after apply)\"".into())
        );
        assert!(Value::of(&written).is_known());
        let partial = Value::of(&json!([{"port": 22, "group": "${net.sg.id}"}]));
        assert_eq!(
            partial,
            Value::Partial(r#"[{"port":22,"group":(known after apply)}]"#.into())
        );
        assert!(!partial.is_known());
        assert_eq!(
            Value::of(&json!({"a": 1})),
            Value::Known(r#"{"a":1}"#.into())
        );
    }
}
