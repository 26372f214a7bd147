//! `aws_instance`: an EC2 instance.
//!
//! `DescribeInstances` returns neither the user data nor the declared root volume size, so the
//! tags `envboot:user-data` (its hash) and `envboot:root-volume-size` hold them.
//! - Read: `DescribeInstances`, only those pending, running, stopping or stopped.
//! - Create: with a root volume size, `DescribeImages` for the AMI's root device name; then
//!   `RunInstances` with a `ClientToken`, and waiting until it runs (its public IP is the one
//!   the wait's last `DescribeInstances` saw).
//! - Update in place: growing the root volume (`ModifyVolume`), the security groups
//!   (`ModifyInstanceAttribute`), the instance profile. The AMI, type, subnet, user data and
//!   key pair force a new instance; so does a smaller root volume (volumes do not shrink).
//! - Delete: after Elastic IP associations, before everything it uses:
//!   `TerminateInstances`, then waiting until it is terminated.
//! - Settle: a kept instance found pending is waited for until it runs.

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, IamInstanceProfileSpecification, InstanceStateName,
    Tag,
};
use serde_json::{json, Map, Value};

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{attrs, base64, described, missing, non_empty, Attributes, Tags};
use crate::diff::{self, UNHASHED};
use crate::{
    call_failed, filter, tag, tag_value, tolerate, Aws, Described, Error, Result, DELETE_TIMEOUT,
    READY_TIMEOUT, TAG_ROOT_VOLUME_SIZE, TAG_USER_DATA,
};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct Instance;

impl ResourceKind for Instance {
    fn delete_rank(&self) -> u8 {
        1
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["ami", "instance_type", "subnet_id", "user_data", "key_name"]
    }

    fn forces_replacement(&self, field: &str, before: Option<&Value>, after: &Value) -> bool {
        if self.forces_new().contains(&field) {
            return true;
        }
        // A volume grows in place but cannot shrink.
        field == "root_volume_size"
            && matches!((before.and_then(Value::as_i64), after.as_i64()), (Some(b), Some(a)) if a < b)
    }

    fn fields(
        &self,
        spec: &ResourceSpec,
        _environment: &str,
        _address: &str,
        map: &mut Map<String, Value>,
    ) {
        let ResourceSpec::Instance(i) = spec else {
            return;
        };
        // Compared by hash; user-data that refers to other resources (a k3s agent names its
        // server's IP) is hashed once the references are resolved (`diff::normalize`).
        let user_data = match i.user_data.as_deref() {
            None => Value::Null,
            Some(u) if u.contains("${") => json!({ UNHASHED: u }),
            Some(u) => Value::String(diff::short_hash(u)),
        };
        map.insert("user_data".into(), user_data);
        if i.root_volume_size.is_none() {
            // The AMI's size: nothing to compare.
            map.remove("root_volume_size");
        }
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
                .describe_instances()
                .set_filters(Some(filters))
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
                        ResourceType::Instance,
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
        let ResourceSpec::Instance(i) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        Box::pin(run(aws, t, token, i))
    }

    fn update_field<'a>(
        &'a self,
        aws: &'a Aws,
        u: &'a Update<'a>,
        field: &'a str,
        extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        let ResourceSpec::Instance(i) = u.spec else {
            return done(());
        };
        let (address, id) = (u.address, u.id);
        match field {
            "root_volume_size" => Box::pin(async move {
                if let Some(size) = i.root_volume_size {
                    grow_root_volume(aws, address, id, size).await?;
                    extra_tags.push(tag(TAG_ROOT_VOLUME_SIZE, &size.to_string()));
                }
                Ok(())
            }),
            "vpc_security_group_ids" => Box::pin(async move {
                aws.client
                    .modify_instance_attribute()
                    .instance_id(id)
                    .set_groups(Some(i.vpc_security_group_ids.clone()))
                    .send()
                    .await
                    .map_err(call_failed(address, "ModifyInstanceAttribute"))?;
                Ok(())
            }),
            "iam_instance_profile" => Box::pin(set_instance_profile(
                aws,
                address,
                id,
                i.iam_instance_profile.as_deref(),
            )),
            _ => done(()),
        }
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            aws.client
                .terminate_instances()
                .instance_ids(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "TerminateInstances"))?;
            let result = wait(aws, d.address, d.id, InstanceStateName::Terminated)
                .await
                .map(|_| ());
            tolerate(result, &[])
        })
    }

    fn settles(&self) -> bool {
        true
    }

    fn settle<'a>(&'a self, aws: &'a Aws, address: &'a str, id: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            wait(aws, address, id, InstanceStateName::Running)
                .await
                .map(|_| ())
        })
    }
}

