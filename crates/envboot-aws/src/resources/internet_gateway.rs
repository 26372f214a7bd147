//! `aws_internet_gateway`: an internet gateway, attached to one VPC.
//!
//! - Read: `DescribeInternetGateways`; its VPC is the attachment that is not detaching or
//!   detached.
//! - Create: `CreateInternetGateway`, then `AttachInternetGateway`.
//! - Update in place: moving it to another VPC (detach from the old one, attach to the new).
//! - Delete: after Elastic IPs (AWS refuses to detach while public addresses are mapped in the
//!   VPC): `DetachInternetGateway` (retried while AWS answers `DependencyViolation`), then
//!   `DeleteInternetGateway`. A kept gateway whose VPC is deleted is noted in the
//!   [`DeleteContext`] so that the VPC's deletion detaches it first.

use std::collections::HashSet;

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::{json, Map, Value};

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{actual_field, attrs, described, missing, retry_dependency, Attributes, Tags};
use crate::{call_failed, tolerate, Aws, AwsChange, DeleteContext, Described};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct InternetGateway;

impl ResourceKind for InternetGateway {
    fn delete_rank(&self) -> u8 {
        6
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &[]
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
                .describe_internet_gateways()
                .set_filters(Some(filters))
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
                        ResourceType::InternetGateway,
                        id,
                        g.tags(),
                        None,
                        json!({"vpc_id": vpc}),
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
        let ResourceSpec::InternetGateway(g) = spec else {
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
                .create_internet_gateway()
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::InternetGateway,
                    &g.tags,
                    &[],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateInternetGateway"))?;
            let id = out
                .internet_gateway()
                .and_then(|g| g.internet_gateway_id())
                .ok_or_else(|| missing(address, "CreateInternetGateway", "InternetGatewayId"))?;
            attach(aws, address, id, &g.vpc_id).await?;
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
        let ("vpc_id", ResourceSpec::InternetGateway(g)) = (field, u.spec) else {
            return done(());
        };
        Box::pin(async move {
            let before: Option<String> = actual_field(u.change, "vpc_id");
            if let Some(old) = before.filter(|v| !v.is_empty()) {
                detach(aws, u.address, u.id, &old).await?;
            }
            attach(aws, u.address, u.id, &g.vpc_id).await
        })
    }

    fn note_for_deletes(
        &self,
        ctx: &mut DeleteContext,
        change: &AwsChange,
        id: &str,
        actual: &Map<String, Value>,
        deleted: &HashSet<&str>,
    ) {
        if deleted.contains(id) {
            return;
        }
        if let Some(vpc) = actual.get("vpc_id").and_then(Value::as_str) {
            if deleted.contains(vpc) {
                ctx.gateways
                    .entry(vpc.to_string())
                    .or_default()
                    .push((change.change.address.clone(), id.to_string()));
            }
        }
    }

    fn prepare_delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let vpc: Option<String> = actual_field(d.change, "vpc_id");
            if let Some(vpc) = vpc.filter(|v| !v.is_empty()) {
                retry_dependency(d.started, || detach(aws, d.address, d.id, &vpc)).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_internet_gateway()
                .internet_gateway_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteInternetGateway"));
            tolerate(result, &[])
        })
    }
}

async fn attach(aws: &Aws, address: &str, id: &str, vpc: &str) -> crate::Result<()> {
    aws.client
        .attach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc)
        .send()
        .await
        .map_err(call_failed(address, "AttachInternetGateway"))?;
    Ok(())
}

/// Detaches the gateway `id` from `vpc`; not attached is not an error.
pub(crate) async fn detach(aws: &Aws, address: &str, id: &str, vpc: &str) -> crate::Result<()> {
    let result = aws
        .client
        .detach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc)
        .send()
        .await
        .map(|_| ())
        .map_err(call_failed(address, "DetachInternetGateway"));
    tolerate(result, &["Gateway.NotAttached"])
}
