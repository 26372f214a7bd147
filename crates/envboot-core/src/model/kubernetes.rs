//! The Kubernetes side of an environment: releases and their charts, ConfigMaps, Secrets,
//! object names, and references across the two layers.

use super::*;

impl Loader<'_> {
    pub(super) fn releases(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<Release> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.releases.iter().enumerate() {
            let at = idx("releases", i);
            if !is_dns_label(&spec.name) {
                self.report(file.at(
                    &key(&at, "name"),
                    format!(
                        "invalid release name `{}`: expected a DNS label (a-z, 0-9, `-`)",
                        spec.name
                    ),
                ));
            }
            if !seen.insert(spec.name.clone()) {
                self.report(file.at(
                    &key(&at, "name"),
                    format!("duplicate release name `{}`", spec.name),
                ));
            }
            self.check_namespace(file, &at, &spec.namespace);
            let Some(chart) = self.chart(&spec.chart, file, &key(&at, "chart")) else {
                continue;
            };
            let mut values_sources = Vec::new();
            for (v, rel) in spec.values_files.iter().enumerate() {
                let vat = idx(&key(&at, "valuesFiles"), v);
                let Some(path) = join(env_dir, rel) else {
                    self.report(file.at(
                        &vat,
                        format!("values file `{rel}` points outside the repository"),
                    ));
                    continue;
                };
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &vat,
                        format!("values file `{rel}` not found: expected {path} in the commit"),
                    ));
                    continue;
                };
                let Ok(text) = utf8(&path, bytes).map_err(|d| self.report(d)) else {
                    continue;
                };
                // checked here (the chart merges it at render, as Helm does)
                if self.check_values_file(&path, text, "a values file") {
                    values_sources.push((path.clone(), text.to_string()));
                }
            }
            let mut inline = Value::Object(spec.values.clone());
            let secret_names: Vec<String> = env.secrets.iter().map(|s| s.name.clone()).collect();
            self.cross_layer(&mut inline, file, &key(&at, "values"), Some(&secret_names));
            if !spec.values.is_empty() {
                let name = format!("{} (values of release {})", file.path, spec.name);
                values_sources.push((name, serde_yaml_ng::to_string(&inline).unwrap_or_default()));
            }
            let timeout = spec.timeout.as_deref().and_then(|t| {
                parse_duration(t)
                    .map_err(|e| self.report(file.at(&key(&at, "timeout"), e)))
                    .ok()
            });
            out.push(Release {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                chart,
                values_sources,
                inline_values: inline,
                depends_on: spec.depends_on.clone(),
                timeout,
            });
        }
        self.check_release_order(env, file);
        out
    }

    /// `dependsOn` names declared releases, and never in a circle.
    pub(super) fn check_release_order(&mut self, env: &EnvironmentFile, file: &SourceFile) {
        let index: BTreeMap<&str, usize> = env
            .releases
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, spec) in env.releases.iter().enumerate() {
            let entry = deps.entry(i).or_default();
            for (j, name) in spec.depends_on.iter().enumerate() {
                let at = idx(&key(&idx("releases", i), "dependsOn"), j);
                match index.get(name.as_str()) {
                    Some(&d) if d == i => {
                        self.report(file.at(&at, format!("release `{name}` cannot depend on itself")))
                    }
                    Some(&d) => {
                        entry.insert(d);
                    }
                    None => self.report(file.at(
                        &at,
                        format!("`dependsOn` names release `{name}`, which is not declared under `releases`"),
                    )),
                }
            }
        }
        if let Err(cycle) = topo_sort(&deps) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| env.releases[i].name.as_str())
                .collect();
            let first = cycle.first().copied().unwrap_or(0);
            self.report(file.at(
                &key(&idx("releases", first), "dependsOn"),
                format!(
                    "releases depend on each other in a circle: {}",
                    names.join(" -> ")
                ),
            ));
        }
    }

    pub(super) fn config_maps(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<ConfigMap> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.config_maps.iter().enumerate() {
            let at = idx("configMaps", i);
            self.check_object_names(
                "ConfigMap",
                file,
                &at,
                &spec.name,
                &spec.namespace,
                &mut seen,
            );
            let mut data = BTreeMap::new();
            for (k, v) in &spec.data {
                if !valid_key(k) {
                    self.report(file.at(
                        &key(&key(&at, "data"), k),
                        format!("`{k}` is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`; at most 253 characters)"),
                    ));
                }
                let mut value = Value::String(v.clone());
                self.cross_layer(&mut value, file, &key(&key(&at, "data"), k), None);
                data.insert(k.clone(), refs::display(&value));
            }
            let mut cm = ConfigMap {
                name: spec.name.clone(),
                declared_name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                data,
                binary_data: BTreeMap::new(),
            };
            for (f, entry) in spec.files.iter().enumerate() {
                let fat = idx(&key(&at, "files"), f);
                let Some(path) = join(env_dir, &entry.path) else {
                    self.report(file.at(
                        &key(&fat, "path"),
                        format!("file `{}` points outside the repository", entry.path),
                    ));
                    continue;
                };
                let key_name = entry
                    .key
                    .clone()
                    .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_string());
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &key(&fat, "path"),
                        format!(
                            "file `{}` not found: expected {path} in the commit",
                            entry.path
                        ),
                    ));
                    continue;
                };
                if cm.data.contains_key(&key_name) || cm.binary_data.contains_key(&key_name) {
                    self.report(file.at(
                        &fat,
                        format!("duplicate key `{key_name}` in ConfigMap `{}`", spec.name),
                    ));
                    continue;
                }
                insert_file(&mut cm, key_name, bytes);
            }
            for (f, folder) in spec.folders.iter().enumerate() {
                let fat = idx(&key(&at, "folders"), f);
                let Some(dir) = join(env_dir, folder) else {
                    self.report(file.at(
                        &fat,
                        format!("folder `{folder}` points outside the repository"),
                    ));
                    continue;
                };
                // Like `kubectl create configmap --from-file=DIR`: the files directly in it.
                let files: Vec<(&str, &[u8])> = self
                    .snapshot
                    .files_under(&dir)
                    .filter(|(rel, _)| !rel.contains('/'))
                    .collect();
                if files.is_empty() {
                    self.report(file.at(
                        &fat,
                        format!("folder `{folder}` not found or empty: expected files in {dir}/ in the commit"),
                    ));
                    continue;
                }
                for (rel, bytes) in files {
                    if !valid_key(rel) {
                        self.report(file.at(&fat, format!("file name `{rel}` in {dir}/ is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`)")));
                    } else if cm.data.contains_key(rel) || cm.binary_data.contains_key(rel) {
                        self.report(file.at(
                            &fat,
                            format!("duplicate key `{rel}` in ConfigMap `{}`", spec.name),
                        ));
                    } else {
                        insert_file(&mut cm, rel.to_string(), bytes);
                    }
                }
            }
            for (f, env_file) in spec.env_files.iter().enumerate() {
                let fat = idx(&key(&at, "envFiles"), f);
                let Some(path) = join(env_dir, env_file) else {
                    self.report(file.at(
                        &fat,
                        format!("env file `{env_file}` points outside the repository"),
                    ));
                    continue;
                };
                let Some(bytes) = self.snapshot.file(&path) else {
                    self.report(file.at(
                        &fat,
                        format!("env file `{env_file}` not found: expected {path} in the commit"),
                    ));
                    continue;
                };
                match parse_env_file(&path, bytes) {
                    Ok(entries) => {
                        for (line, k, v) in entries {
                            if cm.data.contains_key(&k) || cm.binary_data.contains_key(&k) {
                                self.report(crate::diag::Diagnostic {
                                    file: path.clone(),
                                    line,
                                    column: 1,
                                    message: format!(
                                        "duplicate key `{k}` in ConfigMap `{}`",
                                        spec.name
                                    ),
                                });
                            } else {
                                cm.data.insert(k, v);
                            }
                        }
                    }
                    Err(d) => self.report(d),
                }
            }
            if spec.hash_suffix {
                cm.name = format!("{}-{}", spec.name, content_hash(&cm));
            }
            out.push(cm);
        }
        out
    }

    /// A values file (a release's, or a chart's `values.yaml`) reads as Helm reads it; where it
    /// does not, that is reported at its line. `what` names it for the user.
    pub(super) fn check_values_file(&mut self, path: &str, text: &str, what: &str) -> bool {
        let Err(e) = envboot_helm::load_values(text) else {
            return true;
        };
        let message = if e.not_a_map {
            format!("{what} must be a map of values (Helm: {})", e.message)
        } else {
            format!("invalid YAML: {}", e.message)
        };
        self.report(Diagnostic {
            file: path.to_string(),
            line: e.line.max(1),
            column: 1,
            message,
        });
        false
    }
}

