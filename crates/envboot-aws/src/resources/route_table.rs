//! `aws_route_table`: a route table of a VPC, its routes and the subnets associated with it.
//!
//! - Read: `DescribeRouteTables`. The local route and the routes AWS made with the table are
//!   left out; so are the main association and associations on their way out. The association
//!   ids are kept (`association_ids`, subnet to association) for updates and deletion.
//! - Create: `CreateRouteTable` with a `ClientToken`, then `CreateRoute` for each route and
//!   `AssociateRouteTable` for each subnet.
//! - Update in place: routes (`DeleteRoute` what goes, `ReplaceRoute` what changes target,
//!   `CreateRoute` what comes) and subnet associations. The VPC forces a new table.
//! - Delete: after instances, before NAT gateways: `DisassociateRouteTable` for each
//!   association first, then `DeleteRouteTable`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{Filter, Tag};
use envboot_core::model::spec::Route;
use serde_json::{json, Map, Value};

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{actual_field, attrs, described, missing, non_empty, Attributes, Tags};
use crate::{call_failed, tolerate, Aws, Described, Result};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct RouteTable;

impl ResourceKind for RouteTable {
    fn delete_rank(&self) -> u8 {
        3
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["vpc_id"]
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
                .describe_route_tables()
                .set_filters(Some(filters))
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
                        ResourceType::RouteTable,
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
        let ResourceSpec::RouteTable(r) = spec else {
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
                .create_route_table()
                .vpc_id(&r.vpc_id)
                .client_token(token)
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::RouteTable,
                    &r.tags,
                    &[],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateRouteTable"))?;
            let id = out
                .route_table()
                .and_then(|r| r.route_table_id())
                .ok_or_else(|| missing(address, "CreateRouteTable", "RouteTableId"))?;
            for route in &r.routes {
                put_route(aws, address, id, route, false).await?;
            }
            for s in &r.subnet_ids {
                associate(aws, address, id, s).await?;
            }
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
        let ResourceSpec::RouteTable(t) = u.spec else {
            return done(());
        };
        let (address, id) = (u.address, u.id);
        match field {
            "routes" => Box::pin(async move {
                let before: Vec<Route> = actual_field(u.change, "routes");
                let by_cidr: HashMap<&str, &Route> =
                    before.iter().map(|r| (r.cidr_block.as_str(), r)).collect();
                let wanted: HashMap<&str, &Route> = t
                    .routes
                    .iter()
                    .map(|r| (r.cidr_block.as_str(), r))
                    .collect();
                for r in &before {
                    if !wanted.contains_key(r.cidr_block.as_str()) {
                        let result = aws
                            .client
                            .delete_route()
                            .route_table_id(id)
                            .destination_cidr_block(&r.cidr_block)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(call_failed(address, "DeleteRoute"));
                        tolerate(result, &[])?;
                    }
                }
                for r in &t.routes {
                    match by_cidr.get(r.cidr_block.as_str()) {
                        Some(old) if *old == r => {}
                        Some(_) => put_route(aws, address, id, r, true).await?,
                        None => put_route(aws, address, id, r, false).await?,
                    }
                }
                Ok(())
            }),
            "subnet_ids" => Box::pin(async move {
                let associations: BTreeMap<String, String> =
                    actual_field(u.change, "association_ids");
                for (subnet, association) in &associations {
                    if !t.subnet_ids.contains(subnet) {
                        disassociate(aws, address, association).await?;
                    }
                }
                for subnet in &t.subnet_ids {
                    if !associations.contains_key(subnet) {
                        associate(aws, address, id, subnet).await?;
                    }
                }
                Ok(())
            }),
            _ => done(()),
        }
    }

    fn prepare_delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let associations: BTreeMap<String, String> = actual_field(d.change, "association_ids");
            for association in associations.values() {
                disassociate(aws, d.address, association).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_route_table()
                .route_table_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteRouteTable"));
            tolerate(result, &[])
        })
    }
}

/// Creates (or, with `replace`, replaces) one route.
async fn put_route(aws: &Aws, address: &str, table: &str, r: &Route, replace: bool) -> Result<()> {
    if replace {
        aws.client
            .replace_route()
            .route_table_id(table)
            .destination_cidr_block(&r.cidr_block)
            .set_gateway_id(r.gateway_id.clone())
            .set_nat_gateway_id(r.nat_gateway_id.clone())
            .send()
            .await
            .map_err(call_failed(address, "ReplaceRoute"))?;
    } else {
        aws.client
            .create_route()
            .route_table_id(table)
            .destination_cidr_block(&r.cidr_block)
            .set_gateway_id(r.gateway_id.clone())
            .set_nat_gateway_id(r.nat_gateway_id.clone())
            .send()
            .await
            .map_err(call_failed(address, "CreateRoute"))?;
    }
    Ok(())
}

async fn associate(aws: &Aws, address: &str, table: &str, subnet: &str) -> Result<()> {
    aws.client
        .associate_route_table()
        .route_table_id(table)
        .subnet_id(subnet)
        .send()
        .await
        .map_err(call_failed(address, "AssociateRouteTable"))?;
    Ok(())
}

async fn disassociate(aws: &Aws, address: &str, association: &str) -> Result<()> {
    let result = aws
        .client
        .disassociate_route_table()
        .association_id(association)
        .send()
        .await
        .map(|_| ())
        .map_err(call_failed(address, "DisassociateRouteTable"));
    tolerate(result, &[])
}
