//! One module per resource type, each holding everything about that type: which fields force a
//! new resource, its place in AWS's deletion order, how it is described (the Describe call and
//! its answer read into a [`Described`]), created, updated in place, deleted (with what AWS
//! needs first) and waited for.
//!
//! [`kind`] is the one place a [`ResourceType`] is mapped to its implementation; everything
//! else (discovery, diffing, apply) goes through the [`ResourceKind`] it returns. A new type is
//! one new file here and one line in [`kind`].

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use aws_sdk_ec2::types::{Filter, Tag};
use serde_json::{Map, Value};

use crate::common::{actual_field, retry_dependency, Attributes, Tags};
use crate::{
    call_failed, client_token, tag, Actual, Aws, AwsChange, DeleteContext, Described, Result,
    TAG_ADDRESS, TAG_ENVIRONMENT, TAG_REVISION,
};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) mod eip;
pub(crate) mod eip_association;
pub(crate) mod instance;
pub(crate) mod internet_gateway;
pub(crate) mod key_pair;
pub(crate) mod launch_template;
pub(crate) mod nat_gateway;
pub(crate) mod route_table;
pub(crate) mod security_group;
pub(crate) mod subnet;
pub(crate) mod vpc;

/// The future of a [`ResourceKind`] call.
pub(crate) type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A future that is ready with `value` (a step that has nothing to do for a type).
pub(crate) fn done<'a, T: Send + 'a>(value: T) -> Fut<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

/// The implementation of a resource type: the one place this is decided.
pub(crate) fn kind(rtype: ResourceType) -> &'static dyn ResourceKind {
    match rtype {
        ResourceType::Vpc => &vpc::Vpc,
        ResourceType::Subnet => &subnet::Subnet,
        ResourceType::InternetGateway => &internet_gateway::InternetGateway,
        ResourceType::Eip => &eip::Eip,
        ResourceType::NatGateway => &nat_gateway::NatGateway,
        ResourceType::RouteTable => &route_table::RouteTable,
        ResourceType::SecurityGroup => &security_group::SecurityGroup,
        ResourceType::KeyPair => &key_pair::KeyPair,
        ResourceType::LaunchTemplate => &launch_template::LaunchTemplate,
        ResourceType::Instance => &instance::Instance,
        ResourceType::EipAssociation => &eip_association::EipAssociation,
    }
}

/// Order of deletion, lower first, as AWS demands it: Elastic IP associations, then
/// instances, launch templates and key pairs, route tables (their subnet associations first),
/// NAT gateways (waiting until deleted, which frees their Elastic IP and network interface),
/// Elastic IPs, internet gateways (detached first: AWS refuses while public addresses are
/// mapped in the VPC), security groups (rules referring to other groups revoked first),
/// subnets, and VPCs last. Resources of one rank are deleted in parallel. Each type's module
/// states its rank.
pub fn delete_rank(rtype: ResourceType) -> u8 {
    kind(rtype).delete_rank()
}

/// An in-place update of one resource.
pub(crate) struct Update<'a> {
    pub(crate) change: &'a AwsChange,
    pub(crate) address: &'a str,
    pub(crate) id: &'a str,
    pub(crate) spec: &'a ResourceSpec,
}

/// A deletion of one resource.
pub(crate) struct Delete<'a> {
    pub(crate) change: &'a AwsChange,
    pub(crate) ctx: &'a DeleteContext,
    pub(crate) address: &'a str,
    pub(crate) id: &'a str,
    /// When the deletion started: retries of `DependencyViolation` are bounded from here.
    pub(crate) started: Instant,
}

/// Everything about one resource type. The defaults are what most types do.
pub(crate) trait ResourceKind: Sync {
    /// Its place in AWS's deletion order (see [`delete_rank`]).
    fn delete_rank(&self) -> u8;

