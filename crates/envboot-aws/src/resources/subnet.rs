//! `aws_subnet`: a subnet of a VPC, in one availability zone.
//!
//! - Read: `DescribeSubnets`.
//! - Create: `CreateSubnet`, then `ModifySubnetAttribute` if instances launched in it get a
//!   public IP (the create call cannot set it).
//! - Update in place: the public-IP mapping. The VPC, CIDR block and zone force a new subnet.
//! - Delete: after instances, NAT gateways and security groups (AWS refuses while network
//!   interfaces remain in it); `DeleteSubnet`, retried while AWS answers `DependencyViolation`.

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, Tag};
use serde_json::json;

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{attrs, described, missing, Attributes, Tags};
use crate::{call_failed, tolerate, Aws, Described};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct Subnet;

impl ResourceKind for Subnet {
    fn delete_rank(&self) -> u8 {
        8
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["vpc_id", "cidr_block", "availability_zone"]
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
                .describe_subnets()
                .set_filters(Some(filters))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(call_failed(scope, "DescribeSubnets"))?;
                for s in page.subnets() {
                    let Some(id) = s.subnet_id() else { continue };
                    let cidr = s.cidr_block().unwrap_or_default();
                    let zone = s.availability_zone().unwrap_or_default();
                    out.push(described(
                        ResourceType::Subnet,
                        id,
                        s.tags(),
                        None,
                        json!({
                            "vpc_id": s.vpc_id().unwrap_or_default(),
                            "cidr_block": cidr,
                            "availability_zone": zone,
                            "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false),
                        }),
                        &[
                            ("id", id),
                            ("cidr_block", cidr),
                            ("availability_zone", zone),
                        ],
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
        let ResourceSpec::Subnet(s) = spec else {
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
                .create_subnet()
                .vpc_id(&s.vpc_id)
                .cidr_block(&s.cidr_block)
                .availability_zone(&s.availability_zone)
                .tag_specifications(t.spec(aws_sdk_ec2::types::ResourceType::Subnet, &s.tags, &[]))
                .send()
                .await
                .map_err(call_failed(address, "CreateSubnet"))?;
            let id = out
                .subnet()
                .and_then(|s| s.subnet_id())
                .ok_or_else(|| missing(address, "CreateSubnet", "SubnetId"))?;
            if s.map_public_ip_on_launch {
                set_public_ip(aws, address, id, true).await?;
            }
            Ok(attrs(&[
                ("id", id),
                ("cidr_block", &s.cidr_block),
                ("availability_zone", &s.availability_zone),
            ]))
        })
    }

    fn update_field<'a>(
        &'a self,
        aws: &'a Aws,
        u: &'a Update<'a>,
        field: &'a str,
        _extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        match (field, u.spec) {
            ("map_public_ip_on_launch", ResourceSpec::Subnet(s)) => Box::pin(set_public_ip(
                aws,
                u.address,
                u.id,
                s.map_public_ip_on_launch,
            )),
            _ => done(()),
        }
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_subnet()
                .subnet_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteSubnet"));
            tolerate(result, &[])
        })
    }
}

async fn set_public_ip(aws: &Aws, address: &str, id: &str, on: bool) -> crate::Result<()> {
    aws.client
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(call_failed(address, "ModifySubnetAttribute"))?;
    Ok(())
}
