//! A release's chart: a folder of the commit, or an archive the environment's lock pins by
//! digest (from a Helm repository or an OCI registry); and the dependencies a folder's
//! Chart.yaml declares from a repository without vendoring them, which the lock pins too.

use super::*;
use crate::charts::{self as remote, Locked, Requirement};
use spec::{ChartSpec, RemoteChartSpec};

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChartYaml {
    name: String,
    version: String,
    #[serde(default)]
    app_version: Option<String>,
}

/// The dependencies of a Chart.yaml, requirements.yaml or Chart.lock (other fields ignored).
#[derive(serde::Deserialize, Default)]
struct Dependencies {
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(serde::Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    repository: String,
}

impl<'a> Loader<'a> {
    pub(super) fn chart(&mut self, spec: &ChartSpec, file: &SourceFile, at: &str) -> Option<Chart> {
        match spec {
            ChartSpec::Folder(name) => self.folder_chart(name, file, at),
            ChartSpec::Remote(remote) => self.remote_chart(remote, file, at),
        }
    }

    fn folder_chart(&mut self, name: &str, file: &SourceFile, at: &str) -> Option<Chart> {
        let dir = format!("modules/{name}");
        self.charts.insert(dir.clone());
        let chart_path = format!("{dir}/Chart.yaml");
        if self.snapshot.file(&chart_path).is_none() {
            self.report(file.at(
                at,
                format!("chart `{name}` not found: expected {chart_path} in the commit"),
            ));
            return None;
        }
        let mut files: BTreeMap<String, Vec<u8>> = self
            .snapshot
            .files_under(&dir)
            .map(|(rel, bytes)| (rel.to_string(), bytes.to_vec()))
            .collect();
        self.locked_dependencies(&dir, &mut files)?;
        self.chart_from_files(dir, files)
    }

    fn remote_chart(
        &mut self,
        spec: &RemoteChartSpec,
        file: &SourceFile,
        at: &str,
    ) -> Option<Chart> {
        let mut ok = true;
        if let Err(e) = remote::repository_scheme(&spec.repository) {
            self.report(file.at(&key(at, "repository"), e));
            ok = false;
        }
        if !envboot_helm::versions::is_valid(&spec.version) {
            self.report(file.at(
                &key(at, "version"),
                format!(
                    "version `{}` is not an exact chart version (such as 4.11.3): a release installs one version, which the lock pins by digest",
                    spec.version
                ),
            ));
            ok = false;
        }
        if !ok {
            return None;
        }
        let requirement = Requirement {
            repository: spec.repository.clone(),
            name: spec.name.clone(),
            version: spec.version.clone(),
            exact: true,
            dependency_of: None,
            origin: origin(&file.at(at, "")),
        };
        if let Some(found) = &mut self.requirements {
            found.push(requirement);
            return None;
        }
        let Some(locked) = self.locked(&requirement) else {
            self.report(file.at(at, self.not_locked(&requirement)));
            return None;
        };
        let files = self.archive(&locked, &file.at(at, ""))?;
        let dir = format!(
            "{}/{}@{}",
            spec.repository.trim_end_matches('/'),
            spec.name,
            spec.version
        );
        let chart = self.chart_from_files(dir, files)?;
        if chart.name != spec.name || chart.version != spec.version {
            self.report(file.at(
                at,
                format!(
                    "the archive the lock pins for {} ({}) holds chart {} {}: not the chart asked for",
                    locked.describe(),
                    locked.digest,
                    chart.name,
                    chart.version
                ),
            ));
            return None;
        }
        Some(chart)
    }

    /// A chart from its files: `Chart.yaml`, `values.yaml` (checked as Helm reads it), templates.
    fn chart_from_files(&mut self, dir: String, files: BTreeMap<String, Vec<u8>>) -> Option<Chart> {
        let chart_path = format!("{dir}/Chart.yaml");
        let bytes = files
            .get("Chart.yaml")
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text = utf8(&chart_path, bytes).map_err(|d| self.report(d)).ok()?;
        let (meta, _): (ChartYaml, _) = diag::parse_as_helm(&chart_path, text)
            .map_err(|d| self.report(d))
            .ok()?;
        if let Some(bytes) = files.get("values.yaml") {
            let values_path = format!("{dir}/values.yaml");
            let text = utf8(&values_path, bytes).map_err(|d| self.report(d)).ok()?;
            if !self.check_values_file(&values_path, text, "values.yaml") {
                return None;
            }
        }
        let mut templates = BTreeMap::new();
        for (rel, bytes) in files.range("templates/".to_string()..) {
            if !rel.starts_with("templates/") {
                break;
            }
            let path = format!("{dir}/{rel}");
            if let Ok(text) = utf8(&path, bytes).map_err(|d| self.report(d)) {
                templates.insert(rel.clone(), text.to_string());
            }
        }
        Some(Chart {
            files,
            dir,
            name: meta.name,
            version: meta.version,
            app_version: meta.app_version,
            templates,
        })
    }

