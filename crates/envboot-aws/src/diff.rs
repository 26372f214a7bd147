//! Pure planning for AWS: desired resources vs. the resources found by the environment's tags.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::resources::{delete_rank, kind};
use crate::TAG_ENVIRONMENT;
use envboot_core::model::refs;
use envboot_core::model::{Resource, ResourceSpec, ResourceType};
use envboot_core::plan::{Action, Change, FieldChange, Value as PlanValue};

pub use crate::resources::launch_template::{launch_template_data, launch_template_hash};
pub use crate::resources::security_group::{
    default_egress, normalize_protocol, permissions, Permission,
};

/// A resource found in AWS carrying the environment's tags, read into the same shape as the
/// desired arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Actual {
    pub rtype: ResourceType,
    pub address: String,
    pub id: String,
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
    /// A resource with the desired name exists without the environment's tags: apply stops.
    pub conflict: Option<String>,
    /// Apply takes over the existing, untagged resource `id` by tagging it (`--adopt`).
    pub adopt: bool,
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of `text`.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..16])
}

/// The name AWS knows a resource by: `<environment>-<address>` unless the spec names it.
pub fn aws_name(spec: &ResourceSpec, environment: &str, address: &str) -> String {
    kind(spec.resource_type())
        .given_name(spec)
        .unwrap_or_else(|| format!("{environment}-{address}"))
}

/// The comparable fields of a declared resource (references still unresolved).
pub fn fields(spec: &ResourceSpec, environment: &str, address: &str) -> Map<String, Value> {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    let Value::Object(map) = &mut v else {
        return Map::new();
    };
    if spec.resource_type().taggable() {
        let tags = map.entry("tags").or_insert_with(|| json!({}));
        if let Value::Object(t) = tags {
            t.entry("Name")
                .or_insert_with(|| json!(format!("{environment}-{address}")));
        }
    }
    kind(spec.resource_type()).fields(spec, environment, address, map);
    normalize(map);
    std::mem::take(map)
}

/// Puts fields into the one form both sides are compared in: sets sorted, launch template data
/// hashed once it is fully known.
pub fn normalize(fields: &mut Map<String, Value>) {
    for k in [
        "vpc_security_group_ids",
        "subnet_ids",
        "routes",
        "ingress",
        "egress",
    ] {
        if let Some(Value::Array(items)) = fields.get_mut(k) {
            items.sort_by_key(|a| a.to_string());
            items.dedup();
        }
    }
    // User-data is hashed once its references are resolved, as launch template data is below.
    if let Some(text) = fields.get("user_data").and_then(|u| u.get(UNHASHED)) {
        if let Some(hash) = text.as_str().filter(|_| !refs::any(text)).map(short_hash) {
            fields.insert("user_data".into(), Value::String(hash));
        }
    }
    if let Some(data) = fields.get_mut("data") {
        if let Value::Object(d) = data {
            if let Some(Value::Array(ids)) = d.get_mut("vpc_security_group_ids") {
                ids.sort_by_key(|a| a.to_string());
            }
        }
        if data.is_object() && !refs::any(data) {
            *data = Value::String(short_hash(&data.to_string()));
        }
    }
}

/// Replaces `${address.attribute}` references with what `known` says. The others stay: they are
/// what only apply can tell.
pub fn resolve(fields: &mut Map<String, Value>, known: &HashMap<String, String>) {
    for v in fields.values_mut() {
        refs::substitute(v, &mut |expr| known.get(expr).cloned().map(Value::String));
    }
    normalize(fields);
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
    ResourceSpec::from_value(spec.resource_type(), v).map_err(|e| e.to_string())
}

/// A security group's arguments, resolved, without the rule sources that are not known yet
/// (groups whose rules refer to each other: the missing sources are added once both exist).
/// Rules left with no source are left out.
pub fn without_unknown_sources(
    spec: &ResourceSpec,
    known: &HashMap<String, String>,
) -> Option<ResourceSpec> {
    let ResourceSpec::SecurityGroup(g) = spec else {
        return None;
    };
    let resolvable = |s: &str| {
        refs::expressions(s)
            .into_iter()
            .all(|e| known.contains_key(e))
    };
    let strip =
        |rules: &[envboot_core::model::spec::Rule]| -> Vec<envboot_core::model::spec::Rule> {
            rules
                .iter()
                .filter_map(|r| {
                    let mut r = r.clone();
                    r.security_groups.retain(|s| resolvable(s));
                    (!r.cidr_blocks.is_empty() || !r.security_groups.is_empty()).then_some(r)
                })
                .collect()
        };
    let stripped = envboot_core::model::spec::SecurityGroup {
        ingress: strip(&g.ingress),
        egress: g.egress.as_deref().map(strip),
        ..g.clone()
    };
    resolve_spec(&ResourceSpec::SecurityGroup(stripped), known).ok()
}