    /// Arguments whose change needs a new resource.
    fn forces_new(&self) -> &'static [&'static str];

    /// Whether changing `field` from `before` to `after` needs a new resource.
    fn forces_replacement(&self, field: &str, _before: Option<&Value>, _after: &Value) -> bool {
        self.forces_new().contains(&field)
    }

    /// The name the spec gives the resource in AWS, if any (default: its `Name` tag).
    fn given_name(&self, spec: &ResourceSpec) -> Option<String> {
        spec.tags().and_then(|t| t.get("Name").cloned())
    }

    /// Turns the spec's serialized arguments (`map`) into the fields compared with what is read
    /// (`diff::fields`); before normalizing.
    fn fields(
        &self,
        _spec: &ResourceSpec,
        _environment: &str,
        _address: &str,
        _map: &mut Map<String, Value>,
    ) {
    }

    /// The Describe filter that finds resources by the name they are known by.
    fn name_filter(&self) -> &'static str {
        "tag:Name"
    }

    /// Whether the name is unique only within a VPC (then looked for once the VPC is known).
    fn named_within_vpc(&self) -> bool {
        false
    }

    /// Every resource of the type matching `filters`, in one paginated Describe call.
    fn describe<'a>(
        &'a self,
        aws: &'a Aws,
        filters: Vec<Filter>,
        scope: &'a str,
    ) -> Fut<'a, Vec<Described>>;

    /// What a resource of the environment, found at `address`, is in the plan.
    fn discovered(&self, d: Described, address: String, out: &mut Vec<Actual>) {
        out.push(d.into_actual(address));
    }

    /// Creates the resource (tagged at creation, `token` as its `ClientToken` where the API
    /// takes one); returns its attributes.
    fn create<'a>(
        &'a self,
        aws: &'a Aws,
        t: &'a Tags<'a>,
        token: &'a str,
        spec: &'a ResourceSpec,
    ) -> Fut<'a, Attributes>;

    /// Changes `field` in place (tags are changed for every type by [`Aws::update`]); tags to
    /// set with the revision go to `extra_tags`.
    fn update_field<'a>(
        &'a self,
        _aws: &'a Aws,
        _u: &'a Update<'a>,
        _field: &'a str,
        _extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        done(())
    }

    /// Notes in `ctx` what deletions of other resources need to know about this one.
    fn note_for_deletes(
        &self,
        _ctx: &mut DeleteContext,
        _change: &AwsChange,
        _id: &str,
        _actual: &Map<String, Value>,
        _deleted: &HashSet<&str>,
    ) {
    }

    /// What AWS needs done before the deletion, once.
    fn prepare_delete<'a>(&'a self, _aws: &'a Aws, _d: &'a Delete<'a>) -> Fut<'a, ()> {
        done(())
    }

    /// The deletion itself, retried while AWS answers `DependencyViolation`; tolerates "already
    /// gone".
    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()>;

    /// Whether a kept resource found `pending` is waited for ([`Aws::settle`]).
    fn settles(&self) -> bool {
        false
    }

    /// Waits until the resource is ready.
    fn settle<'a>(&'a self, _aws: &'a Aws, _address: &'a str, _id: &'a str) -> Fut<'a, ()> {
        done(())
    }
}

/// Whether a kept resource was found on its way to ready (see [`Aws::settle`]).
pub fn needs_settling(change: &AwsChange) -> bool {
    let state: Option<String> = actual_field(change, "state");
    kind(change.rtype).settles() && state.as_deref() == Some("pending")
}

impl Aws {
    /// Creates a resource whose references are resolved; returns its attributes.
    pub async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> Result<Attributes> {
        let t = Tags {
            environment,
            address,
            revision,
        };
        let token = client_token(environment, address, revision, spec);
        kind(spec.resource_type())
            .create(self, &t, &token, spec)
            .await
    }