impl Loader<'_> {
    /// A namespaced object's name (DNS subdomain), namespace (DNS label) and uniqueness, for
    /// ConfigMaps and Secrets declared in the environment.
    pub(super) fn check_object_names(
        &mut self,
        kind: &str,
        file: &SourceFile,
        at: &str,
        name: &str,
        namespace: &str,
        seen: &mut BTreeSet<(String, String)>,
    ) {
        if !is_dns_subdomain(name) {
            self.report(file.at(
                &key(at, "name"),
                format!(
                    "invalid {kind} name `{name}`: expected a DNS subdomain (a-z, 0-9, `-`, `.`)"
                ),
            ));
        }
        self.check_namespace(file, at, namespace);
        if !seen.insert((namespace.to_string(), name.to_string())) {
            self.report(file.at(
                &key(at, "name"),
                format!("duplicate {kind} `{namespace}/{name}`"),
            ));
        }
    }

    /// `namespace` (written at `at`.namespace) is a DNS label, as Kubernetes requires.
    pub(super) fn check_namespace(&mut self, file: &SourceFile, at: &str, namespace: &str) {
        if !is_dns_label(namespace) {
            self.report(file.at(
                &key(at, "namespace"),
                format!("invalid namespace `{namespace}`: expected a DNS label (a-z, 0-9, `-`)"),
            ));
        }
    }

    pub(super) fn secrets(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
        env_dir: &str,
    ) -> Vec<Secret> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (i, spec) in env.secrets.iter().enumerate() {
            let at = idx("secrets", i);
            self.check_object_names("Secret", file, &at, &spec.name, &spec.namespace, &mut seen);
            let Some(path) = join(env_dir, &spec.file) else {
                self.report(file.at(
                    &key(&at, "file"),
                    format!("file `{}` points outside the repository", spec.file),
                ));
                continue;
            };
            let Some(bytes) = self.snapshot.file(&path) else {
                self.report(file.at(
                    &key(&at, "file"),
                    format!(
                        "secret file `{}` not found: expected {path} in the commit",
                        spec.file
                    ),
                ));
                continue;
            };
            if !is_age_encrypted(bytes) {
                self.report(file.at(
                    &key(&at, "file"),
                    format!("{path} is not age-encrypted: secrets must never sit in Git in plain text (encrypt it with `envboot secret encrypt`)"),
                ));
                continue;
            }
            out.push(Secret {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                file: path,
                origin: file
                    .at(&key(&at, "file"), "")
                    .to_string()
                    .trim_end_matches(": ")
                    .to_string(),
                ciphertext: bytes.to_vec(),
            });
        }
        out
    }
}

