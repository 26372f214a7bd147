//! Folders of plain Kubernetes manifests: every `.yaml`, `.yml` and `.json` file below the
//! folder (in path order), each document an object read as kubectl reads it
//! (sigs.k8s.io/yaml). Secrets in plain text are refused: they belong under `secrets:`,
//! encrypted.

use super::*;

impl Loader<'_> {
    pub(super) fn manifests(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<ManifestSet> {
        let mut out = Vec::new();
        for (i, spec) in env.manifests.iter().enumerate() {
            let at = idx("manifests", i);
            self.check_namespace(file, &at, &spec.namespace);
            let Some(dir) = join(env_dir, &spec.path) else {
                self.report(file.at(
                    &key(&at, "path"),
                    format!("folder `{}` points outside the repository", spec.path),
                ));
                continue;
            };
            let files: Vec<(String, &[u8])> = self
                .snapshot
                .files_under(&dir)
                .filter(|(rel, _)| [".yaml", ".yml", ".json"].iter().any(|x| rel.ends_with(x)))
                .map(|(rel, bytes)| (format!("{dir}/{rel}"), bytes))
                .collect();
            if files.is_empty() {
                self.report(file.at(
                    &key(&at, "path"),
                    format!(
                        "no manifests under {dir} in the commit (expected .yaml, .yml or .json files; the folder must be under environments/ or modules/)"
                    ),
                ));
                continue;
            }
            let mut objects = Vec::new();
            for (path, bytes) in files {
                let name = path.rsplit('/').next().unwrap_or_default();
                if matches!(
                    name,
                    "kustomization.yaml" | "kustomization.yml" | "Kustomization"
                ) {
                    self.report(Diagnostic {
                        file: path.clone(),
                        line: 1,
                        column: 1,
                        message: "a kustomization: envboot applies plain manifests and does not run kustomize; render it into plain files, or use a chart".into(),
                    });
                    continue;
                }
                let Ok(text) = utf8(&path, bytes).map_err(|d| self.report(d)) else {
                    continue;
                };
                for (line, doc) in crate::render::split_documents(text) {
                    match self.manifest_object(&path, line, doc) {
                        Some(Value::Null) | None => {}
                        // a `List` (what `kubectl get -o yaml` writes) holds its objects
                        Some(Value::Object(mut list))
                            if list.get("kind").and_then(Value::as_str) == Some("List") =>
                        {
                            let items = match list.remove("items") {
                                Some(Value::Array(items)) => items,
                                _ => Vec::new(),
                            };
                            for item in items {
                                if let Some(object) = self.checked_object(&path, line, item) {
                                    objects.push((format!("{path}:{line}"), object));
                                }
                            }
                        }
                        Some(object) => objects.push((format!("{path}:{line}"), object)),
                    }
                }
            }
            out.push(ManifestSet {
                path: dir,
                namespace: spec.namespace.clone(),
                objects,
            });
        }
        out
    }

    /// One document as an object (`Null` for an empty one), or `None` where it is reported.
    fn manifest_object(&mut self, path: &str, line: usize, doc: &str) -> Option<Value> {
        let at = |line: usize, message: String| Diagnostic {
            file: path.to_string(),
            line,
            column: 1,
            message,
        };
        let object = match envboot_helm::manifest::to_json_at(doc) {
            Ok(v) => v,
            Err((l, message)) => {
                self.report(at(line + l, message));
                return None;
            }
        };
        if object.is_null() || object["kind"] == "List" {
            return Some(object);
        }
        self.checked_object(path, line, object)
    }

    /// An object has what the API server needs to name it, and is no plain-text Secret.
    fn checked_object(&mut self, path: &str, line: usize, object: Value) -> Option<Value> {
        let at = |line: usize, message: String| Diagnostic {
            file: path.to_string(),
            line,
            column: 1,
            message,
        };
        for (field, present) in [
            ("apiVersion", object["apiVersion"].is_string()),
            ("kind", object["kind"].is_string()),
            ("metadata.name", object["metadata"]["name"].is_string()),
        ] {
            if !present {
                self.report(at(line, format!("the object has no {field}")));
                return None;
            }
        }
        if object["kind"] == "Secret" && object["apiVersion"] == "v1" {
            self.report(at(
                line,
                "a Secret in plain text in Git: declare it under `secrets:`, encrypted with `envboot secret encrypt`".into(),
            ));
            return None;
        }
        Some(object)
    }
}
