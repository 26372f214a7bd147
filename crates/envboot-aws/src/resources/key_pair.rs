//! `aws_key_pair`: an imported SSH public key.
//!
//! AWS does not return the public key, so the tag `envboot:public-key` holds its hash.
//! - Read: `DescribeKeyPairs` (not paginated: one call returns every match); named by its key
//!   name.
//! - Create: `ImportKeyPair`.
//! - Update in place: tags only; the key name and the key force a new key pair.
//! - Delete: after instances: `DeleteKeyPair`, by name when the name is known, else by id.

use aws_sdk_ec2::types::Filter;
use serde_json::{json, Map, Value};

use super::{Delete, Fut, ResourceKind};
use crate::common::{attrs, described, missing, Attributes, Tags};
use crate::{call_failed, diff, tag_value, tolerate, Aws, Described, TAG_PUBLIC_KEY};
use envboot_core::model::{ResourceSpec, ResourceType};

pub(crate) struct KeyPair;

impl ResourceKind for KeyPair {
    fn delete_rank(&self) -> u8 {
        2
    }

    fn forces_new(&self) -> &'static [&'static str] {
        &["key_name", "public_key"]
    }

    fn given_name(&self, spec: &ResourceSpec) -> Option<String> {
        match spec {
            ResourceSpec::KeyPair(k) => k.key_name.clone(),
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
        let ResourceSpec::KeyPair(k) = spec else {
            return;
        };
        map.remove("public_key_file");
        map.insert(
            "key_name".into(),
            json!(diff::aws_name(spec, environment, address)),
        );
        map.insert(
            "public_key".into(),
            json!(k.public_key.as_deref().map(|p| diff::short_hash(p.trim()))),
        );
    }

    fn name_filter(&self) -> &'static str {
        "key-name"
    }

    fn describe<'a>(
        &'a self,
        aws: &'a Aws,
        filters: Vec<Filter>,
        scope: &'a str,
    ) -> Fut<'a, Vec<Described>> {
        Box::pin(async move {
            let mut out = Vec::new();
            // DescribeKeyPairs is not paginated: one call returns every match.
            let page = aws
                .client
                .describe_key_pairs()
                .set_filters(Some(filters))
                .send()
                .await
                .map_err(call_failed(scope, "DescribeKeyPairs"))?;
            for k in page.key_pairs() {
                let (Some(id), Some(name)) = (k.key_pair_id(), k.key_name()) else {
                    continue;
                };
                out.push(described(
                    ResourceType::KeyPair,
                    id,
                    k.tags(),
                    Some(name),
                    json!({
                        "key_name": name,
                        "public_key": tag_value(k.tags(), TAG_PUBLIC_KEY),
                    }),
                    &[("id", id), ("key_name", name)],
                ));
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
        let ResourceSpec::KeyPair(k) = spec else {
            return Box::pin(async move {
                Err(crate::Error::WrongSpec {
                    resource: t.address.to_string(),
                })
            });
        };
        let address = t.address;
        Box::pin(async move {
            let key = k.public_key.as_deref().unwrap_or_default().trim();
            let hash = diff::short_hash(key);
            let name = diff::aws_name(spec, t.environment, address);
            let out = aws
                .client
                .import_key_pair()
                .key_name(&name)
                .public_key_material(aws_smithy_types::Blob::new(key.as_bytes()))
                .tag_specifications(t.spec(
                    aws_sdk_ec2::types::ResourceType::KeyPair,
                    &k.tags,
                    &[(TAG_PUBLIC_KEY, &hash)],
                ))
                .send()
                .await
                .map_err(call_failed(address, "ImportKeyPair"))?;
            let id = out
                .key_pair_id()
                .ok_or_else(|| missing(address, "ImportKeyPair", "KeyPairId"))?;
            Ok(attrs(&[("id", id), ("key_name", &name)]))
        })
    }

    fn delete<'a>(&'a self, aws: &'a Aws, d: &'a Delete<'a>) -> Fut<'a, ()> {
        Box::pin(async move {
            let attributes = &d.change.attributes;
            let result = aws
                .client
                .delete_key_pair()
                .set_key_name(attributes.get("key_name").cloned())
                .set_key_pair_id((!attributes.contains_key("key_name")).then(|| d.id.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(d.address, "DeleteKeyPair"));
            tolerate(result, &[])
        })
    }
}
