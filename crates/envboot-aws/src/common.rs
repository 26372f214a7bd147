//! Helpers every resource type uses: the tags set at creation, reading a Describe answer into a
//! [`Described`], the value of a field as read, and retrying AWS's "still in use" answers.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_ec2::types::{Tag, TagSpecification};
use serde_json::{Map, Value};

use crate::{
    diff, tag, tag_value, AwsChange, Described, Error, Result, DELETE_TIMEOUT, POLL, TAG_ADDRESS,
    TAG_ENVIRONMENT, TAG_REVISION,
};
use envboot_core::model::ResourceType;

/// What a create returns: the attributes other resources may refer to.
pub(crate) type Attributes = BTreeMap<String, String>;

pub(crate) fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn missing(address: &str, call: &'static str, what: &'static str) -> Error {
    Error::MissingInResponse {
        resource: address.to_string(),
        call,
        what,
    }
}

pub(crate) fn base64(s: &str) -> String {
    envboot_core::render::base64(s.as_bytes())
}

pub(crate) fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The value of a field as read (`actual`) of a change.
pub(crate) fn actual_field<T: serde::de::DeserializeOwned + Default>(
    change: &AwsChange,
    field: &str,
) -> T {
    change
        .actual
        .as_ref()
        .and_then(|a| a.get(field))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The tags of a create: environment, address and revision.
pub(crate) struct Tags<'a> {
    pub(crate) environment: &'a str,
    pub(crate) address: &'a str,
    pub(crate) revision: &'a str,
}

impl Tags<'_> {
    /// envboot's tags, `Name`, the user's tags and `extra`, for `TagSpecifications`.
    pub(crate) fn spec(
        &self,
        kind: aws_sdk_ec2::types::ResourceType,
        user: &BTreeMap<String, String>,
        extra: &[(&str, &str)],
    ) -> TagSpecification {
        let mut tags = vec![
            tag(TAG_ENVIRONMENT, self.environment),
            tag(TAG_ADDRESS, self.address),
            tag(TAG_REVISION, self.revision),
        ];
        if !user.contains_key("Name") {
            tags.push(tag(
                "Name",
                &format!("{}-{}", self.environment, self.address),
            ));
        }
        tags.extend(user.iter().map(|(k, v)| tag(k, v)));
        tags.extend(extra.iter().map(|(k, v)| tag(k, v)));
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags))
            .build()
    }
}

/// User tags as fields: everything but envboot's and AWS's own.
fn user_tags(tags: &[Tag]) -> Value {
    let map: Map<String, Value> = tags
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .filter(|(k, _)| !k.starts_with("envboot:") && !k.starts_with("aws:"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(map)
}

/// A resource as read, its fields in the shape of the desired arguments (see `diff::fields`):
/// user tags added, normalized; named by `name` or else its `Name` tag.
pub(crate) fn described(
    rtype: ResourceType,
    id: &str,
    tags: &[Tag],
    name: Option<&str>,
    fields: Value,
    attributes: &[(&str, &str)],
) -> Described {
    let mut fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if rtype.taggable() {
        fields.insert("tags".into(), user_tags(tags));
    }
    diff::normalize(&mut fields);
    Described {
        rtype,
        id: id.to_string(),
        tags: tags.to_vec(),
        name: name
            .map(str::to_string)
            .or_else(|| tag_value(tags, "Name").map(str::to_string)),
        fields,
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Runs `f` until it does not fail with `DependencyViolation` (or AWS's other "still in
/// use" answers), for at most [`DELETE_TIMEOUT`] since `started`.
pub(crate) async fn retry_dependency<F, Fut>(started: Instant, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    loop {
        match f().await {
            Err(e)
                if matches!(
                    e.code(),
                    Some("DependencyViolation" | "InvalidIPAddress.InUse")
                ) && started.elapsed() < DELETE_TIMEOUT =>
            {
                tokio::time::sleep(POLL).await;
            }
            other => return other,
        }
    }
}
