//! Pure planning for AWS: desired resources vs. the resources found by the environment's tags.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::model::refs;
use crate::model::spec::normalized_rules;
use crate::model::{Resource, ResourceSpec, ResourceType};
use crate::plan::{Action, Change, FieldChange, KNOWN_AFTER_APPLY};

/// A resource found in AWS carrying the environment's tags, read into the same shape as the
/// desired arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    pub rtype: ResourceType,
    pub address: String,
    pub id: String,
    /// The environment whose tag it carries (`None`: not envboot's).
    pub owner: Option<String>,
    /// The commit that created or last changed it (`envboot:revision`).
    pub revision: Option<String>,
    /// Arguments as read back (`cidr_block`, `tags` without envboot's own, ...).
    pub fields: Map<String, Value>,
    /// Attributes other resources may refer to (`id`, `private_ip`, ...).
    pub attributes: BTreeMap<String, String>,
}

/// One planned AWS change with what apply needs to carry it out.
#[derive(Debug, Clone)]
pub struct AwsChange {
    pub change: Change,
    pub rtype: ResourceType,
    /// The existing resource's id (update, replace, delete).
    pub id: Option<String>,
    /// The declared resource (create, update, replace).
    pub desired: Option<Resource>,
    /// The fields as read (update: to compute rule-by-rule changes).
    pub actual: Option<Map<String, Value>>,
    /// The existing resource's attributes (what dependents see when it is kept).
    pub attributes: BTreeMap<String, String>,
    /// The commit the existing resource was created or last changed from.
    pub revision: Option<String>,
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..16])
}

/// The comparable fields of a declared resource (references still unresolved).
pub fn fields(spec: &ResourceSpec, environment: &str, address: &str) -> Map<String, Value> {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    let Value::Object(map) = &mut v else {
        return Map::new();
    };
    let tags = map.entry("tags").or_insert_with(|| json!({}));
    if let Value::Object(t) = tags {
        t.entry("Name")
            .or_insert_with(|| json!(format!("{environment}-{address}")));
    }
    match spec {
        ResourceSpec::SecurityGroup(g) => {
            map.insert("ingress".into(), json!(normalized_rules(&g.ingress)));
            if let Some(egress) = &g.egress {
                map.insert("egress".into(), json!(normalized_rules(egress)));
            }
        }
        ResourceSpec::Instance(i) => {
            let mut ids = i.vpc_security_group_ids.clone();
            ids.sort();
            map.insert("vpc_security_group_ids".into(), json!(ids));
            map.insert(
                "user_data".into(),
                i.user_data
                    .as_deref()
                    .map(short_hash)
                    .map_or(Value::Null, Value::String),
            );
        }
        _ => {}
    }
    std::mem::take(map)
}

/// Replaces `${address.attribute}` references with what `known` says; unknown ones become
/// [`KNOWN_AFTER_APPLY`].
pub fn resolve(fields: &mut Map<String, Value>, known: &HashMap<String, String>) {
    for v in fields.values_mut() {
        refs::substitute(v, &mut |expr| {
            Some(Value::String(
                known
                    .get(expr)
                    .cloned()
                    .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string()),
            ))
        });
    }
    // Lists of ids are compared as sets; rules too, once their group ids are known.
    if let Some(Value::Array(ids)) = fields.get_mut("vpc_security_group_ids") {
        ids.sort_by_key(|a| a.to_string());
    }
    if let Some(Value::Array(ids)) = fields.get_mut("subnet_ids") {
        ids.sort_by_key(|a| a.to_string());
    }
    if let Some(v) = fields.get_mut("routes") {
        if let Ok(mut routes) = serde_json::from_value::<Vec<crate::model::spec::Route>>(v.clone())
        {
            routes.sort();
            *v = json!(routes);
        }
    }
    for direction in ["ingress", "egress"] {
        if let Some(v) = fields.get_mut(direction) {
            if let Ok(rules) = serde_json::from_value::<Vec<crate::model::spec::Rule>>(v.clone()) {
                *v = json!(normalized_rules(&rules));
            }
        }
    }
}