    /// Adds to a chart folder's files, as `charts/<name>-<version>.tgz`, each dependency its
    /// Chart.yaml (or requirements.yaml) declares from a repository and its `charts/` does not
    /// vendor, as the lock pins it; `None` (reported) where the lock does not.
    fn locked_dependencies(
        &mut self,
        dir: &str,
        files: &mut BTreeMap<String, Vec<u8>>,
    ) -> Option<()> {
        let read = |name: &str| -> (Dependencies, Option<SourceFile>) {
            let path = format!("{dir}/{name}");
            files
                .get(name)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| diag::parse_as_helm::<Dependencies>(&path, t).ok())
                .map_or_else(Default::default, |(d, f)| (d, Some(f)))
        };
        // Chart.yaml with Chart.lock (apiVersion v2), requirements.yaml with requirements.lock (v1)
        let declared: Vec<_> = [
            ("Chart.yaml", "Chart.lock"),
            ("requirements.yaml", "requirements.lock"),
        ]
        .into_iter()
        .filter_map(|(declared_in, lock_name)| {
            let (deps, file) = read(declared_in);
            Some((declared_in, lock_name, deps, file?, read(lock_name).0))
        })
        .collect();
        let mut ok = true;
        let mut added = Vec::new();
        for (declared_in, lock_name, deps, file, chart_lock) in declared {
            for (i, dep) in deps.dependencies.iter().enumerate() {
                let at = file.at(&idx("dependencies", i), "");
                if !remote::is_remote_repository(&dep.repository) || vendored(files, &dep.name) {
                    continue;
                }
                let report = |loader: &mut Self, message: String| {
                    loader.report(Diagnostic {
                        message,
                        ..at.clone()
                    });
                };
                if !envboot_helm::versions::is_constraint(&dep.version) {
                    report(
                        self,
                        format!(
                        "dependency {}: `{}` is not a version constraint (such as ^1.2.0 or 1.2.3)",
                        dep.name, dep.version
                    ),
                    );
                    ok = false;
                    continue;
                }
                // Helm's Chart.lock lists the dependencies in Chart.yaml's order, the
                // repository as its URL (an `@name` alias resolved)
                let pinned = chart_lock
                    .dependencies
                    .get(i)
                    .filter(|l| l.name == dep.name)
                    .or_else(|| chart_lock.dependencies.iter().find(|l| l.name == dep.name));
                if let Some(p) = pinned {
                    if !remote::version_satisfies(&dep.version, &p.version) {
                        report(self, format!(
                            "dependency {}: {lock_name} pins {}, which `{}` does not allow: {lock_name} is out of sync with {declared_in} (run `helm dependency update`)",
                            dep.name, p.version, dep.version
                        ));
                        ok = false;
                        continue;
                    }
                }
                let requirement = Requirement {
                    repository: dep.repository.clone(),
                    name: dep.name.clone(),
                    version: pinned.map_or(dep.version.clone(), |p| p.version.clone()),
                    exact: pinned.is_some(),
                    dependency_of: Some(dir.to_string()),
                    origin: origin(&at),
                };
                if let Some(found) = &mut self.requirements {
                    found.push(requirement);
                    continue;
                }
                let Some(locked) = self.locked(&requirement) else {
                    let message = self.not_locked(&requirement);
                    report(self, message);
                    ok = false;
                    continue;
                };
                let Some(archive) = self.archive_bytes(&locked, &at) else {
                    ok = false;
                    continue;
                };
                added.push((
                    format!("charts/{}-{}.tgz", locked.name, locked.version),
                    archive.to_vec(),
                ));
            }
        }
        files.extend(added);
        ok.then_some(())
    }