    /// Changes what can change in place: tags, a subnet's public-IP mapping, an internet
    /// gateway's VPC, routes and subnet associations, security group rules (permission by
    /// permission), a launch template's data (a new default version), an instance's root volume
    /// size (growing) and instance profile. With `adopt`, first tags the resource as the
    /// environment's.
    pub async fn update(
        &self,
        environment: &str,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> Result<()> {
        let address = change.change.address.as_str();
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        if change.adopt {
            self.client
                .create_tags()
                .resources(id)
                .tags(tag(TAG_ENVIRONMENT, environment))
                .tags(tag(TAG_ADDRESS, address))
                .send()
                .await
                .map_err(call_failed(address, "CreateTags"))?;
        }
        let k = kind(spec.resource_type());
        let u = Update {
            change,
            address,
            id,
            spec,
        };
        let mut extra_tags: Vec<Tag> = Vec::new();
        for field in &change.change.fields {
            if field.path != "tags" {
                k.update_field(self, &u, &field.path, &mut extra_tags)
                    .await?;
                continue;
            }
            let before: std::collections::BTreeMap<String, String> = actual_field(change, "tags");
            // From the resolved spec, not the plan's text: a tag may refer to what this run made.
            let after: std::collections::BTreeMap<String, String> =
                crate::diff::fields(spec, environment, address)
                    .get("tags")
                    .and_then(|t| serde_json::from_value(t.clone()).ok())
                    .unwrap_or_default();
            let gone: Vec<Tag> = before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(|k| Tag::builder().key(k).build())
                .collect();
            if !gone.is_empty() {
                self.client
                    .delete_tags()
                    .resources(id)
                    .set_tags(Some(gone))
                    .send()
                    .await
                    .map_err(call_failed(address, "DeleteTags"))?;
            }
            extra_tags.extend(after.iter().map(|(k, v)| tag(k, v)));
        }
        if spec.resource_type().taggable() {
            extra_tags.push(tag(TAG_REVISION, revision));
            self.client
                .create_tags()
                .resources(id)
                .set_tags(Some(extra_tags))
                .send()
                .await
                .map_err(call_failed(address, "CreateTags"))?;
        }
        Ok(())
    }

    /// Waits for a kept resource that an earlier, interrupted run left on its way to ready (an
    /// instance pending, a NAT gateway pending), so that what depends on it finds it ready.
    pub async fn settle(&self, change: &AwsChange) -> Result<()> {
        let (Some(id), true) = (change.id.as_deref(), needs_settling(change)) else {
            return Ok(());
        };
        let address = change.change.address.as_str();
        kind(change.rtype).settle(self, address, id).await
    }

    /// Deletes an owned resource, after what AWS needs first (detaching, disassociating,
    /// revoking references), waiting where AWS deletes asynchronously, and retrying
    /// `DependencyViolation` for a bounded time.
    pub async fn delete(&self, change: &AwsChange, ctx: &DeleteContext) -> Result<()> {
        let address = change.change.address.as_str();
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        let d = Delete {
            change,
            ctx,
            address,
            id,
            started: Instant::now(),
        };
        let k = kind(change.rtype);
        // Preparations, once.
        k.prepare_delete(self, &d).await?;
        retry_dependency(d.started, || k.delete(self, &d)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envboot_core::plan::{Action, Change};
    use std::collections::BTreeMap;

    #[test]
    fn deletions_follow_the_order_aws_demands() {
        let order: Vec<ResourceType> = {
            let mut all = ResourceType::ALL.to_vec();
            all.sort_by_key(|t| delete_rank(*t));
            all
        };
        let pos = |t: ResourceType| order.iter().position(|o| *o == t).unwrap();
        use ResourceType as T;
        for (first, then) in [
            (T::EipAssociation, T::Eip),
            (T::EipAssociation, T::Instance),
            (T::Instance, T::SecurityGroup),
            (T::Instance, T::Subnet),
            (T::Instance, T::KeyPair),
            (T::RouteTable, T::NatGateway),
            (T::NatGateway, T::Eip),
            (T::NatGateway, T::Subnet),
            (T::Eip, T::InternetGateway),
            (T::InternetGateway, T::Vpc),
            (T::SecurityGroup, T::Vpc),
            (T::Subnet, T::Vpc),
        ] {
            assert!(pos(first) < pos(then), "{first:?} before {then:?}");
        }
    }

    fn kept(rtype: ResourceType, state: &str) -> AwsChange {
        AwsChange {
            change: Change {
                kind: rtype.name().into(),
                address: "m.r".into(),
                action: Action::NoOp,
                fields: Vec::new(),
                reason: None,
            },
            rtype,
            id: Some("x-1".into()),
            desired: None,
            actual: serde_json::json!({"state": state}).as_object().cloned(),
            attributes: BTreeMap::new(),
            revision: None,
            conflict: None,
            adopt: false,
        }
    }

    #[test]
    fn only_pending_nat_gateways_and_instances_are_waited_for() {
        assert!(needs_settling(&kept(ResourceType::NatGateway, "pending")));
        assert!(needs_settling(&kept(ResourceType::Instance, "pending")));
        assert!(!needs_settling(&kept(
            ResourceType::NatGateway,
            "available"
        )));
        assert!(!needs_settling(&kept(ResourceType::Instance, "running")));
        assert!(!needs_settling(&kept(ResourceType::Vpc, "pending")));
    }
}
