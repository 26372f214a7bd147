//! `aws_launch_template`: a launch template (its default version is what instances get).
//!
//! AWS does not return the data in `DescribeLaunchTemplates`, so the tag `envboot:data` holds
//! the hash of the default version's data ([`launch_template_hash`]).
//! - Read: `DescribeLaunchTemplates`; named by its template name.
//! - Create: `CreateLaunchTemplate` with a `ClientToken`.
//! - Update in place: the data, as a new version (`CreateLaunchTemplateVersion`) made the
//!   default (`ModifyLaunchTemplate`). The name forces a new template.
//! - Delete: after instances: `DeleteLaunchTemplate` (all its versions).

use aws_sdk_ec2::types::{
    Filter, LaunchTemplateBlockDeviceMappingRequest, RequestLaunchTemplateData, Tag,
};
use serde_json::{json, Map, Value};

use super::{done, Delete, Fut, ResourceKind, Update};
use crate::common::{attrs, base64, described, missing, Attributes, Tags};
use crate::{call_failed, diff, tag, tag_value, tolerate, Aws, Described, TAG_DATA};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct LaunchTemplate;

/// The data of a launch template, as hashed into its `envboot:data` tag.
pub fn launch_template_data(t: &envboot_core::model::spec::LaunchTemplate) -> Value {
    let mut groups = t.vpc_security_group_ids.clone();
    groups.sort();
    json!({
        "image_id": t.image_id,
        "instance_type": t.instance_type,
        "key_name": t.key_name,
        "vpc_security_group_ids": groups,
        "user_data": t.user_data.as_deref().map(diff::short_hash),
    })
}

/// The `envboot:data` tag of a launch template whose references are resolved: the hash that
/// [`diff::fields`] compares once resolved.
pub fn launch_template_hash(t: &envboot_core::model::spec::LaunchTemplate) -> String {
    let mut fields = Map::new();
    fields.insert("data".into(), launch_template_data(t));
    diff::normalize(&mut fields);
    match fields.remove("data") {
        Some(Value::String(h)) => h,
        _ => String::new(),
    }
}

/// The request data of a launch template.
fn template_data(t: &envboot_core::model::spec::LaunchTemplate) -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .set_image_id(t.image_id.clone())
        .set_instance_type(
            t.instance_type
                .as_deref()
                .map(aws_sdk_ec2::types::InstanceType::from),
        )
        .set_key_name(t.key_name.clone())
        .set_security_group_ids(
            (!t.vpc_security_group_ids.is_empty()).then(|| t.vpc_security_group_ids.clone()),
        )
        .set_user_data(t.user_data.as_deref().map(base64))
        .set_block_device_mappings(None::<Vec<LaunchTemplateBlockDeviceMappingRequest>>)
        .build()
}

impl ResourceKind for LaunchTemplate {
    fn delete_rank(&self) -> u8 {
        2
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["name"]
    }

    fn given_name(&self, spec: &ResourceSpec) -> Option<String> {
        match spec {
            ResourceSpec::LaunchTemplate(t) => t.name.clone(),
            _ => None,
        }
    }

    fn fields(
        &self,
        spec: &ResourceSpec,
        environment: &str,
        address: &str,
        map: &mut Map<String, Value>,
    ) {
        let ResourceSpec::LaunchTemplate(t) = spec else {
            return;
        };
        for k in [
            "image_id",
            "instance_type",
            "key_name",
            "vpc_security_group_ids",
            "user_data",
        ] {
            map.remove(k);
        }
        map.insert(
            "name".into(),
            json!(diff::aws_name(spec, environment, address)),
        );
        map.insert("data".into(), launch_template_data(t));
    }

    fn name_filter(&self) -> &'static str {
        "launch-template-name"
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
                .describe_launch_templates()
                .set_filters(Some(filters))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(call_failed(scope, "DescribeLaunchTemplates"))?;
                for t in page.launch_templates() {
                    let (Some(id), Some(name)) = (t.launch_template_id(), t.launch_template_name())
                    else {
                        continue;
                    };
                    out.push(described(
                        ResourceType::LaunchTemplate,
                        id,
                        t.tags(),
                        Some(name),
                        json!({
                            "name": name,
                            "data": tag_value(t.tags(), TAG_DATA),
                        }),
                        &[("id", id), ("name", name)],
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
        let ResourceSpec::LaunchTemplate(lt) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        let address = t.address;
        Box::pin(async move {
            let name = diff::aws_name(spec, t.environment, address);
            let hash = launch_template_hash(lt);
            let out = aws
                .client
                .create_launch_template()
                .launch_template_name(&name)
                .client_token(token)
                .launch_template_data(template_data(lt))
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::LaunchTemplate,
                    &lt.tags,
                    &[(TAG_DATA, &hash)],
                ))
                .send()
                .await
                .map_err(call_failed(address, "CreateLaunchTemplate"))?;
            let id = out
                .launch_template()
                .and_then(|l| l.launch_template_id())
                .ok_or_else(|| missing(address, "CreateLaunchTemplate", "LaunchTemplateId"))?;
            Ok(attrs(&[("id", id), ("name", &name)]))
        })
    }

    fn update_field<'a>(
        &'a self,
        aws: &'a Aws,
        u: &'a Update<'a>,
        field: &'a str,
        extra_tags: &'a mut Vec<Tag>,
    ) -> Fut<'a, ()> {
        let ("data", ResourceSpec::LaunchTemplate(t)) = (field, u.spec) else {
            return done(());
        };
        let (address, id) = (u.address, u.id);
        Box::pin(async move {
            let out = aws
                .client
                .create_launch_template_version()
                .launch_template_id(id)
                .launch_template_data(template_data(t))
                .send()
                .await
                .map_err(call_failed(address, "CreateLaunchTemplateVersion"))?;
            let version = out
                .launch_template_version()
                .and_then(|v| v.version_number())
                .ok_or_else(|| missing(address, "CreateLaunchTemplateVersion", "VersionNumber"))?;
            aws.client
                .modify_launch_template()
                .launch_template_id(id)
                .default_version(version.to_string())
                .send()
                .await
                .map_err(call_failed(address, "ModifyLaunchTemplate"))?;
            extra_tags.push(tag(TAG_DATA, &launch_template_hash(t)));
            Ok(())
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let result = aws
                .client
                .delete_launch_template()
                .launch_template_id(d.id)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteLaunchTemplate"));
            tolerate(result, &[])
        })
    }
}