/// The key under which user-data waits for its references to be resolved before it is hashed.
pub(crate) const UNHASHED: &str = "unhashed";

/// A field's value as the plan holds it: what still refers to a resource to be created is
/// unknown; user-data waiting for its references is unknown whole (only its hash is compared).
fn show(field: &str, v: Option<&Value>) -> Option<PlanValue> {
    v.map(|v| match v.get(UNHASHED) {
        Some(_) if field == "user_data" => PlanValue::Unknown,
        _ => PlanValue::of(v),
    })
}

/// A resource that has the name of one the plan creates (found by name, not by tags).
#[derive(Debug, Clone)]
pub struct Named {
    /// What it is, for messages: "aws_vpc `staging-network.vpc` (vpc-1) exists".
    pub what: String,
    /// The environment its tags name, if any.
    pub owner: Option<String>,
    /// The resource, at the address of the declared one with its name.
    pub actual: Actual,
}

/// The plan once the resources `named` like those to create are known: another
/// environment's are conflicts; untagged ones are conflicts, or with `adopt` taken over (then
/// diffed like the environment's own, with the environment's tag added).
pub fn with_named(
    environment: &str,
    desired: &[Resource],
    actual: Vec<Actual>,
    mut changes: Vec<AwsChange>,
    named: Vec<Named>,
    adopt: bool,
) -> Vec<AwsChange> {
    let mut adopted: Vec<Actual> = Vec::new();
    let mut conflicts: HashMap<String, String> = HashMap::new();
    for n in named {
        let (what, address) = (n.what, n.actual.address.clone());
        match n.owner {
            Some(owner) if owner == environment => {}
            Some(owner) => {
                conflicts.insert(address, format!("{what}, owned by environment `{owner}`"));
            }
            None if adopt => adopted.push(n.actual),
            None => {
                conflicts.insert(
                    address,
                    format!("{what} without the environment's tags; --adopt takes it over"),
                );
            }
        }
    }
    if !adopted.is_empty() {
        let ids: HashSet<String> = adopted.iter().map(|a| a.id.clone()).collect();
        let all: Vec<Actual> = actual.into_iter().chain(adopted).collect();
        changes = diff(environment, desired, &all);
        for c in &mut changes {
            if c.id.as_ref().is_some_and(|id| ids.contains(id)) && c.desired.is_some() {
                c.adopt = true;
                if c.change.action == Action::NoOp {
                    c.change.action = Action::Update;
                }
                c.change.fields.insert(
                    0,
                    FieldChange {
                        path: TAG_ENVIRONMENT.to_string(),
                        before: None,
                        after: Some(PlanValue::json(&environment.into())),
                        forces_replacement: false,
                    },
                );
                c.change.reason = Some(format!(
                    "adopting {}: envboot tags it as the environment's",
                    c.id.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    for c in &mut changes {
        if let Some(m) = conflicts.remove(&c.change.address) {
            c.change.reason = Some(format!("CONFLICT: {m}"));
            c.conflict = Some(m);
        }
    }
    changes
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
    // Groups referred to late (security groups whose rules refer to each other) come later in
    // the order: what they are, if they exist, is known from the start.
    for late in desired.iter().flat_map(|r| r.late.iter()) {
        if let Some(a) = actual.iter().find(|a| a.address == *late) {
            for (attr, value) in &a.attributes {
                known.insert(format!("{late}.{attr}"), value.clone());
            }
        }
    }
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
                        after: show(k, Some(v)),
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
                    if before != Some(v) || refs::any(v) {
                        changed.push(FieldChange {
                            path: k.clone(),
                            before: show(k, before),
                            after: show(k, Some(v)),
                            forces_replacement: kind(rtype).forces_replacement(k, before, v),
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
            conflict: None,
            adopt: false,
        });
    }
    let mut deletes: Vec<(&Actual, &str)> = by_address
        .into_values()
        .map(|a| (a, "no longer declared in Git"))
        .chain(extras)
        .collect();
    deletes.sort_by(|(a, _), (b, _)| {
        (delete_rank(a.rtype), &a.address, &a.id).cmp(&(delete_rank(b.rtype), &b.address, &b.id))
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
        conflict: None,
        adopt: false,
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use envboot_core::model::spec::{Instance, LaunchTemplate, Rule, SecurityGroup, Subnet, Vpc};
    use std::collections::BTreeSet;

    fn vpc(cidr: &str) -> Resource {
        Resource {
            address: "net.vpc".into(),
            spec: ResourceSpec::Vpc(Vpc {
                cidr_block: cidr.into(),
                enable_dns_support: true,
                enable_dns_hostnames: false,
                tags: BTreeMap::new(),
            }),
            depends_on: BTreeSet::new(),
            late: BTreeSet::new(),
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
            late: BTreeSet::new(),
            origin: "m.yaml:5".into(),
        }
    }

    fn found(r: &Resource, id: &str, known: &HashMap<String, String>) -> Actual {
        let mut f = fields(&r.spec, "e", &r.address);
        resolve(&mut f, known);
        Actual {
            revision: None,
            rtype: r.spec.resource_type(),
            address: r.address.clone(),
            id: id.into(),
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
        assert_eq!(vpc_id.after, Some(PlanValue::Unknown));
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

    fn resource(address: &str, spec: ResourceSpec, deps: &[&str]) -> Resource {
        Resource {
            address: address.into(),
            spec,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            late: BTreeSet::new(),
            origin: "m.yaml:1".into(),
        }
    }

    fn rule(protocol: &str, from: i32, to: i32, cidrs: &[&str], groups: &[&str]) -> Rule {
        Rule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr_blocks: cidrs.iter().map(|c| c.to_string()).collect(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn rules_are_split_into_one_permission_per_source_and_normalised() {
        let perms = permissions(&[
            rule("tcp", 22, 22, &["10.0.0.0/8", "192.168.0.0/16"], &["sg-1"]),
            rule("all", 0, 65535, &["0.0.0.0/0"], &[]),
            rule("6", 22, 22, &["10.0.0.0/8"], &[]),
        ]);
        let shown: Vec<String> = perms
            .iter()
            .map(|p| {
                format!(
                    "{}:{}-{} {}",
                    p.protocol,
                    p.from_port,
                    p.to_port,
                    p.cidr_block.clone().or(p.security_group.clone()).unwrap()
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                "-1:0-0 0.0.0.0/0",
                "tcp:22-22 sg-1",
                "tcp:22-22 10.0.0.0/8",
                "tcp:22-22 192.168.0.0/16",
            ],
            "one per source; `6` is tcp; all protocols have no ports; duplicates merge"
        );
    }

    fn group(ingress: Vec<Rule>, egress: Option<Vec<Rule>>) -> Resource {
        resource(
            "web.sg",
            ResourceSpec::SecurityGroup(SecurityGroup {
                vpc_id: "vpc-1".into(),
                description: "d".into(),
                ingress,
                egress,
                tags: BTreeMap::new(),
            }),
            &[],
        )
    }

    #[test]
    fn a_changed_rule_is_an_in_place_update_that_lists_only_the_changed_permissions() {
        let old = group(
            vec![rule("tcp", 22, 22, &["10.0.0.0/8", "10.1.0.0/16"], &[])],
            None,
        );
        let actual = found(&old, "sg-1", &HashMap::new());
        let new = group(vec![rule("tcp", 22, 22, &["10.0.0.0/8"], &[])], None);
        let changes = diff("e", &[new], &[actual]);
        assert_eq!(changes[0].change.action, Action::Update);
        let f = &changes[0].change.fields;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].path, "ingress");
        let text = envboot_core::plan::format_changes(changes.iter().map(|c| &c.change));
        assert!(
            text.contains("- {\"protocol\":\"tcp\",\"from_port\":22,\"to_port\":22,\"cidr_block\":\"10.1.0.0/16\"}"),
            "{text}"
        );
        assert!(!text.contains("+ {"), "{text}");
    }

    #[test]
    fn undeclared_egress_is_aws_default_and_declared_egress_replaces_it() {
        let default = fields(&group(vec![], None).spec, "e", "web.sg");
        assert_eq!(
            default["egress"],
            json!([{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_block": "0.0.0.0/0"}])
        );
        let declared = fields(
            &group(
                vec![],
                Some(vec![rule("tcp", 443, 443, &[], &["${web.lb.id}"])]),
            )
            .spec,
            "e",
            "web.sg",
        );
        assert_eq!(
            declared["egress"],
            json!([{"protocol": "tcp", "from_port": 443, "to_port": 443, "security_group": "${web.lb.id}"}])
        );
    }

    #[test]
    fn a_rule_referring_to_a_group_being_created_is_known_after_apply() {
        let mut f = fields(
            &group(vec![rule("tcp", 80, 80, &[], &["${web.lb.id}"])], None).spec,
            "e",
            "web.sg",
        );
        resolve(&mut f, &HashMap::new());
        assert_eq!(f["ingress"][0]["security_group"], json!("${web.lb.id}"));
        assert_eq!(
            show("ingress", f.get("ingress")),
            Some(PlanValue::Partial(
                r#"[{"protocol":"tcp","from_port":80,"to_port":80,"security_group":(known after apply)}]"#
                    .into()
            ))
        );
        let mut g = fields(
            &group(vec![rule("tcp", 80, 80, &[], &["${web.lb.id}"])], None).spec,
            "e",
            "web.sg",
        );
        resolve(
            &mut g,
            &[("web.lb.id".to_string(), "sg-9".to_string())].into(),
        );
        assert_eq!(g["ingress"][0]["security_group"], json!("sg-9"));
    }

    fn instance(root: Option<i32>, itype: &str) -> Resource {
        resource(
            "app.server",
            ResourceSpec::Instance(Instance {
                ami: "ami-1".into(),
                instance_type: itype.into(),
                subnet_id: "subnet-1".into(),
                vpc_security_group_ids: vec!["sg-2".into(), "sg-1".into()],
                user_data: Some("#!/bin/sh\n".into()),
                root_volume_size: root,
                iam_instance_profile: None,
                key_name: None,
                tags: BTreeMap::new(),
            }),
            &[],
        )
    }

    #[test]
    fn a_root_volume_grows_in_place_but_shrinking_or_a_new_type_replaces() {
        let actual = found(&instance(Some(16), "t3.micro"), "i-1", &HashMap::new());
        let plan = |r: Resource| diff("e", &[r], std::slice::from_ref(&actual));
        let grow = plan(instance(Some(32), "t3.micro"));
        assert_eq!(grow[0].change.action, Action::Update);
        let shrink = plan(instance(Some(8), "t3.micro"));
        assert_eq!(shrink[0].change.action, Action::Replace);
        assert!(shrink[0].change.fields[0].forces_replacement);
        let retype = plan(instance(Some(16), "t3.small"));
        assert_eq!(retype[0].change.action, Action::Replace);
        assert_eq!(retype[0].change.fields[0].path, "instance_type");
        let unset = plan(instance(None, "t3.micro"));
        assert_eq!(
            unset[0].change.action,
            Action::NoOp,
            "no size declared: the AMI's is fine"
        );
    }

    #[test]
    fn launch_template_data_hashes_the_same_declared_and_created() {
        let declared = LaunchTemplate {
            name: None,
            image_id: Some("ami-1".into()),
            instance_type: Some("t3.micro".into()),
            key_name: Some("${k.key.key_name}".into()),
            vpc_security_group_ids: vec!["${k.b.id}".into(), "${k.a.id}".into()],
            user_data: Some("echo hi".into()),
            tags: BTreeMap::new(),
        };
        let known: HashMap<String, String> = [
            ("k.key.key_name", "e-k.key"),
            ("k.a.id", "sg-a"),
            ("k.b.id", "sg-b"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let spec = ResourceSpec::LaunchTemplate(declared);
        let mut f = fields(&spec, "e", "k.lt");
        assert!(
            f["data"].is_object(),
            "not hashed while references are open"
        );
        resolve(&mut f, &known);
        let Ok(ResourceSpec::LaunchTemplate(created)) = resolve_spec(&spec, &known) else {
            panic!()
        };
        assert_eq!(f["data"], json!(launch_template_hash(&created)));
        assert_eq!(f["name"], json!("e-k.lt"));
    }

    #[test]
    fn associations_have_no_tags_and_key_pairs_compare_a_hash_of_the_key() {
        let assoc = fields(
            &ResourceSpec::EipAssociation(envboot_core::model::spec::EipAssociation {
                allocation_id: "${n.ip.id}".into(),
                instance_id: "${n.vm.id}".into(),
            }),
            "e",
            "n.assoc",
        );
        assert!(!assoc.contains_key("tags"));
        let key = fields(
            &ResourceSpec::KeyPair(envboot_core::model::spec::KeyPair {
                key_name: None,
                public_key_file: Some("k.pub".into()),
                public_key: Some("ssh-ed25519 AAAA x\n".into()),
                tags: BTreeMap::new(),
            }),
            "e",
            "n.key",
        );
        assert!(!key.contains_key("public_key_file"));
        assert_eq!(key["key_name"], json!("e-n.key"));
        assert_eq!(key["public_key"], json!(short_hash("ssh-ed25519 AAAA x")));
    }
}