impl Loader<'_> {
    /// Replaces `${module.INSTANCE.OUTPUT}` in Kubernetes-side values (ConfigMap data, chart
    /// values) by the output's canonical expression, resolved against AWS at plan and apply
    /// time. Reports references that do not resolve, at `path` in `file`.
    /// Resolves `${module.X.Y}` in `value`; `${secret.NAME.KEY}` is checked and kept for the
    /// renderer where `secrets` (the declared secrets' names) is given, rejected elsewhere.
    pub(super) fn cross_layer(
        &mut self,
        value: &mut Value,
        file: &SourceFile,
        path: &str,
        secrets: Option<&[String]>,
    ) {
        let mut cut = Vec::new();
        refs::unterminated_in(value, path, &mut cut);
        for (at, text) in cut {
            self.report(file.at(&at, refs::unterminated_message(&text)));
        }
        let mut problems = Vec::new();
        let outputs = &self.outputs;
        refs::substitute(value, &mut |expr| match refs::Ref::parse(expr) {
            refs::Ref::ModuleOutput {
                instance: m,
                output: o,
            } => match outputs.get(m) {
                Some(outs) => match outs.get(o) {
                    Some(v) => Some(v.clone()),
                    None => {
                        problems.push(format!("module instance `{m}` has no output `{o}`"));
                        None
                    }
                },
                None => {
                    problems.push(format!("`${{{expr}}}` refers to module instance `{m}`, which is not declared under `infrastructure`"));
                    None
                }
            },
            refs::Ref::Secret { name, .. } => {
                match secrets {
                        Some(names) if names.iter().any(|n| n == name) => {}
                        Some(_) => problems.push(format!(
                            "`${{{expr}}}` refers to secret `{name}`, which is not declared under `secrets`"
                        )),
                        None => problems.push(format!(
                            "`${{{expr}}}`: secret values go only into release values and Secrets, never into a ConfigMap"
                        )),
                    }
                None
            }
            _ => {
                let expected = if secrets.is_some() {
                    "`${module.INSTANCE.OUTPUT}` or `${secret.NAME.KEY}`"
                } else {
                    "`${module.INSTANCE.OUTPUT}`"
                };
                problems.push(format!(
                    "invalid reference `${{{expr}}}`: expected {expected}"
                ));
                None
            }
        });
        for p in problems {
            self.report(file.at(path, p));
        }
    }
}