    /// The lock's entry for `requirement`, noting that it is used.
    fn locked(&mut self, requirement: &Requirement) -> Option<Locked> {
        let lock = self.lock_entries()?;
        let (i, found) = lock
            .iter()
            .enumerate()
            .find(|(_, l)| requirement.is_satisfied_by(l))?;
        let found = found.clone();
        self.lock_used.insert(i);
        Some(found)
    }

    /// The lock's entries, read once (`None` when there is no lock or it is invalid: reported).
    fn lock_entries(&mut self) -> Option<&[Locked]> {
        if self.lock.is_none() {
            let path = remote::lock_path(&self.env_name);
            let parsed = match self.snapshot.file(&path) {
                None => Vec::new(),
                Some(bytes) => match utf8(&path, bytes) {
                    Err(d) => {
                        self.report(d);
                        Vec::new()
                    }
                    Ok(text) => match remote::parse_lock(&path, text) {
                        Ok((lock, _)) => lock.charts,
                        Err(found) => {
                            for d in found {
                                self.report(d);
                            }
                            Vec::new()
                        }
                    },
                },
            };
            self.lock = Some(parsed);
        }
        self.lock.as_deref()
    }

    fn not_locked(&self, r: &Requirement) -> String {
        let lock = remote::lock_path(&self.env_name);
        let what = match &r.dependency_of {
            None => format!("chart {} {} from {}", r.name, r.version, r.repository),
            Some(dir) => format!(
                "dependency {} {} from {} is not vendored in {dir}/charts/ and",
                r.name, r.version, r.repository
            ),
        };
        let verb = if r.dependency_of.is_some() { "" } else { " is" };
        format!(
            "{what}{verb} not pinned in {lock}: run `envboot charts lock {}` and commit the lock file",
            self.env_name
        )
    }

    /// A locked chart's archive, which the binary put in the snapshot (reported at `at` where
    /// it did not).
    fn archive_bytes(&mut self, locked: &Locked, at: &Diagnostic) -> Option<&'a [u8]> {
        let snapshot = self.snapshot;
        let found = snapshot.archives.get(&locked.digest).map(Vec::as_slice);
        if found.is_none() {
            self.report(Diagnostic {
                message: missing_archive(locked),
                ..at.clone()
            });
        }
        found
    }

    /// The files of a locked chart's archive.
    fn archive(&mut self, locked: &Locked, at: &Diagnostic) -> Option<BTreeMap<String, Vec<u8>>> {
        let bytes = self.archive_bytes(locked, at)?;
        envboot_helm::unpack_archive(bytes)
            .map_err(|e| {
                self.report(Diagnostic {
                    message: format!(
                        "{} ({}) is not a chart archive: {e}",
                        locked.describe(),
                        locked.digest
                    ),
                    ..at.clone()
                })
            })
            .ok()
    }

    /// Warns of lock entries no chart of the environment uses.
    pub(super) fn unused_lock_entries(&mut self) {
        let Some(lock) = self.lock.clone() else {
            return;
        };
        let path = remote::lock_path(&self.env_name);
        for (i, l) in lock.iter().enumerate() {
            if !self.lock_used.contains(&i) {
                self.warnings.push(Diagnostic {
                    file: path.clone(),
                    line: 1,
                    column: 1,
                    message: format!(
                        "{} is pinned but not used: `envboot charts lock {}` drops it",
                        l.describe(),
                        self.env_name
                    ),
                });
            }
        }
    }
}

/// `charts/` of a chart folder holds `name`, as a folder or an archive `<name>-<version>.tgz`
/// (`redis-cluster-9.0.0.tgz` is not `redis`).
fn vendored(files: &BTreeMap<String, Vec<u8>>, name: &str) -> bool {
    files.contains_key(&format!("charts/{name}/Chart.yaml"))
        || files.keys().any(|k| {
            k.strip_prefix("charts/")
                .and_then(|r| r.strip_prefix(name))
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.strip_suffix(".tgz"))
                .is_some_and(envboot_helm::versions::is_valid)
        })
}

fn missing_archive(l: &Locked) -> String {
    format!(
        "{} ({}) is neither in vendor/charts/ nor fetched: the binary fetches what the lock pins",
        l.describe(),
        l.digest
    )
}

fn origin(d: &Diagnostic) -> String {
    format!("{}:{}:{}", d.file, d.line, d.column)
}