/// The arguments of `spec` with every reference replaced by what `known` says.
///
/// # Errors
/// The name of the first reference that is not known yet.
pub fn resolve_spec(
    spec: &ResourceSpec,
    known: &HashMap<String, String>,
) -> Result<ResourceSpec, String> {
    let mut v = serde_json::to_value(spec).map_err(|e| e.to_string())?;
    let mut missing = None;
    refs::substitute(&mut v, &mut |expr| match known.get(expr) {
        Some(value) => Some(Value::String(value.clone())),
        None => {
            missing.get_or_insert_with(|| expr.to_string());
            None
        }
    });
    if let Some(m) = missing {
        return Err(m);
    }
    let typed = match spec.resource_type() {
        ResourceType::Vpc => serde_json::from_value(v).map(ResourceSpec::Vpc),
        ResourceType::Subnet => serde_json::from_value(v).map(ResourceSpec::Subnet),
        ResourceType::SecurityGroup => serde_json::from_value(v).map(ResourceSpec::SecurityGroup),
        ResourceType::Instance => serde_json::from_value(v).map(ResourceSpec::Instance),
        ResourceType::InternetGateway => {
            serde_json::from_value(v).map(ResourceSpec::InternetGateway)
        }
        ResourceType::RouteTable => serde_json::from_value(v).map(ResourceSpec::RouteTable),
    };
    typed.map_err(|e| e.to_string())
}

fn contains_unknown(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains(KNOWN_AFTER_APPLY),
        Value::Array(a) => a.iter().any(contains_unknown),
        Value::Object(o) => o.values().any(contains_unknown),
        _ => false,
    }
}

fn show(v: Option<&Value>) -> Option<String> {
    v.map(|v| match v {
        Value::String(s) if s == KNOWN_AFTER_APPLY => s.clone(),
        other => other.to_string(),
    })
}

