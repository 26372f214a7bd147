//! Pure planning for Kubernetes: rendered objects vs. live objects carrying the environment's label.
//!
//! The comparison looks only at what envboot declares (a live object may carry defaulted fields,
//! status and other managers' fields without that being drift), plus the fields envboot owned
//! before (from `managedFields`) that Git no longer declares, which server-side apply removes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value;

use envboot_core::plan::{Action, Change, FieldChange, Value as PlanValue};
use envboot_core::render::ANNOTATION_REVISION;

/// The field manager envboot applies with.
pub const FIELD_MANAGER: &str = "envboot";

/// Identity of an object: API group, kind, namespace, name (the version is not part of it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object (`apiVersion`, `kind`, `metadata.namespace`, `metadata.name`).
    pub fn of(object: &Value) -> ObjectKey {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        ObjectKey {
            group: group.to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// `namespace/name` or `name`.
    pub fn address(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.address())
    }
}

/// One planned Kubernetes change.
#[derive(Debug, Clone)]
pub struct KubeChange {
    pub change: Change,
    pub key: ObjectKey,
    /// `apiVersion` to talk to the server with.
    pub api_version: String,
    /// The object to apply (create, update).
    pub desired: Option<Value>,
    /// The live object (update, delete).
    pub live: Option<Value>,
    /// Apply must force: the update takes back fields that were edited by hand (drift).
    pub force: bool,
    /// An object of this name exists without the environment's label: apply stops before any
    /// write, unless `--adopt` takes it over.
    pub conflict: Option<String>,
}

/// A desired value as the plan shows it: JSON, unknown where it still refers to an AWS resource.
fn show(v: &Value) -> PlanValue {
    PlanValue::of(v)
}

/// A value the server holds or returned: always known, whatever `${...}` text it has.
fn held(v: &Value) -> PlanValue {
    PlanValue::json(v)
}

/// Fields of `desired` that differ in `live`, as changes at their paths.
pub fn compare(desired: &Value, live: &Value, path: &str, out: &mut Vec<FieldChange>) {
    compare_with(desired, live, path, out, show);
}

/// [`compare`], showing desired values with `show_desired`.
fn compare_with(
    desired: &Value,
    live_value: &Value,
    path: &str,
    out: &mut Vec<FieldChange>,
    show_desired: fn(&Value) -> PlanValue,
) {
    let recurse = |d: &Value, l: &Value, p: &str, out: &mut Vec<FieldChange>| {
        compare_with(d, l, p, out, show_desired)
    };
    match (desired, live_value) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, dv) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if p == format!("metadata.annotations.{ANNOTATION_REVISION}") {
                    continue;
                }
                match l.get(k) {
                    Some(lv) => recurse(dv, lv, &p, out),
                    None => out.push(FieldChange {
                        path: p,
                        before: None,
                        after: Some(show_desired(dv)),
                        forces_replacement: false,
                    }),
                }
            }
        }
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (dv, lv)) in d.iter().zip(l).enumerate() {
                recurse(dv, lv, &format!("{path}[{i}]"), out);
            }
        }
        (d, l) if numbers_equal(d, l) || d == l => {}
        (d, l) => out.push(FieldChange {
            path: path.to_string(),
            before: Some(held(l)),
            after: Some(show_desired(d)),
            forces_replacement: false,
        }),
    }
}

fn numbers_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Fields envboot owns in `fields_v1` (managedFields) that `desired` no longer has.
pub fn removed(
    fields_v1: &Value,
    desired: &Value,
    live: &Value,
    path: &str,
    out: &mut Vec<FieldChange>,
) {
    let Value::Object(owned) = fields_v1 else {
        return;
    };
    for (k, sub) in owned {
        let Some(name) = k.strip_prefix("f:") else {
            continue;
        };
        let p = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        match desired.get(name) {
            None => {
                if let Some(lv) = live.get(name) {
                    out.push(FieldChange {
                        path: p,
                        before: Some(held(lv)),
                        after: None,
                        forces_replacement: false,
                    });
                }
            }
            Some(dv @ Value::Object(_)) => {
                removed(sub, dv, live.get(name).unwrap_or(&Value::Null), &p, out);
            }
            Some(_) => {}
        }
    }
}

