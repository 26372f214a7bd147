//! Reading resources: one (paginated) Describe call per type, read into the shape of the
//! desired arguments (see `diff::fields`).

use aws_sdk_ec2::types::{Filter, IpPermission, Tag};
use serde_json::{json, Map, Value};

use super::diff::{self, normalize_protocol, Permission};
use super::{
    call_failed, filter, tag_value, Actual, Aws, Described, Result, TAG_ASSOCIATION, TAG_DATA,
    TAG_DNS_HOSTNAMES, TAG_DNS_SUPPORT, TAG_PUBLIC_KEY, TAG_REVISION, TAG_ROOT_VOLUME_SIZE,
    TAG_USER_DATA,
};
use envboot_core::model::ResourceType;

/// User tags as fields: everything but envboot's and AWS's own.
fn user_tags(tags: &[Tag]) -> Value {
    let map: Map<String, Value> = tags
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .filter(|(k, _)| !k.starts_with("envboot:") && !k.starts_with("aws:"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(map)
}

/// Security group permissions as [`Permission`]s, one per source.
pub(super) fn permissions_from(list: &[IpPermission]) -> Value {
    let mut out: Vec<Permission> = Vec::new();
    for p in list {
        let (protocol, from_port, to_port) =
            normalize_protocol(p.ip_protocol().unwrap_or("-1"), p.from_port(), p.to_port());
        let base = Permission {
            protocol,
            from_port,
            to_port,
            cidr_block: None,
            security_group: None,
        };
        out.extend(p.ip_ranges().iter().filter_map(|r| {
            Some(Permission {
                cidr_block: Some(r.cidr_ip()?.to_string()),
                ..base.clone()
            })
        }));
        out.extend(p.user_id_group_pairs().iter().filter_map(|g| {
            Some(Permission {
                security_group: Some(g.group_id()?.to_string()),
                ..base.clone()
            })
        }));
    }
    out.sort();
    out.dedup();
    json!(out)
}

fn described(
    rtype: ResourceType,
    id: &str,
    tags: &[Tag],
    name: Option<&str>,
    fields: Value,
    attributes: &[(&str, &str)],
) -> Described {
    let mut fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if rtype.taggable() {
        fields.insert("tags".into(), user_tags(tags));
    }
    diff::normalize(&mut fields);
    Described {
        rtype,
        id: id.to_string(),
        tags: tags.to_vec(),
        name: name
            .map(str::to_string)
            .or_else(|| tag_value(tags, "Name").map(str::to_string)),
        fields,
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The `aws_eip_association` an Elastic IP of the environment carries, if it is associated.
pub(super) fn eip_association(eip: &Described) -> Option<Actual> {
    let address = tag_value(&eip.tags, TAG_ASSOCIATION)?;
    let association = eip.attributes.get("association_id")?;
    let instance = eip.attributes.get("instance_id")?;
    Some(Actual {
        rtype: ResourceType::EipAssociation,
        address: address.to_string(),
        id: association.clone(),
        revision: tag_value(&eip.tags, TAG_REVISION).map(str::to_string),
        fields: json!({"allocation_id": eip.id, "instance_id": instance})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        attributes: [("id".to_string(), association.clone())].into(),
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

impl Aws {
    /// Every resource of type `rtype` matching `filters`, in one paginated Describe call.
    pub(super) async fn describe(
        &self,
        rtype: ResourceType,
        filters: Vec<Filter>,
        scope: &str,
    ) -> Result<Vec<Described>> {
        let f = Some(filters);
        let mut out = Vec::new();
        match rtype {
            ResourceType::Vpc => {
                let mut pages = self
                    .client
                    .describe_vpcs()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeVpcs"))?;
                    for v in page.vpcs() {
                        let Some(id) = v.vpc_id() else { continue };
                        let cidr = v.cidr_block().unwrap_or_default();
                        let flag = |key: &str, default: bool| {
                            tag_value(v.tags(), key).map_or(default, |t| t == "true")
                        };
                        out.push(described(
                            rtype,
                            id,
                            v.tags(),
                            None,
                            json!({
                                "cidr_block": cidr,
                                "enable_dns_support": flag(TAG_DNS_SUPPORT, true),
                                "enable_dns_hostnames": flag(TAG_DNS_HOSTNAMES, false),
                            }),
                            &[("id", id), ("cidr_block", cidr)],
                        ));
                    }
                }
            }
            ResourceType::Subnet => {
                let mut pages = self
                    .client
                    .describe_subnets()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeSubnets"))?;
                    for s in page.subnets() {
                        let Some(id) = s.subnet_id() else { continue };
                        let cidr = s.cidr_block().unwrap_or_default();
                        let zone = s.availability_zone().unwrap_or_default();
                        out.push(described(
                            rtype,
                            id,
                            s.tags(),
                            None,
                            json!({
                                "vpc_id": s.vpc_id().unwrap_or_default(),
                                "cidr_block": cidr,
                                "availability_zone": zone,
                                "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false),
                            }),
                            &[("id", id), ("cidr_block", cidr), ("availability_zone", zone)],
                        ));
                    }
                }
            }
            ResourceType::InternetGateway => {
                let mut pages = self
                    .client
                    .describe_internet_gateways()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeInternetGateways"))?;
                    for g in page.internet_gateways() {
                        let Some(id) = g.internet_gateway_id() else {
                            continue;
                        };
                        let vpc = g
                            .attachments()
                            .iter()
                            .filter(|a| {
                                !matches!(
                                    a.state().map(|s| s.as_str()),
                                    Some("detaching" | "detached")
                                )
                            })
                            .find_map(|a| a.vpc_id());
                        out.push(described(
                            rtype,
                            id,
                            g.tags(),
                            None,
                            json!({"vpc_id": vpc}),
                            &[("id", id)],
                        ));
                    }
                }
            }
            ResourceType::Eip => {
                // DescribeAddresses is not paginated: one call returns every match.
                let page = self
                    .client
                    .describe_addresses()
                    .set_filters(f)
                    .send()
                    .await
                    .map_err(call_failed(scope, "DescribeAddresses"))?;
                for a in page.addresses() {
                    let Some(id) = a.allocation_id() else {
                        continue;
                    };
                    let mut attributes =
                        vec![("id", id), ("public_ip", a.public_ip().unwrap_or_default())];
                    if let (Some(assoc), Some(instance)) =
                        (non_empty(a.association_id()), non_empty(a.instance_id()))
                    {
                        attributes.push(("association_id", assoc));
                        attributes.push(("instance_id", instance));
                    }
                    out.push(described(rtype, id, a.tags(), None, json!({}), &attributes));
                }
            }
            ResourceType::NatGateway => {
                let mut pages = self
                    .client
                    .describe_nat_gateways()
                    .set_filter(f)
                    .filter(filter("state", &["pending", "available"]))
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeNatGateways"))?;
                    for n in page.nat_gateways() {
                        let Some(id) = n.nat_gateway_id() else {
                            continue;
                        };
                        let allocation = n
                            .nat_gateway_addresses()
                            .iter()
                            .find_map(|a| a.allocation_id());
                        out.push(described(
                            rtype,
                            id,
                            n.tags(),
                            None,
                            json!({
                                "subnet_id": n.subnet_id(),
                                "allocation_id": allocation,
                                "state": n.state().map(|s| s.as_str()),
                            }),
                            &[("id", id)],
                        ));
                    }
                }
            }
            ResourceType::RouteTable => {
                let mut pages = self
                    .client
                    .describe_route_tables()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeRouteTables"))?;
                    for t in page.route_tables() {
                        let Some(id) = t.route_table_id() else {
                            continue;
                        };
                        let routes: Vec<Value> = t
                            .routes()
                            .iter()
                            .filter(|r| {
                                r.origin().map(|o| o.as_str()) != Some("CreateRouteTable")
                                    && r.gateway_id() != Some("local")
                            })
                            .filter_map(|r| {
                                let cidr = r.destination_cidr_block()?;
                                let mut route = json!({"cidr_block": cidr});
                                if let Some(g) = non_empty(r.gateway_id()) {
                                    route["gateway_id"] = json!(g);
                                } else if let Some(n) = non_empty(r.nat_gateway_id()) {
                                    route["nat_gateway_id"] = json!(n);
                                } else {
                                    return None;
                                }
                                Some(route)
                            })
                            .collect();
                        let mut associations = Map::new();
                        for a in t.associations() {
                            let state = a.association_state().and_then(|s| s.state());
                            if a.main() == Some(true)
                                || matches!(
                                    state.map(|s| s.as_str()),
                                    Some("disassociating" | "disassociated" | "failed")
                                )
                            {
                                continue;
                            }
                            if let (Some(s), Some(assoc)) =
                                (a.subnet_id(), a.route_table_association_id())
                            {
                                associations.insert(s.to_string(), json!(assoc));
                            }
                        }
                        let subnets: Vec<&String> = associations.keys().collect();
                        out.push(described(
                            rtype,
                            id,
                            t.tags(),
                            None,
                            json!({
                                "vpc_id": t.vpc_id(),
                                "routes": routes,
                                "subnet_ids": subnets,
                                "association_ids": associations,
                            }),
                            &[("id", id)],
                        ));
                    }
                }
            }
            ResourceType::SecurityGroup => {
                let mut pages = self
                    .client
                    .describe_security_groups()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeSecurityGroups"))?;
                    for g in page.security_groups() {
                        let Some(id) = g.group_id() else { continue };
                        out.push(described(
                            rtype,
                            id,
                            g.tags(),
                            g.group_name(),
                            json!({
                                "vpc_id": g.vpc_id().unwrap_or_default(),
                                "description": g.description().unwrap_or_default(),
                                "ingress": permissions_from(g.ip_permissions()),
                                "egress": permissions_from(g.ip_permissions_egress()),
                            }),
                            &[("id", id)],
                        ));
                    }
                }
            }
            ResourceType::KeyPair => {
                // DescribeKeyPairs is not paginated: one call returns every match.
                let page = self
                    .client
                    .describe_key_pairs()
                    .set_filters(f)
                    .send()
                    .await
                    .map_err(call_failed(scope, "DescribeKeyPairs"))?;
                for k in page.key_pairs() {
                    let (Some(id), Some(name)) = (k.key_pair_id(), k.key_name()) else {
                        continue;
                    };
                    out.push(described(
                        rtype,
                        id,
                        k.tags(),
                        Some(name),
                        json!({
                            "key_name": name,
                            "public_key": tag_value(k.tags(), TAG_PUBLIC_KEY),
                        }),
                        &[("id", id), ("key_name", name)],
                    ));
                }
            }
            ResourceType::LaunchTemplate => {
                let mut pages = self
                    .client
                    .describe_launch_templates()
                    .set_filters(f)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeLaunchTemplates"))?;
                    for t in page.launch_templates() {
                        let (Some(id), Some(name)) =
                            (t.launch_template_id(), t.launch_template_name())
                        else {
                            continue;
                        };
                        out.push(described(
                            rtype,
                            id,
                            t.tags(),
                            Some(name),
                            json!({
                                "name": name,
                                "data": tag_value(t.tags(), TAG_DATA),
                            }),
                            &[("id", id), ("name", name)],
                        ));
                    }
                }
            }
            ResourceType::Instance => {
                let mut pages = self
                    .client
                    .describe_instances()
                    .set_filters(f)
                    .filters(filter(
                        "instance-state-name",
                        &["pending", "running", "stopping", "stopped"],
                    ))
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(call_failed(scope, "DescribeInstances"))?;
                    for i in page.reservations().iter().flat_map(|r| r.instances()) {
                        let Some(id) = i.instance_id() else { continue };
                        let mut groups: Vec<&str> = i
                            .security_groups()
                            .iter()
                            .filter_map(|g| g.group_id())
                            .collect();
                        groups.sort_unstable();
                        let profile = i
                            .iam_instance_profile()
                            .and_then(|p| p.arn())
                            .and_then(|arn| arn.rsplit('/').next());
                        let root: Option<i64> =
                            tag_value(i.tags(), TAG_ROOT_VOLUME_SIZE).and_then(|s| s.parse().ok());
                        let private_ip = i.private_ip_address().unwrap_or_default();
                        out.push(described(
                            rtype,
                            id,
                            i.tags(),
                            None,
                            json!({
                                "ami": i.image_id().unwrap_or_default(),
                                "instance_type": i.instance_type().map(|t| t.as_str()).unwrap_or_default(),
                                "subnet_id": i.subnet_id().unwrap_or_default(),
                                "vpc_security_group_ids": groups,
                                "user_data": tag_value(i.tags(), TAG_USER_DATA),
                                "root_volume_size": root,
                                "iam_instance_profile": profile,
                                "key_name": non_empty(i.key_name()),
                                "state": i.state().and_then(|s| s.name()).map(|s| s.as_str()),
                            }),
                            &[
                                ("id", id),
                                ("private_ip", private_ip),
                                ("public_ip", i.public_ip_address().unwrap_or_default()),
                            ],
                        ));
                    }
                }
            }
            ResourceType::EipAssociation => {}
        }
        Ok(out)
    }
}

/// The root volume of an instance (DescribeInstances of one instance, used by an update).
pub(super) fn root_volume(instance: &aws_sdk_ec2::types::Instance) -> Option<String> {
    let mappings = instance.block_device_mappings();
    let root = instance.root_device_name();
    mappings
        .iter()
        .find(|m| m.device_name().is_some() && m.device_name() == root)
        .or_else(|| mappings.first())
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_id())
        .map(str::to_string)
}
