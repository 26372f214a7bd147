//! `aws_eip`: an Elastic IP address in the VPC domain.
//!
//! - Read: `DescribeAddresses` (not paginated: one call returns every match). The same answer
//!   says whether it is associated: an associated address of the environment also yields its
//!   `aws_eip_association` (see [`super::eip_association`]).
//! - Create: `AllocateAddress`.
//! - Update in place: tags only.
//! - Delete: after its association and the NAT gateways using it: `ReleaseAddress`, retried
//!   while AWS answers `DependencyViolation` or `InvalidIPAddress.InUse`.

use aws_sdk_ec2::types::{DomainType, Filter};
use serde_json::json;

use super::{eip_association, Delete, Fut, ResourceKind};
use crate::common::{attrs, described, missing, non_empty, Attributes, Tags};
use crate::{call_failed, tolerate, Actual, Aws, Described};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct Eip;

impl ResourceKind for Eip {
    fn delete_rank(&self) -> u8 {
        5
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
            // DescribeAddresses is not paginated: one call returns every match.
            let page = aws
                .client
                .describe_addresses()
                .set_filters(Some(filters))
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
                out.push(described(
                    ResourceType::Eip,
                    id,
                    a.tags(),
                    None,
                    json!({}),
                    &attributes,
                ));
            }
            Ok(out)
        })
    }

    fn discovered(&self, d: Described, address: String, out: &mut Vec<Actual>) {
        if let Some(a) = eip_association::of_eip(&d) {
            out.push(a);
        }
        out.push(d.into_actual(address));
    }

    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        t: &'a Tags<'a>,
        _token: &'a str,
        spec: &'a ResourceSpec,
    ) -> Fut<'a, Attributes> {
        let ResourceSpec::Eip(e) = spec else {
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
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::ElasticIp,
                    &e.tags,
                    &[],
                ))
                .send()
                .await
                .map_err(call_failed(address, "AllocateAddress"))?;
            let id = out
                .allocation_id()
                .ok_or_else(|| missing(address, "AllocateAddress", "AllocationId"))?;
            Ok(attrs(&[
                ("id", id),
                ("public_ip", out.public_ip().unwrap_or_default()),
            ]))
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .release_address()
                .allocation_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "ReleaseAddress"));
            tolerate(result, &[])
        })
    }
}
