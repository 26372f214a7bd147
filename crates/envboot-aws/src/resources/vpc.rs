//! `aws_vpc`: a VPC.
//!
//! - Read: `DescribeVpcs`. AWS does not return the DNS attributes there, so they are kept in
//!   the tags `envboot:dns-support` and `envboot:dns-hostnames` (absent: AWS's defaults, support
//!   on, host names off).
//! - Create: `CreateVpc`, then `ModifyVpcAttribute` for each DNS attribute that differs from
//!   AWS's default (one attribute per call, as the API demands).
//! - Update in place: the DNS attributes. The CIDR block forces a new VPC.
//! - Delete (last of all): internet gateways that are kept but attached to it are detached
//!   first (they are attached to the new VPC by their update), and with a Kubernetes cluster
//!   configured, what the cluster left in the VPC (network interfaces, security groups,
//!   volumes tagged `kubernetes.io/cluster/<name>`) is swept; then `DeleteVpc`.

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, Tag};
use serde_json::json;

use super::{done, internet_gateway, security_group, Delete, Fut, ResourceKind, Update};
use crate::common::{attrs, described, missing, retry_dependency, Attributes, Tags};
use crate::diff::Permission;
use crate::{
    call_failed, filter, progress, tag, tag_value, tolerate, Aws, Described, TAG_DNS_HOSTNAMES,
    TAG_DNS_SUPPORT,
};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct Vpc;

impl ResourceKind for Vpc {
    fn delete_rank(&self) -> u8 {
        9
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["cidr_block"]
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
                .describe_vpcs()
                .set_filters(Some(filters))
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
                        ResourceType::Vpc,
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
        let ResourceSpec::Vpc(v) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        let address = t.address;
        Box::pin(async move {
            let (support, hostnames) = (
                v.enable_dns_support.to_string(),
                v.enable_dns_hostnames.to_string(),
            );
            let out = aws
                .client
                .create_vpc()
                .cidr_block(&v.cidr_block)
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::Vpc,
                    &v.tags,
                    &[(TAG_DNS_SUPPORT, &support), (TAG_DNS_HOSTNAMES, &hostnames)],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateVpc"))?;
            let id = out
                .vpc()
                .and_then(|v| v.vpc_id())
                .ok_or_else(|| missing(address, "CreateVpc", "VpcId"))?;
            if !v.enable_dns_support {
                set_dns(aws, address, id, "enable_dns_support", false).await?;
            }
            if v.enable_dns_hostnames {
                set_dns(aws, address, id, "enable_dns_hostnames", true).await?;
            }
            Ok(attrs(&[("id", id), ("cidr_block", &v.cidr_block)]))
        })
    }

    fn update_field<'a>(
        &'a self,
        aws: &'a Aws,
        u: &'a Update<'a>,
        field: &'a str,
        extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        let ResourceSpec::Vpc(v) = u.spec else {
            return done(());
        };
        let (on, key) = match field {
            "enable_dns_support" => (v.enable_dns_support, TAG_DNS_SUPPORT),
            "enable_dns_hostnames" => (v.enable_dns_hostnames, TAG_DNS_HOSTNAMES),
            _ => return done(()),
        };
        Box::pin(async move {
            set_dns(aws, u.address, u.id, field, on).await?;
            extra_tags.push(tag(key, &on.to_string()));
            Ok(())
        })
    }

    fn prepare_delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            for (gateway_address, gateway) in d.ctx.gateways.get(d.id).into_iter().flatten() {
                internet_gateway::detach(aws, gateway_address, gateway, d.id).await?;
            }
            if let Some(cluster) = &aws.cluster {
                sweep_cluster(aws, d.address, d.id, cluster).await?;
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_vpc()
                .vpc_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteVpc"));
            tolerate(result, &[])
        })
    }
}