/// Whether a server-side apply conflict (its message names the managers in quotes, e.g.
/// `conflict with "kubectl-edit" using v1: .data.x`) involves only managers that updated the
/// object imperatively, never applied it: that is drift, which envboot heals.
pub fn only_drift(message: &str, live: &Value) -> bool {
    let managers: Vec<&str> = message.split('"').skip(1).step_by(2).collect();
    let entries = live["metadata"]["managedFields"].as_array();
    !managers.is_empty()
        && managers.iter().all(|m| {
            entries.is_some_and(|e| {
                e.iter()
                    .filter(|f| f["manager"] == *m)
                    .all(|f| f["operation"] == "Update")
            })
        })
}

/// envboot's own `fieldsV1` in a live object's managedFields.
pub fn owned_fields(live: &Value) -> Option<&Value> {
    live["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|m| m["manager"] == FIELD_MANAGER && m["operation"] == "Apply")
        .map(|m| &m["fieldsV1"])
}

/// Plans the Kubernetes layer.
///
/// `desired` is in apply order; `live` holds every object found with the environment's label;
/// `foreign_namespaces` are namespaces that exist without envboot's label (used, never changed).
pub fn diff(
    desired: Vec<Value>,
    live: Vec<Value>,
    foreign_namespaces: &BTreeSet<String>,
) -> Vec<KubeChange> {
    let mut by_key: BTreeMap<ObjectKey, Value> =
        live.into_iter().map(|o| (ObjectKey::of(&o), o)).collect();
    let mut out = Vec::with_capacity(desired.len() + by_key.len());
    for object in desired {
        let key = ObjectKey::of(&object);
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if key.kind == "Namespace" && key.group.is_empty() && foreign_namespaces.contains(&key.name)
        {
            by_key.remove(&key);
            continue;
        }
        let found = by_key.remove(&key);
        let (action, fields) = match &found {
            None => (Action::Create, Vec::new()),
            Some(l) => {
                let mut fields = Vec::new();
                compare(&object, l, "", &mut fields);
                if let Some(owned) = owned_fields(l) {
                    removed(owned, &object, l, "", &mut fields);
                }
                mask(&key.kind, &mut fields);
                (
                    if fields.is_empty() {
                        Action::NoOp
                    } else {
                        Action::Update
                    },
                    fields,
                )
            }
        };
        out.push(KubeChange {
            change: Change {
                kind: key.kind.clone(),
                address: key.address(),
                action,
                fields,
                reason: None,
            },
            key,
            api_version,
            desired: Some(object),
            live: found,
            force: false,
            conflict: None,
        });
    }
    // What is left is labelled but no longer declared: deleted, in reverse install order, if
    // envboot applied it. A labelled object envboot never applied (a controller copied the
    // label onto it, as onto a Service's Endpoints, or someone labelled it by hand) is left
    // alone: a no-op without a desired object, which the leak check reports.
    let mut deletes: Vec<(ObjectKey, Value)> = by_key.into_iter().collect();
    deletes.sort_by_key(|(k, _)| std::cmp::Reverse(envboot_core::render::kind_rank(&k.kind)));
    out.extend(deletes.into_iter().map(|(key, l)| {
        let (action, reason) = if owned_fields(&l).is_some() {
            (Action::Delete, "no longer declared in Git")
        } else {
            (Action::NoOp, NOT_APPLIED)
        };
        KubeChange {
            change: Change {
                kind: key.kind.clone(),
                address: key.address(),
                action,
                fields: Vec::new(),
                reason: Some(reason.into()),
            },
            api_version: l["apiVersion"].as_str().unwrap_or_default().to_string(),
            key,
            desired: None,
            live: Some(l),
            force: false,
            conflict: None,
        }
    }));
    out
}

/// Why a labelled object that is not declared is not deleted.
pub const NOT_APPLIED: &str =
    "carries the environment's label, but envboot never applied it: left alone";

/// Shows `(sensitive)` for every changed value of a Secret's data, and for a secret value in
/// any other field (a chart value from a secret): there the old value is masked whole, as it
/// held the secret before it changed.
pub fn mask(kind: &str, fields: &mut [FieldChange]) {
    let sensitive = |v: &Option<PlanValue>| v.as_ref().map(|_| PlanValue::Sensitive);
    for f in fields {
        if kind == "Secret" && (f.path.starts_with("data") || f.path.starts_with("stringData")) {
            f.before = sensitive(&f.before);
            f.after = sensitive(&f.after);
            continue;
        }
        let redact = |text: &str| match envboot_core::sensitive::redact(text) {
            std::borrow::Cow::Owned(masked) => Some(masked),
            std::borrow::Cow::Borrowed(_) => None,
        };
        let masked = match &f.after {
            Some(PlanValue::Known(text)) => redact(text).map(PlanValue::Known),
            Some(PlanValue::Partial(text)) => redact(text).map(PlanValue::Partial),
            _ => continue,
        };
        if let Some(masked) = masked {
            f.after = Some(masked);
            f.before = sensitive(&f.before);
        }
    }
}

/// Shows `(sensitive)` for the fields at or around `paths` (in [`FieldChange::path`]'s form):
/// the fields whose values derive from a secret, before and after.
pub fn mask_paths(fields: &mut [FieldChange], paths: &[String]) {
    let within = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    for f in fields {
        if paths
            .iter()
            .any(|p| within(&f.path, p) || within(p, &f.path))
        {
            f.before = f.before.as_ref().map(|_| PlanValue::Sensitive);
            f.after = f.after.as_ref().map(|_| PlanValue::Sensitive);
        }
    }
}

/// What the server keeps for itself: never a difference envboot made.
fn strip(object: &Value) -> Value {
    let mut v = object.clone();
    if let Value::Object(metadata) = &mut v["metadata"] {
        for field in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            metadata.remove(field);
        }
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.remove(ANNOTATION_REVISION);
        }
    }
    if let Value::Object(map) = &mut v {
        map.remove("status");
    }
    v
}

