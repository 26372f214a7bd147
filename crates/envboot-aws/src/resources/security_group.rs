//! `aws_security_group`: a security group of a VPC and its rules.
//!
//! Rules are compared, authorized and revoked one [`Permission`] at a time: a protocol, a port
//! range and ONE source (a CIDR block or another group), so a rule that loses one of its CIDR
//! blocks revokes just that one. Undeclared egress is AWS's default (everything, everywhere).
//! - Read: `DescribeSecurityGroups`; named by its group name, which is unique within its VPC.
//! - Create: `CreateSecurityGroup`; declared egress replaces AWS's default (revoke, then
//!   authorize), then `AuthorizeSecurityGroupIngress`. Rules naming groups that do not exist
//!   yet are added once they do ([`Aws::add_missing_rules`]).
//! - Update in place: rules, permission by permission (revoke what goes, then authorize what
//!   comes). The VPC and the description force a new group.
//! - Delete: after instances: the permissions of the environment's other groups that refer to
//!   it are revoked first, and its own references to other groups; then `DeleteSecurityGroup`,
//!   retried while AWS answers `DependencyViolation`.

use std::collections::HashSet;

use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Tag, UserIdGroupPair};
use envboot_core::model::spec::Rule;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{actual_field, attrs, described, missing, Attributes, Tags};
use crate::{call_failed, diff, tolerate, Aws, AwsChange, DeleteContext, Described, Result};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct SecurityGroup;

/// One security group permission: a protocol, a port range and ONE source or destination (a
/// CIDR block or a security group). Rules are compared, authorized and revoked in these units,
/// so a rule with two CIDR blocks that loses one revokes just that one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Permission {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr_block: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
}

/// The protocol and ports as AWS reports them: names for tcp, udp and icmp, `-1` for all (whose
/// ports AWS does not report: they become 0).
pub fn normalize_protocol(
    protocol: &str,
    from: Option<i32>,
    to: Option<i32>,
) -> (String, i32, i32) {
    let p = match protocol.to_ascii_lowercase().as_str() {
        "6" => "tcp".to_string(),
        "17" => "udp".to_string(),
        "1" => "icmp".to_string(),
        "all" | "-1" => "-1".to_string(),
        other => other.to_string(),
    };
    if p == "-1" {
        (p, 0, 0)
    } else {
        (p, from.unwrap_or(-1), to.unwrap_or(-1))
    }
}

/// Splits declared rules into permissions.
pub fn permissions(rules: &[Rule]) -> Vec<Permission> {
    let mut out = Vec::new();
    for r in rules {
        let (protocol, from_port, to_port) =
            normalize_protocol(&r.protocol, Some(r.from_port), Some(r.to_port));
        let base = Permission {
            protocol,
            from_port,
            to_port,
            cidr_block: None,
            security_group: None,
        };
        out.extend(r.cidr_blocks.iter().map(|c| Permission {
            cidr_block: Some(c.clone()),
            ..base.clone()
        }));
        out.extend(r.security_groups.iter().map(|g| Permission {
            security_group: Some(g.clone()),
            ..base.clone()
        }));
    }
    out.sort();
    out.dedup();
    out
}

/// AWS's default egress of a new security group: everything, everywhere.
pub fn default_egress() -> Vec<Rule> {
    vec![Rule {
        protocol: "-1".into(),
        from_port: 0,
        to_port: 0,
        cidr_blocks: vec!["0.0.0.0/0".into()],
        security_groups: Vec::new(),
    }]
}

/// Security group permissions as read, as [`Permission`]s, one per source.
pub(crate) fn permissions_from(list: &[IpPermission]) -> Value {
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

impl ResourceKind for SecurityGroup {
    fn delete_rank(&self) -> u8 {
        7
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["vpc_id", "description"]
    }

    fn fields(
        &self,
        spec: &ResourceSpec,
        _environment: &str,
        _address: &str,
        map: &mut Map<String, Value>,
    ) {
        let ResourceSpec::SecurityGroup(g) = spec else {
            return;
        };
        map.insert("ingress".into(), json!(permissions(&g.ingress)));
        let egress = g.egress.clone().unwrap_or_else(default_egress);
        map.insert("egress".into(), json!(permissions(&egress)));
    }

    fn name_filter(&self) -> &'static str {
        "group-name"
    }

    fn named_within_vpc(&self) -> bool {
        true
    }

    fn describe<'a>(
        &'a self,
        aws: &'a Aws,
        filters: Vec<Filter>,
        scope: &'a str,
    ) -> Fut<'a, Vec<Described>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut pages = aws
                .client
                .describe_security_groups()
                .set_filters(Some(filters))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(call_failed(scope, "DescribeSecurityGroups"))?;
                for g in page.security_groups() {
                    let Some(id) = g.group_id() else { continue };
                    out.push(described(
                        ResourceType::SecurityGroup,
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
            Ok(out)
        })
    }

    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        t: &'a Tags<'a>,
        _token: &'a str,
        spec: &'a ResourceSpec,
    ) -> Fut<'a, Attributes> {
        let ResourceSpec::SecurityGroup(g) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        let address = t.address;
        Box::pin(async move {
            let out = aws
                .client
                .create_security_group()
                .group_name(diff::aws_name(spec, t.environment, address))
                .description(&g.description)
                .vpc_id(&g.vpc_id)
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::SecurityGroup,
                    &g.tags,
                    &[],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateSecurityGroup"))?;
            let id = out
                .group_id()
                .ok_or_else(|| missing(address, "CreateSecurityGroup", "GroupId"))?;
            let default = permissions(&default_egress());
            if let Some(egress) = &g.egress {
                change_rules(aws, address, id, true, &default, &permissions(egress)).await?;
            }
            rules(aws, address, id, false, true, &permissions(&g.ingress)).await?;
            Ok(attrs(&[("id", id)]))
        })
    }

    fn update_field<'a>(
        &'a self,
        aws: &'a Aws,
        u: &'a Update<'a>,
        field: &'a str,
        _extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        let (field @ ("ingress" | "egress"), ResourceSpec::SecurityGroup(g)) = (field, u.spec)
        else {
            return done(());
        };
        Box::pin(async move {
            let egress = field == "egress";
            let before: Vec<Permission> = actual_field(u.change, field);
            let after = if egress {
                permissions(&g.egress.clone().unwrap_or_else(default_egress))
            } else {
                permissions(&g.ingress)
            };
            change_rules(aws, u.address, u.id, egress, &before, &after).await
        })
    }

    fn note_for_deletes(
        &self,
        ctx: &mut DeleteContext,
        change: &AwsChange,
        id: &str,
        actual: &Map<String, Value>,
        _deleted: &HashSet<&str>,
    ) {
        for (field, egress) in [("ingress", false), ("egress", true)] {
            let perms: Vec<Permission> = actual
                .get(field)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            for p in perms {
                if let Some(target) = p.security_group.clone() {
                    ctx.references.entry(target).or_default().push((
                        change.change.address.clone(),
                        id.to_string(),
                        egress,
                        p,
                    ));
                }
            }
        }
    }

    fn prepare_delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            for (group_address, group, egress, p) in
                d.ctx.references.get(d.id).into_iter().flatten()
            {
                rules(
                    aws,
                    group_address,
                    group,
                    *egress,
                    false,
                    std::slice::from_ref(p),
                )
                .await?;
            }
            // Its own references to other groups.
            for egress in [false, true] {
                let perms: Vec<Permission> =
                    actual_field(d.change, if egress { "egress" } else { "ingress" });
                let refs: Vec<Permission> = perms
                    .into_iter()
                    .filter(|p| p.security_group.is_some())
                    .collect();
                rules(aws, d.address, d.id, egress, false, &refs).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_security_group()
                .group_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteSecurityGroup"));
            tolerate(result, &[])
        })
    }
}