async fn set_dns(
    aws: &Aws,
    address: &str,
    id: &str,
    attribute: &str,
    on: bool,
) -> crate::Result<()> {
    let value = AttributeBooleanValue::builder().value(on).build();
    let call = aws.client.modify_vpc_attribute().vpc_id(id);
    let call = if attribute == "enable_dns_support" {
        call.enable_dns_support(value)
    } else {
        call.enable_dns_hostnames(value)
    };
    call.send()
        .await
        .map_err(call_failed(address, "ModifyVpcAttribute"))?;
    Ok(())
}

/// Deletes what a Kubernetes cluster created on its own in VPC `vpc` and tagged
/// `kubernetes.io/cluster/<cluster>`: detached network interfaces and security groups in the
/// VPC, and detached volumes. Nothing without that tag is touched.
async fn sweep_cluster(aws: &Aws, address: &str, vpc: &str, cluster: &str) -> crate::Result<()> {
    let key = format!("kubernetes.io/cluster/{cluster}");
    let tagged = || filter("tag-key", &[&key]);
    let in_vpc = || filter("vpc-id", &[vpc]);
    let mut enis = aws
        .client
        .describe_network_interfaces()
        .filters(tagged())
        .filters(in_vpc())
        .filters(filter("status", &["available"]))
        .into_paginator()
        .send();
    let mut eni_ids = Vec::new();
    while let Some(page) = enis.next().await {
        let page = page.map_err(call_failed(address, "DescribeNetworkInterfaces"))?;
        eni_ids.extend(
            page.network_interfaces()
                .iter()
                .filter_map(|n| n.network_interface_id().map(str::to_string)),
        );
    }
    for eni in eni_ids {
        progress(&format!(
            "deleting {eni}, left by cluster {cluster} in {vpc}"
        ));
        let result = aws
            .client
            .delete_network_interface()
            .network_interface_id(&eni)
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "DeleteNetworkInterface"));
        tolerate(result, &[])?;
    }
    let mut groups = aws
        .client
        .describe_security_groups()
        .filters(tagged())
        .filters(in_vpc())
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = groups.next().await {
        let page = page.map_err(call_failed(address, "DescribeSecurityGroups"))?;
        found.extend(page.security_groups().iter().cloned());
    }
    // Rules first: groups of a cluster refer to each other.
    for g in &found {
        let Some(id) = g.group_id() else { continue };
        let ingress: Vec<Permission> =
            serde_json::from_value(security_group::permissions_from(g.ip_permissions()))
                .unwrap_or_default();
        let egress: Vec<Permission> =
            serde_json::from_value(security_group::permissions_from(g.ip_permissions_egress()))
                .unwrap_or_default();
        security_group::rules(aws, address, id, false, false, &ingress).await?;
        security_group::rules(aws, address, id, true, false, &egress).await?;
    }
    let started = std::time::Instant::now();
    for g in &found {
        let Some(id) = g.group_id() else { continue };
        progress(&format!(
            "deleting {id}, left by cluster {cluster} in {vpc}"
        ));
        retry_dependency(started, || async {
            let result = aws
                .client
                .delete_security_group()
                .group_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "DeleteSecurityGroup"));
            tolerate(result, &[])
        })
        .await?;
    }
    let mut volumes = aws
        .client
        .describe_volumes()
        .filters(tagged())
        .filters(filter("status", &["available"]))
        .into_paginator()
        .send();
    let mut volume_ids = Vec::new();
    while let Some(page) = volumes.next().await {
        let page = page.map_err(call_failed(address, "DescribeVolumes"))?;
        volume_ids.extend(
            page.volumes()
                .iter()
                .filter_map(|v| v.volume_id().map(str::to_string)),
        );
    }
    for v in volume_ids {
        progress(&format!("deleting {v}, left by cluster {cluster}"));
        let result = aws
            .client
            .delete_volume()
            .volume_id(&v)
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "DeleteVolume"));
        tolerate(result, &[])?;
    }
    Ok(())
}
