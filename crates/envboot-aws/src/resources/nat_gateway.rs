//! `aws_nat_gateway`: a public NAT gateway in a subnet, with an Elastic IP.
//!
//! - Read: `DescribeNatGateways`, only those pending or available (deleted ones linger in the
//!   answer for a while).
//! - Create: `CreateNatGateway` with a `ClientToken`, then waiting until it is available
//!   (polling `DescribeNatGateways`; failed stops with AWS's failure message).
//! - Update in place: tags only; the subnet and the Elastic IP force a new gateway.
//! - Delete: after the route tables that route to it: `DeleteNatGateway`, then waiting until
//!   it is deleted, which frees its Elastic IP and network interface.
//! - Settle: a kept gateway found pending is waited for until available.

use aws_sdk_ec2::types::{Filter, NatGatewayState};
use serde_json::json;

use super::{Delete, Fut, ResourceKind};
use crate::common::{attrs, described, missing, Attributes, Tags};
use crate::{
    call_failed, filter, tolerate, Aws, Described, Error, Result, DELETE_TIMEOUT, READY_TIMEOUT,
};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct NatGateway;

impl ResourceKind for NatGateway {
    fn delete_rank(&self) -> u8 {
        4
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["subnet_id", "allocation_id"]
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
                .describe_nat_gateways()
                .set_filter(Some(filters))
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
                        ResourceType::NatGateway,
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
            Ok(out)
        })
    }

    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        t: &'a Tags<'a>,
        token: &'a str,
        spec: &'a ResourceSpec,
    ) -> Fut<'a, Attributes> {
        let ResourceSpec::NatGateway(n) = spec else {
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
                .create_nat_gateway()
                .subnet_id(&n.subnet_id)
                .allocation_id(&n.allocation_id)
                .client_token(token)
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::Natgateway,
                    &n.tags,
                    &[],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateNatGateway"))?;
            let id = out
                .nat_gateway()
                .and_then(|n| n.nat_gateway_id())
                .ok_or_else(|| missing(address, "CreateNatGateway", "NatGatewayId"))?;
            wait(aws, address, id, NatGatewayState::Available).await?;
            Ok(attrs(&[("id", id)]))
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            aws.client
                .delete_nat_gateway()
                .nat_gateway_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteNatGateway"))?;
            let result = wait(aws, d.address, d.id, NatGatewayState::Deleted).await;
            tolerate(result, &[])
        })
    }

    fn settles(&self) -> bool {
        true
    }

    fn settle<'a>(&'a self, aws: &'a Aws, address: &'a str, id: &'a str) -> Fut<'a, ()> {
        Box::pin(wait(aws, address, id, NatGatewayState::Available))
    }
}

/// Waits until the gateway reaches `goal` (available or deleted).
async fn wait(aws: &Aws, address: &str, id: &str, goal: NatGatewayState) -> Result<()> {
    let (label, timeout) = match goal {
        NatGatewayState::Deleted => ("be deleted", DELETE_TIMEOUT),
        _ => ("become available", READY_TIMEOUT),
    };
    aws.wait_for(address, id, label, timeout, || async {
        let out = aws
            .client
            .describe_nat_gateways()
            .nat_gateway_ids(id)
            .send()
            .await
            .map_err(call_failed(address, "DescribeNatGateways"));
        let out = match out {
            Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => {
                return Ok((goal == NatGatewayState::Deleted, "not found".to_string()))
            }
            other => other?,
        };
        let Some(n) = out.nat_gateways().first() else {
            return Ok((goal == NatGatewayState::Deleted, "gone".to_string()));
        };
        let state = n.state().cloned().unwrap_or(NatGatewayState::Pending);
        if state == goal {
            return Ok((true, state.as_str().to_string()));
        }
        if goal == NatGatewayState::Available
            && matches!(state, NatGatewayState::Failed | NatGatewayState::Deleted)
        {
            return Err(Error::Failed {
                resource: address.to_string(),
                id: id.to_string(),
                state: state.as_str().to_string(),
                goal: "available",
                reason: n
                    .failure_message()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
            });
        }
        Ok((false, state.as_str().to_string()))
    })
    .await
}