impl Aws {
    /// Adds the rules of a security group that `partial` (what it was created or updated
    /// with) left out and `full` has: sources known only once other groups exist.
    pub async fn add_missing_rules(
        &self,
        address: &str,
        group: &str,
        partial: &envboot_core::model::spec::SecurityGroup,
        full: &envboot_core::model::spec::SecurityGroup,
    ) -> Result<()> {
        let default = default_egress();
        for (egress, before, after) in [
            (false, &partial.ingress, &full.ingress),
            (
                true,
                partial.egress.as_ref().unwrap_or(&default),
                full.egress.as_ref().unwrap_or(&default),
            ),
        ] {
            let (before, after) = (permissions(before), permissions(after));
            change_rules(self, address, group, egress, &before, &after).await?;
        }
        Ok(())
    }
}

/// Takes a group's ingress or egress rules from `before` to `after`: revokes what goes, then
/// authorizes what comes.
async fn change_rules(
    aws: &Aws,
    address: &str,
    group: &str,
    egress: bool,
    before: &[Permission],
    after: &[Permission],
) -> Result<()> {
    let missing_from = |a: &[Permission], b: &[Permission]| -> Vec<Permission> {
        a.iter().filter(|p| !b.contains(p)).cloned().collect()
    };
    rules(
        aws,
        address,
        group,
        egress,
        false,
        &missing_from(before, after),
    )
    .await?;
    rules(
        aws,
        address,
        group,
        egress,
        true,
        &missing_from(after, before),
    )
    .await
}

fn ip_permission(p: &Permission) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol(&p.protocol)
        .from_port(p.from_port)
        .to_port(p.to_port);
    let b = match &p.cidr_block {
        Some(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        None => b,
    };
    let b = match &p.security_group {
        Some(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        None => b,
    };
    b.build()
}

/// Authorizes (`add`) or revokes security group permissions, ingress or egress. Revoking a
/// permission that is already gone is not an error.
pub(crate) async fn rules(
    aws: &Aws,
    address: &str,
    group: &str,
    egress: bool,
    add: bool,
    perms: &[Permission],
) -> Result<()> {
    if perms.is_empty() {
        return Ok(());
    }
    let list: Vec<IpPermission> = perms.iter().map(ip_permission).collect();
    let result = match (egress, add) {
        (false, true) => aws
            .client
            .authorize_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(list))
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "AuthorizeSecurityGroupIngress")),
        (true, true) => aws
            .client
            .authorize_security_group_egress()
            .group_id(group)
            .set_ip_permissions(Some(list))
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "AuthorizeSecurityGroupEgress")),
        (false, false) => aws
            .client
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(list))
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "RevokeSecurityGroupIngress")),
        (true, false) => aws
            .client
            .revoke_security_group_egress()
            .group_id(group)
            .set_ip_permissions(Some(list))
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "RevokeSecurityGroupEgress")),
    };
    if add {
        tolerate(result, &["InvalidPermission.Duplicate"])
    } else {
        tolerate(result, &["InvalidPermission.NotFound"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_becomes_one_ip_permission_with_its_one_source() {
        let p = ip_permission(&Permission {
            protocol: "tcp".into(),
            from_port: 80,
            to_port: 80,
            cidr_block: None,
            security_group: Some("sg-1".into()),
        });
        assert_eq!(p.ip_protocol(), Some("tcp"));
        assert!(p.ip_ranges().is_empty());
        assert_eq!(p.user_id_group_pairs()[0].group_id(), Some("sg-1"));
    }
}