/// The differences between what a server-side dry run returned and the live object: the exact
/// effect of applying. Empty means applying would change nothing.
pub fn dry_run_changes(result: &Value, live: &Value) -> Vec<FieldChange> {
    let (result, live) = (strip(result), strip(live));
    let mut out = Vec::new();
    compare_with(&result, &live, "", &mut out, held);
    gone(&live, &result, "", &mut out);
    out
}

/// Fields of `live` that `result` no longer has.
fn gone(live: &Value, result: &Value, path: &str, out: &mut Vec<FieldChange>) {
    if let (Value::Object(l), Value::Object(r)) = (live, result) {
        for (k, lv) in l {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match r.get(k) {
                None => out.push(FieldChange {
                    path: p,
                    before: Some(held(lv)),
                    after: None,
                    forces_replacement: false,
                }),
                Some(rv) => gone(lv, rv, &p, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_derived_from_secrets_are_masked_at_and_around_their_paths() {
        let field = |path: &str| FieldChange {
            path: path.into(),
            before: Some(PlanValue::Known("old".into())),
            after: Some(PlanValue::Known("new".into())),
            forces_replacement: false,
        };
        let mut fields = vec![
            field("data.token"),
            field("data.tokens"),
            field("spec.containers[0].env[1].value"),
            field("spec.containers[0].env"),
            field("data"),
        ];
        let paths = [
            "data.token".to_string(),
            "spec.containers[0].env[1]".to_string(),
        ];
        mask_paths(&mut fields, &paths);
        let masked: Vec<bool> = fields
            .iter()
            .map(|f| {
                f.after == Some(PlanValue::Sensitive) && f.before == Some(PlanValue::Sensitive)
            })
            .collect();
        // `data.tokens` is another key; a field holding a secret one is masked whole
        assert_eq!(masked, [true, false, true, true, true]);
    }
    use serde_json::json;

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n",
            "annotations": {ANNOTATION_REVISION: "new"}}, "data": data})
    }

    #[test]
    fn defaulted_fields_and_a_new_revision_are_not_changes() {
        let mut live = cm(json!({"a": "1"}));
        live["metadata"]["annotations"][ANNOTATION_REVISION] = json!("old");
        live["metadata"]["uid"] = json!("123");
        let changes = diff(vec![cm(json!({"a": "1"}))], vec![live], &BTreeSet::new());
        assert_eq!(changes[0].change.action, Action::NoOp, "{changes:#?}");
    }

    #[test]
    fn a_changed_value_is_an_update_naming_the_field() {
        let changes = diff(
            vec![cm(json!({"a": "2"}))],
            vec![cm(json!({"a": "1"}))],
            &BTreeSet::new(),
        );
        assert_eq!(changes[0].change.action, Action::Update);
        assert_eq!(changes[0].change.fields[0].path, "data.a");
        assert_eq!(
            changes[0].change.fields[0].before,
            Some(PlanValue::Known("\"1\"".into()))
        );
    }

    #[test]
    fn a_field_envboot_owned_and_git_dropped_is_an_update() {
        let mut live = cm(json!({"a": "1", "b": "2"}));
        live["metadata"]["managedFields"] = json!([{"manager": "envboot", "operation": "Apply",
            "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}}}]);
        let changes = diff(vec![cm(json!({"a": "1"}))], vec![live], &BTreeSet::new());
        assert_eq!(changes[0].change.action, Action::Update);
        assert_eq!(changes[0].change.fields[0].path, "data.b");
        assert_eq!(changes[0].change.fields[0].after, None);
    }

    #[test]
    fn conflicts_with_imperative_edits_are_drift_but_with_other_appliers_are_not() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "envboot", "operation": "Apply"},
            {"manager": "kubectl-edit", "operation": "Update"},
            {"manager": "other-tool", "operation": "Apply"},
        ]}});
        assert!(only_drift(
            r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.a"#,
            &live
        ));
        assert!(!only_drift(
            r#"Apply failed with 1 conflict: conflict with "other-tool": .data.a"#,
            &live
        ));
        assert!(!only_drift("no manager named", &live));
    }

    #[test]
    fn a_dry_run_equal_to_the_live_object_is_no_change() {
        let mut live = cm(json!({"cpu": "500m"}));
        live["metadata"]["resourceVersion"] = json!("1");
        let mut result = cm(json!({"cpu": "500m"}));
        result["metadata"]["resourceVersion"] = json!("2");
        result["metadata"]["annotations"][ANNOTATION_REVISION] = json!("other");
        assert!(dry_run_changes(&result, &live).is_empty());
        let removed = dry_run_changes(&cm(json!({})), &live);
        assert_eq!(removed.len(), 1);
        assert_eq!(
            (removed[0].path.as_str(), removed[0].after.as_ref()),
            ("data.cpu", None)
        );
    }

    #[test]
    fn undeclared_objects_envboot_applied_are_deleted_and_foreign_namespaces_left_alone() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        let mut applied = cm(json!({}));
        applied["metadata"]["managedFields"] =
            json!([{"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {}}]);
        let changes = diff(vec![ns], vec![applied], &["default".to_string()].into());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change.action, Action::Delete);
        assert_eq!(changes[0].key.to_string(), "ConfigMap n/c");
    }

    #[test]
    fn a_labelled_object_envboot_never_applied_is_left_alone() {
        // The Endpoints a controller made for a Service, with the Service's labels copied.
        let mut copied = cm(json!({}));
        copied["metadata"]["managedFields"] =
            json!([{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}}]);
        let changes = diff(Vec::new(), vec![copied], &BTreeSet::new());
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change.action, Action::NoOp);
        assert!(changes[0].desired.is_none());
        assert_eq!(changes[0].change.reason.as_deref(), Some(NOT_APPLIED));
    }
}
