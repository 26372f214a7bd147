//! `aws_eip_association`: an Elastic IP associated with an instance.
//!
//! AWS has no tags on associations, so the Elastic IP carries the tag `envboot:association`
//! naming the association's address.
//! - Read: not described on its own; it comes from its Elastic IP's `DescribeAddresses` (see
//!   [`of_eip`]).
//! - Create: `CreateTags` on the Elastic IP first (an association that exists is then always
//!   found), then `AssociateAddress`.
//! - Update in place: nothing; the Elastic IP and the instance force a new association.
//! - Delete (first of all): `DisassociateAddress`, then `DeleteTags` of `envboot:association`
//!   on the Elastic IP.

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::json;

use super::{done, Delete, Fut, ResourceKind};
use crate::common::{actual_field, attrs, missing, Attributes, Tags};
use crate::{
    call_failed, tag, tag_value, tolerate, Actual, Aws, Described, TAG_ASSOCIATION, TAG_REVISION,
};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct EipAssociation;

impl ResourceKind for EipAssociation {
    fn delete_rank(&self) -> u8 {
        0
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["allocation_id", "instance_id"]
    }

    /// Nothing to call: associations are read from their Elastic IPs.
    fn describe<'a>(
        &'a self,
        _aws: &'a Aws,
        _filters: Vec<Filter>,
        _scope: &'a str,
    ) -> Fut<'a, Vec<Described>> {
        done(Vec::new())
    }

    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        t: &'a Tags<'a>,
        _token: &'a str,
        spec: &'a ResourceSpec,
    ) -> Fut<'a, Attributes> {
        let ResourceSpec::EipAssociation(a) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        let address = t.address;
        Box::pin(async move {
            // Tag first: an association that exists is then always found.
            aws.client
                .create_tags()
                .resources(&a.allocation_id)
                .tags(tag(TAG_ASSOCIATION, address))
                .send()
                .await
                .map_err(call_failed(address, "CreateTags"))?;
            let out = aws
                .client
                .associate_address()
                .allocation_id(&a.allocation_id)
                .instance_id(&a.instance_id)
                .send()
                .await
                .map_err(call_failed(address, "AssociateAddress"))?;
            let id = out
                .association_id()
                .ok_or_else(|| missing(address, "AssociateAddress", "AssociationId"))?;
            Ok(attrs(&[("id", id)]))
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .disassociate_address()
                .association_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DisassociateAddress"));
            tolerate(result, &[])?;
            let allocation: Option<String> = actual_field(d.change, "allocation_id");
            let result = match allocation {
                Some(a) => aws
                    .client
                    .delete_tags()
                    .resources(a)
                    .tags(Tag::builder().key(TAG_ASSOCIATION).build())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(d.address, "DeleteTags")),
                None => Ok(()),
            };
            tolerate(result, &[])
        })
    }
}

/// The `aws_eip_association` an Elastic IP of the environment carries, if it is associated.
pub(crate) fn of_eip(eip: &Described) -> Option<Actual> {
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
