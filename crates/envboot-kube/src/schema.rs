//! The cluster's OpenAPI schema (`GET /openapi/v2`), and the check `helm install` makes with it
//! before it sends anything: a field that the cluster's version of a built-in kind does not
//! declare is refused (`unknown field "hostProcess" in
//! io.k8s.api.core.v1.WindowsSecurityContextOptions`), so that an apply never stops half-way
//! on it. Custom resources are not checked: the API server prunes what their schema lacks.

use std::collections::HashMap;

use serde_json::Value;

use super::{Error, Kube, Result};

/// The definitions of a cluster's OpenAPI v2 document, by name and by kind.
#[derive(Debug, Default)]
pub struct Schema {
    definitions: serde_json::Map<String, Value>,
    /// (group, version, kind) to the definition's name.
    by_kind: HashMap<(String, String, String), String>,
}

/// Whether a definition is one of Kubernetes' own (what `helm install` validates).
fn built_in(definition: &str) -> bool {
    definition.starts_with("io.k8s.")
}

impl Schema {
    /// The schema of an OpenAPI v2 document (its `definitions`, and each one's
    /// `x-kubernetes-group-version-kind`).
    pub fn from_openapi_v2(mut document: Value) -> Schema {
        let definitions = match document.get_mut("definitions").map(Value::take) {
            Some(Value::Object(d)) => d,
            _ => serde_json::Map::new(),
        };
        let mut by_kind = HashMap::new();
        for (name, definition) in &definitions {
            let Some(kinds) = definition["x-kubernetes-group-version-kind"].as_array() else {
                continue;
            };
            for k in kinds {
                let field = |f: &str| k[f].as_str().unwrap_or_default().to_string();
                by_kind.insert(
                    (field("group"), field("version"), field("kind")),
                    name.clone(),
                );
            }
        }
        Schema {
            definitions,
            by_kind,
        }
    }

    /// The fields of `object` that its kind's schema does not declare, as `path (unknown field
    /// "name" in definition)`; none for kinds the schema does not hold or that are not built in.
    pub fn undeclared_fields(&self, object: &Value) -> Vec<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = object["kind"].as_str().unwrap_or_default();
        let mut out = Vec::new();
        if let Some(name) = self
            .by_kind
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .filter(|n| built_in(n))
        {
            let mut path = Vec::new();
            self.check_definition(name, object, &mut path, &mut out, 0);
        }
        out
    }

    fn check_definition(
        &self,
        name: &str,
        value: &Value,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        if let Some(definition) = self.definitions.get(name) {
            self.check(definition, Some(name), value, path, out, depth);
        }
    }

    fn check(
        &self,
        schema: &Value,
        name: Option<&str>,
        value: &Value,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        // schemas nest as deep as objects do; a recursive definition (JSONSchemaProps) is not
        // followed further than any real object goes
        if depth > 64 {
            return;
        }
        if let Some(reference) = schema["$ref"].as_str() {
            if let Some(target) = reference.strip_prefix("#/definitions/") {
                self.check_definition(target, value, path, out, depth + 1);
            }
            return;
        }
        if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
            return;
        }
        match value {
            Value::Object(fields) => {
                if let Some(properties) = schema["properties"].as_object() {
                    for (field, v) in fields {
                        path.push(field.clone());
                        match properties.get(field) {
                            Some(s) => self.check(s, None, v, path, out, depth + 1),
                            None if schema.get("additionalProperties").is_some() => {}
                            None => out.push(format!(
                                "{} (unknown field \"{field}\" in {})",
                                path.join("."),
                                name.unwrap_or("the schema")
                            )),
                        }
                        path.pop();
                    }
                } else if let Some(each) = schema.get("additionalProperties") {
                    for (field, v) in fields {
                        path.push(field.clone());
                        self.check(each, None, v, path, out, depth + 1);
                        path.pop();
                    }
                }
            }
            Value::Array(items) => {
                if let Some(each) = schema.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        let last = path.pop().unwrap_or_default();
                        path.push(format!("{last}[{i}]"));
                        self.check(each, None, v, path, out, depth + 1);
                        path.pop();
                        path.push(last);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Kube {
    /// The cluster's OpenAPI schema, read once per client (`GET /openapi/v2`).
    pub async fn schema(&self) -> Result<std::sync::Arc<Schema>> {
        self.schema
            .get_or_try_init(|| async {
                let request = http::Request::get("/openapi/v2")
                    .header("Accept", "application/json")
                    .body(Vec::new())
                    .map_err(|e| Error::CallFailed {
                        object: "the cluster's OpenAPI schema".into(),
                        call: "GET /openapi/v2",
                        source: kube::Error::HttpError(e),
                    })?;
                let document: Value =
                    self.client
                        .request(request)
                        .await
                        .map_err(|source| Error::CallFailed {
                            object: "the cluster's OpenAPI schema".into(),
                            call: "GET /openapi/v2",
                            source,
                        })?;
                Ok(std::sync::Arc::new(Schema::from_openapi_v2(document)))
            })
            .await
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_openapi_v2(json!({"definitions": {
            "io.k8s.api.core.v1.Pod": {
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}],
                "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}
                }
            },
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
                "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
            },
            "io.k8s.api.core.v1.PodSpec": {
                "properties": {"containers": {"type": "array", "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}}}
            },
            "io.k8s.api.core.v1.Container": {
                "properties": {"name": {"type": "string"}, "resources": {"type": "object", "additionalProperties": {}}}
            },
            "com.example.v1.Widget": {
                "x-kubernetes-group-version-kind": [{"group": "example.com", "version": "v1", "kind": "Widget"}],
                "properties": {"spec": {"type": "object"}}
            }
        }}))
    }

    #[test]
    fn fields_a_built_in_kind_does_not_declare_are_named_with_their_path() {
        let s = schema();
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "colour": "red"},
            "spec": {"containers": [{"name": "c", "resources": {"x": 1}}, {"name": "d", "hostProcess": true}]}});
        assert_eq!(
            s.undeclared_fields(&pod),
            vec![
                "metadata.colour (unknown field \"colour\" in io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta)",
                "spec.containers[1].hostProcess (unknown field \"hostProcess\" in io.k8s.api.core.v1.Container)",
            ]
        );
        let fine = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(s.undeclared_fields(&fine).is_empty());
        // custom resources and kinds the schema does not hold are the server's to prune
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "extra": 1});
        assert!(s.undeclared_fields(&widget).is_empty());
        let other = json!({"apiVersion": "v2", "kind": "Pod", "extra": 1});
        assert!(s.undeclared_fields(&other).is_empty());
    }
}