/// A file's bytes as a ConfigMap key: text in `data`, anything not UTF-8 in `binaryData`.
pub(super) fn insert_file(cm: &mut ConfigMap, key: String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            cm.data.insert(key, text.to_string());
        }
        Err(_) => {
            cm.binary_data.insert(key, bytes.to_vec());
        }
    }
}

/// A valid ConfigMap key: letters, digits, `-`, `_` and `.`, at most 253 characters, not `.`
/// and not starting with `..` (Kubernetes' `IsConfigMapKey`).
pub(super) fn valid_key(key: &str) -> bool {
    crate::render::valid_data_key(key)
}

/// Parses an env file like `kubectl create configmap --from-env-file`: `KEY=VALUE` per line,
/// blank lines and `#` comments skipped, the value taken as written (quotes included).
/// Returns (line, key, value) for each entry.
pub fn parse_env_file(
    path: &str,
    bytes: &[u8],
) -> Result<Vec<(usize, String, String)>, crate::diag::Diagnostic> {
    let at = |line: usize, message: String| crate::diag::Diagnostic {
        file: path.to_string(),
        line,
        column: 1,
        message,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|_| at(1, "an env file must be UTF-8 text".to_string()))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(at(
                i + 1,
                format!("expected KEY=VALUE, found `{}`", raw.trim()),
            ));
        };
        let k = k.trim_end();
        if !valid_key(k) {
            return Err(at(
                i + 1,
                format!("`{k}` is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`)"),
            ));
        }
        out.push((i + 1, k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// The first 10 hex digits of a SHA-256 over the ConfigMap's content (keys sorted; references
/// to AWS values as written, not resolved).
pub(super) fn content_hash(cm: &ConfigMap) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (k, v) in &cm.data {
        h.update(b"d\0");
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    for (k, v) in &cm.binary_data {
        h.update(b"b\0");
        h.update(k.as_bytes());
        h.update(b"\0");
        h.update(v);
        h.update(b"\0");
    }
    hex::encode(h.finalize())[..10].to_string()
}