async fn run(
    aws: &Aws,
    t: &Tags<'_>,
    token: &str,
    i: &envboot_core::model::spec::Instance,
) -> Result<Attributes> {
    use aws_sdk_ec2::types::ResourceType as Rt;
    let address = t.address;
    let user_data_hash = i.user_data.as_deref().map(diff::short_hash);
    let size = i.root_volume_size.map(|s| s.to_string());
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(h) = &user_data_hash {
        extra.push((TAG_USER_DATA, h));
    }
    if let Some(s) = &size {
        extra.push((TAG_ROOT_VOLUME_SIZE, s));
    }
    let mapping = match i.root_volume_size {
        None => None,
        Some(size) => {
            let images = aws
                .client
                .describe_images()
                .image_ids(&i.ami)
                .send()
                .await
                .map_err(call_failed(address, "DescribeImages"))?;
            let device = images
                .images()
                .first()
                .and_then(|im| im.root_device_name())
                .unwrap_or("/dev/xvda")
                .to_string();
            Some(
                BlockDeviceMapping::builder()
                    .device_name(device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(size)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
        }
    };
    let out = aws
        .client
        .run_instances()
        .image_id(&i.ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(
            i.instance_type.as_str(),
        ))
        .subnet_id(&i.subnet_id)
        .set_security_group_ids(Some(i.vpc_security_group_ids.clone()))
        .set_user_data(i.user_data.as_deref().map(base64))
        .set_key_name(i.key_name.clone())
        .set_iam_instance_profile(
            i.iam_instance_profile
                .as_ref()
                .map(|n| IamInstanceProfileSpecification::builder().name(n).build()),
        )
        .set_block_device_mappings(mapping.map(|m| vec![m]))
        .min_count(1)
        .max_count(1)
        .client_token(token)
        .tag_specifications(t.spec(Rt::Instance, &i.tags, &extra))
        .send()
        .await
        .map_err(call_failed(address, "RunInstances"))?;
    let instance = out
        .instances()
        .first()
        .ok_or_else(|| missing(address, "RunInstances", "instance"))?;
    let id = instance
        .instance_id()
        .ok_or_else(|| missing(address, "RunInstances", "InstanceId"))?;
    let public_ip = wait(aws, address, id, InstanceStateName::Running).await?;
    Ok(attrs(&[
        ("id", id),
        (
            "private_ip",
            instance.private_ip_address().unwrap_or_default(),
        ),
        ("public_ip", &public_ip),
    ]))
}

/// Waits until the instance reaches `goal`; returns the public IP the last look saw (it is
/// assigned on the way to running, after RunInstances answered), empty without one.
async fn wait(aws: &Aws, address: &str, id: &str, goal: InstanceStateName) -> Result<String> {
    let (label, timeout) = match goal {
        InstanceStateName::Terminated => ("terminate", DELETE_TIMEOUT),
        _ => ("run", READY_TIMEOUT),
    };
    let public_ip = std::sync::Mutex::new(String::new());
    aws.wait_for(address, id, label, timeout, || async {
        let out = aws
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(call_failed(address, "DescribeInstances"));
        let out = match out {
            // Eventual consistency: a new instance may not be visible yet.
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {
                return Ok((
                    goal == InstanceStateName::Terminated,
                    "not found".to_string(),
                ))
            }
            other => other?,
        };
        let instance = out.reservations().iter().flat_map(|r| r.instances()).next();
        if let (Some(ip), Ok(mut seen)) = (
            instance.and_then(|i| i.public_ip_address()),
            public_ip.lock(),
        ) {
            *seen = ip.to_string();
        }
        let state = instance.and_then(|i| i.state().and_then(|s| s.name()).cloned());
        match state {
            None => Ok((goal == InstanceStateName::Terminated, "gone".to_string())),
            Some(s) if s == goal => Ok((true, s.as_str().to_string())),
            Some(s)
                if goal == InstanceStateName::Running
                    && matches!(
                        s,
                        InstanceStateName::Terminated | InstanceStateName::ShuttingDown
                    ) =>
            {
                Err(Error::Failed {
                    resource: address.to_string(),
                    id: id.to_string(),
                    state: s.as_str().to_string(),
                    goal: "running",
                    reason: String::new(),
                })
            }
            Some(s) => Ok((false, s.as_str().to_string())),
        }
    })
    .await?;
    Ok(public_ip.into_inner().unwrap_or_default())
}

/// The root volume of an instance.
fn root_volume(instance: &aws_sdk_ec2::types::Instance) -> Option<String> {
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

async fn grow_root_volume(aws: &Aws, address: &str, id: &str, size: i32) -> Result<()> {
    let out = aws
        .client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(call_failed(address, "DescribeInstances"))?;
    let volume = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(root_volume)
        .ok_or_else(|| missing(address, "DescribeInstances", "root volume"))?;
    aws.client
        .modify_volume()
        .volume_id(volume)
        .size(size)
        .send()
        .await
        .map_err(call_failed(address, "ModifyVolume"))?;
    Ok(())
}

async fn set_instance_profile(
    aws: &Aws,
    address: &str,
    id: &str,
    name: Option<&str>,
) -> Result<()> {
    let out = aws
        .client
        .describe_iam_instance_profile_associations()
        .filters(filter("instance-id", &[id]))
        .filters(filter("state", &["associating", "associated"]))
        .send()
        .await
        .map_err(call_failed(
            address,
            "DescribeIamInstanceProfileAssociations",
        ))?;
    let current = out
        .iam_instance_profile_associations()
        .iter()
        .find_map(|a| a.association_id());
    let profile = |n: &str| IamInstanceProfileSpecification::builder().name(n).build();
    match (current, name) {
        (Some(a), Some(n)) => {
            aws.client
                .replace_iam_instance_profile_association()
                .association_id(a)
                .iam_instance_profile(profile(n))
                .send()
                .await
                .map_err(call_failed(address, "ReplaceIamInstanceProfileAssociation"))?;
        }
        (Some(a), None) => {
            aws.client
                .disassociate_iam_instance_profile()
                .association_id(a)
                .send()
                .await
                .map_err(call_failed(address, "DisassociateIamInstanceProfile"))?;
        }
        (None, Some(n)) => {
            aws.client
                .associate_iam_instance_profile()
                .instance_id(id)
                .iam_instance_profile(profile(n))
                .send()
                .await
                .map_err(call_failed(address, "AssociateIamInstanceProfile"))?;
        }
        (None, None) => {}
    }
    Ok(())
}