/// Plans the AWS layer.
///
/// `desired` is in dependency order; `actual` is everything found with the environment's tags.
/// Changes come back in execution order for creates and updates, followed by deletions.
pub fn diff(environment: &str, desired: &[Resource], actual: &[Actual]) -> Vec<AwsChange> {
    let mut by_address: HashMap<&str, &Actual> = HashMap::new();
    let mut extras: Vec<(&Actual, &str)> = Vec::new();
    for a in actual {
        if by_address.insert(&a.address, a).is_some() {
            extras.push((a, "a duplicate of a resource that already exists"));
        }
    }
    let mut known: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for r in desired {
        let rtype = r.spec.resource_type();
        let mut want = fields(&r.spec, environment, &r.address);
        resolve(&mut want, &known);
        let found = by_address.remove(r.address.as_str());
        let (action, changed, id) = match found {
            None => {
                let fields = want
                    .iter()
                    .map(|(k, v)| FieldChange {
                        path: k.clone(),
                        before: None,
                        after: show(Some(v)),
                        forces_replacement: false,
                    })
                    .collect();
                (Action::Create, fields, None)
            }
            Some(a) if a.rtype != rtype => {
                extras.push((a, "declared again with another type"));
                (Action::Create, Vec::new(), None)
            }
            Some(a) => {
                let mut changed = Vec::new();
                for (k, v) in &want {
                    let before = a.fields.get(k);
                    if before != Some(v) || contains_unknown(v) {
                        changed.push(FieldChange {
                            path: k.clone(),
                            before: show(before),
                            after: show(Some(v)),
                            forces_replacement: rtype.immutable().contains(&k.as_str()),
                        });
                    }
                }
                let action = if changed.iter().any(|f| f.forces_replacement) {
                    Action::Replace
                } else if changed.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                };
                (action, changed, Some(a))
            }
        };
        if let (Action::NoOp | Action::Update, Some(a)) = (action, id) {
            for (attr, value) in &a.attributes {
                known.insert(format!("{}.{attr}", r.address), value.clone());
            }
        }
        out.push(AwsChange {
            change: Change {
                kind: rtype.name().to_string(),
                address: r.address.clone(),
                action,
                fields: changed,
                reason: None,
            },
            rtype,
            id: id.map(|a| a.id.clone()),
            desired: Some(r.clone()),
            actual: id.map(|a| a.fields.clone()),
            attributes: id.map(|a| a.attributes.clone()).unwrap_or_default(),
            revision: id.and_then(|a| a.revision.clone()),
        });
    }
    let mut deletes: Vec<(&Actual, &str)> = by_address
        .into_values()
        .map(|a| (a, "no longer declared in Git"))
        .chain(extras)
        .collect();
    deletes.sort_by(|(a, _), (b, _)| {
        (a.rtype.delete_rank(), &a.address, &a.id).cmp(&(b.rtype.delete_rank(), &b.address, &b.id))
    });
    out.extend(deletes.into_iter().map(|(a, reason)| AwsChange {
        change: Change {
            kind: a.rtype.name().to_string(),
            address: a.address.clone(),
            action: Action::Delete,
            fields: Vec::new(),
            reason: Some(format!("{reason}; id {}", a.id)),
        },
        rtype: a.rtype,
        id: Some(a.id.clone()),
        desired: None,
        actual: Some(a.fields.clone()),
        attributes: a.attributes.clone(),
        revision: a.revision.clone(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{Subnet, Vpc};
    use std::collections::BTreeSet;

    fn vpc(cidr: &str) -> Resource {
        Resource {
            address: "net.vpc".into(),
            spec: ResourceSpec::Vpc(Vpc {
                cidr_block: cidr.into(),
                tags: BTreeMap::new(),
            }),
            depends_on: BTreeSet::new(),
            origin: "m.yaml:1".into(),
        }
    }

    fn subnet() -> Resource {
        Resource {
            address: "net.subnet".into(),
            spec: ResourceSpec::Subnet(Subnet {
                vpc_id: "${net.vpc.id}".into(),
                cidr_block: "10.0.1.0/24".into(),
                availability_zone: "us-east-1a".into(),
                map_public_ip_on_launch: false,
                tags: BTreeMap::new(),
            }),
            depends_on: ["net.vpc".to_string()].into(),
            origin: "m.yaml:5".into(),
        }
    }

    fn found(r: &Resource, id: &str, known: &HashMap<String, String>) -> Actual {
        let mut f = fields(&r.spec, "e", &r.address);
        resolve(&mut f, known);
        Actual {
            rtype: r.spec.resource_type(),
            address: r.address.clone(),
            id: id.into(),
            owner: Some("e".into()),
            revision: None,
            fields: f,
            attributes: [("id".to_string(), id.to_string())].into(),
        }
    }

    #[test]
    fn nothing_exists_so_everything_is_created_with_unknown_ids() {
        let changes = diff("e", &[vpc("10.0.0.0/16"), subnet()], &[]);
        assert!(changes.iter().all(|c| c.change.action == Action::Create));
        let vpc_id = changes[1]
            .change
            .fields
            .iter()
            .find(|f| f.path == "vpc_id")
            .unwrap();
        assert_eq!(vpc_id.after.as_deref(), Some(KNOWN_AFTER_APPLY));
    }

    #[test]
    fn unchanged_resources_are_no_ops() {
        let v = found(&vpc("10.0.0.0/16"), "vpc-1", &HashMap::new());
        let s = found(
            &subnet(),
            "subnet-1",
            &[("net.vpc.id".to_string(), "vpc-1".to_string())].into(),
        );
        let changes = diff("e", &[vpc("10.0.0.0/16"), subnet()], &[v, s]);
        assert!(
            changes.iter().all(|c| c.change.action == Action::NoOp),
            "{changes:#?}"
        );
    }

    #[test]
    fn an_immutable_change_replaces_the_resource_and_its_dependents() {
        let v = found(&vpc("10.0.0.0/16"), "vpc-1", &HashMap::new());
        let s = found(
            &subnet(),
            "subnet-1",
            &[("net.vpc.id".to_string(), "vpc-1".to_string())].into(),
        );
        let changes = diff("e", &[vpc("10.9.0.0/16"), subnet()], &[v, s]);
        assert_eq!(changes[0].change.action, Action::Replace);
        assert_eq!(changes[0].change.fields[0].path, "cidr_block");
        assert_eq!(
            changes[1].change.action,
            Action::Replace,
            "the subnet's vpc_id becomes unknown"
        );
    }

    #[test]
    fn undeclared_and_duplicate_resources_are_deleted_subnets_before_vpcs() {
        let v = found(&vpc("10.0.0.0/16"), "vpc-1", &HashMap::new());
        let dup = found(&vpc("10.0.0.0/16"), "vpc-2", &HashMap::new());
        let s = found(
            &subnet(),
            "subnet-1",
            &[("net.vpc.id".to_string(), "vpc-1".to_string())].into(),
        );
        let changes = diff("e", &[vpc("10.0.0.0/16")], &[v, dup, s]);
        let deletes: Vec<&str> = changes
            .iter()
            .filter(|c| c.change.action == Action::Delete)
            .map(|c| c.id.as_deref().unwrap())
            .collect();
        assert_eq!(deletes, vec!["subnet-1", "vpc-2"]);
    }
}
