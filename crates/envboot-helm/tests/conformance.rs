//! Conformance of `envboot-helm` against real `helm template` (v4.1.4) on the chart corpus in
//! ../shared/helm-corpus: every chart with its defaults, and with every values file under its
//! `ci/`. Outputs are split at `# Source:` lines and compared file by file; output that is
//! random by design is masked. Every case must agree: the same files with the same bytes, or
//! a failure in both for the same cause.

// Test harness: a panic here is a failed test, as clippy.toml allows in #[test] functions.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use envboot_helm as helm;
use sha2::{Digest, Sha256};

const HELM_VERSION: &str = "v4.1.4";
const RANDOM_FUNCS: &[&str] = &[
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "uuidv4",
    "htpasswd",
    "bcrypt",
    "now",
    "genCA",
    "genSelfSignedCert",
    "genSignedCert",
    "genPrivateKey",
    "derivePassword",
    "shuffle",
];

/// The repository's root (this crate lives in crates/envboot-helm).
fn manifest_dir() -> PathBuf {
    package_dir().join("../..")
}

fn cache_dir() -> PathBuf {
    match std::env::var_os("ENVBOOT_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/envboot"),
    }
}

struct Case {
    chart: String,
    dir: PathBuf,
    case: String,
    values_file: Option<PathBuf>,
}

/// The charts of the first corpus: every folder of `charts/` with a Chart.yaml.
fn charts_flat(corpus: &Path) -> Vec<(String, PathBuf)> {
    let mut charts: Vec<PathBuf> = std::fs::read_dir(corpus.join("charts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Chart.yaml").exists())
        .collect();
    charts.sort();
    charts
        .into_iter()
        .map(|c| (c.file_name().unwrap().to_string_lossy().to_string(), c))
        .collect()
}

/// The charts of the wide corpus: every folder with a Chart.yaml that is not a vendored
/// dependency (under a chart's `charts/`), except `tgz/` and `licenses/`.
fn charts_wide(wide: &Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
        if dir.join("Chart.yaml").is_file() {
            let rel = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            out.push((rel, dir.to_path_buf()));
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut subs: Vec<PathBuf> = rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        for s in subs {
            let n = s.file_name().unwrap().to_string_lossy().to_string();
            if dir == root && (n == "tgz" || n == "licenses") {
                continue;
            }
            walk(root, &s, out);
        }
    }
    let mut out = Vec::new();
    walk(wide, wide, &mut out);
    out
}

fn cases(charts: Vec<(String, PathBuf)>) -> Vec<Case> {
    let mut out = Vec::new();
    for (name, c) in charts {
        out.push(Case {
            chart: name.clone(),
            dir: c.clone(),
            case: "default".into(),
            values_file: None,
        });
        let ci = c.join("ci");
        if ci.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&ci)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                out.push(Case {
                    chart: name.clone(),
                    dir: c.clone(),
                    case: f.file_name().unwrap().to_string_lossy().to_string(),
                    values_file: Some(f),
                });
            }
        }
    }
    out
}

fn chart_hash(dir: &Path) -> String {
    let chart = helm::Chart::from_dir(dir).unwrap();
    let mut h = Sha256::new();
    for (k, v) in chart.files() {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_slice());
        h.update([0]);
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// Helm's result for a case: Ok(stdout) or Err(error message).
fn helm_reference(helm_bin: &mut Option<Option<PathBuf>>, c: &Case) -> Result<String, String> {
    let chart_dir = c.dir.clone();
    let key = format!("{}-{}", c.chart.replace('/', "_"), chart_hash(&chart_dir));
    let dir = cache_dir()
        .join("helm-conformance")
        .join(HELM_VERSION)
        .join(key);
    let base = dir.join(&c.case);
    let out_p = base.with_extension("out");
    let err_p = base.with_extension("err");
    if out_p.exists() {
        return Ok(std::fs::read_to_string(&out_p).unwrap());
    }
    if err_p.exists() {
        return Err(std::fs::read_to_string(&err_p).unwrap());
    }
    let bin = helm_bin.get_or_insert_with(|| {
        let o = Command::new("bash")
            .arg(manifest_dir().join("scripts/fetch-helm"))
            .output()
            .ok()?;
        if !o.status.success() {
            eprintln!("fetch-helm failed: {}", String::from_utf8_lossy(&o.stderr));
            return None;
        }
        Some(PathBuf::from(
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
        ))
    });
    let Some(bin) = bin.clone() else {
        panic!("helm {HELM_VERSION} is not available (scripts/fetch-helm failed) and no cached reference exists");
    };
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["template", "rel"])
        .arg(&chart_dir)
        .args(["--namespace", "ns", "--kube-version", "1.30.0"])
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_DATA_HOME", home.path().join("data"));
    if let Some(f) = &c.values_file {
        cmd.arg("-f").arg(f);
    }
    let o = cmd.output().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    if o.status.success() {
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        std::fs::write(&out_p, &s).unwrap();
        Ok(s)
    } else {
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        let e = e
            .trim()
            .strip_prefix("Error: ")
            .unwrap_or(e.trim())
            .to_string();
        let e = e
            .strip_suffix("Use --debug flag to render out invalid YAML")
            .unwrap_or(&e)
            .trim()
            .to_string();
        std::fs::write(&err_p, &e).unwrap();
        Err(e)
    }
}

fn ours(c: &Case) -> Result<String, String> {
    let chart = helm::Chart::from_dir(&c.dir).map_err(|e| e.to_string())?;
    let mut values_files = Vec::new();
    if let Some(f) = &c.values_file {
        values_files.push((f.display().to_string(), std::fs::read_to_string(f).unwrap()));
    }
    let opts = helm::Options {
        release_name: "rel".into(),
        namespace: "ns".into(),
        kube_version: "1.30.0".into(),
        api_versions: Vec::new(),
        values_files,
        set: Vec::new(),
        set_string: Vec::new(),
        is_upgrade: false,
        max_steps: None,
        ..Default::default()
    };
    helm::template(&chart, &opts)
        .map(|r| helm::to_helm_output(&r))
        .map_err(|e| e.to_string())
}

/// Split `helm template` output into (source, document) in order.
fn split(out: &str) -> Vec<(String, String)> {
    let mut docs: Vec<(String, String)> = Vec::new();
    let mut cur: Option<(String, String)> = None;
    let lines: Vec<&str> = out.split_inclusive('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let next = lines.get(i + 1).copied().unwrap_or("");
        if l == "---\n" && next.starts_with("# Source: ") {
            if let Some(d) = cur.take() {
                docs.push(d);
            }
            let src = next.trim_end().trim_start_matches("# Source: ").to_string();
            cur = Some((src, String::new()));
            i += 2;
            continue;
        }
        match &mut cur {
            Some((_, t)) => t.push_str(l),
            None => cur = Some((String::new(), l.to_string())),
        }
        i += 1;
    }
    if let Some(d) = cur {
        docs.push(d);
    }
    docs
}

fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        let word = c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '$' | '.');
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(&line[s..i]);
                out.push(&line[i..i + c.len_utf8()]);
                start = None;
            }
            (false, None) => out.push(&line[i..i + c.len_utf8()]),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// Generated certificates and keys: base64 of a PEM block (`LS0tLS1CRUdJTi...`) becomes
/// `<PEM>`, and the body lines of a PEM block become one `<PEM body>` line. Their length
/// depends on random serial numbers and key encodings, so they are compared by kind only.
fn mask_pem(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_body = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("-----BEGIN ") {
            in_body = true;
            out.push_str(line);
            out.push_str("\n<PEM body>\n");
            continue;
        }
        if t.starts_with("-----END ") {
            in_body = false;
        }
        if in_body {
            continue;
        }
        let mut l = line.to_string();
        while let Some(i) = l.find("LS0tLS1CRUdJTi") {
            let end = l[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
                .map(|j| i + j)
                .unwrap_or(l.len());
            l.replace_range(i..end, "<PEM>");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Equal after masking random output: lines may differ only in same-length word tokens,
/// and generated certificates and keys only in their content (`mask_pem`).
fn equal_masked(a: &str, b: &str, random: bool) -> bool {
    if a == b {
        return true;
    }
    if !random {
        return false;
    }
    let (a, b) = (mask_pem(a), mask_pem(b));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if la.len() != lb.len() {
        return false;
    }
    la.iter().zip(lb.iter()).all(|(x, y)| {
        if x == y {
            return true;
        }
        let (tx, ty) = (tokens(x), tokens(y));
        tx.len() == ty.len()
            && tx
                .iter()
                .zip(ty.iter())
                .all(|(p, q)| p == q || p.len() == q.len())
    })
}

fn uses_random(dir: &Path) -> bool {
    let chart = helm::Chart::from_dir(dir).unwrap();
    chart.files().iter().any(|(k, v)| {
        (k.starts_with("templates/") || k.contains("/templates/")) && {
            let t = String::from_utf8_lossy(v);
            RANDOM_FUNCS.iter().any(|f| t.contains(f))
        }
    })
}

/// The essence of an error: for a template's failure (`required`, `fail`, a bad call), the
/// message after the location; otherwise the whole message.
fn error_essence(e: &str) -> String {
    let e = e.trim();
    let e = e.strip_prefix("Error: ").unwrap_or(e);
    let e = match e.find("execution error at (") {
        Some(i) => {
            let rest = &e[i..];
            rest.find("): ").map(|j| &rest[j + 3..]).unwrap_or(rest)
        }
        None => e,
    };
    e.trim().to_string()
}

/// `e` with every path into the corpus written from the corpus's root (`<corpus>/...`), so
/// that messages naming files compare alike wherever the checkout lies.
fn corpus_relative(e: &str) -> String {
    const MARK: &str = "shared/helm-corpus/";
    let mut out = String::new();
    let mut rest = e;
    while let Some(i) = rest.find(MARK) {
        let before = &rest[..i];
        let path_start = before
            .rfind(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .map_or(0, |j| j + 1);
        out.push_str(&before[..path_start]);
        out.push_str("<corpus>/");
        rest = &rest[i + MARK.len()..];
    }
    out.push_str(rest);
    out
}

#[test]
fn corpus_paths_compare_alike_from_any_checkout() {
    assert_eq!(
        corpus_relative("failed to parse /a/b/../shared/helm-corpus/wide/x/ci/l.sh: bad"),
        corpus_relative("failed to parse /c/a/b/../shared/helm-corpus/wide/x/ci/l.sh: bad"),
    );
    assert_eq!(
        corpus_relative("at \"/w/shared/helm-corpus/c\" and /v/shared/helm-corpus/d"),
        "at \"<corpus>/c\" and <corpus>/d"
    );
    assert_ne!(
        corpus_relative("a /x/shared/helm-corpus/c"),
        corpus_relative("b /x/shared/helm-corpus/c")
    );
}

struct Row {
    chart: String,
    case: String,
    same: usize,
    total: usize,
    agrees: bool,
    note: String,
}

/// Compare every case with helm; `loose_errors` compares failures by their essence.
fn run_cases(cases: &[Case], loose_errors: bool) -> (Vec<Row>, std::time::Duration) {
    let mut helm_bin = None;
    let mut rows = Vec::new();
    let mut timing = std::time::Duration::ZERO;
    let mut random_cache: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for c in cases {
        let reference = helm_reference(&mut helm_bin, c);
        let t0 = std::time::Instant::now();
        let mine = ours(c);
        timing += t0.elapsed();
        let random = *random_cache
            .entry(c.dir.clone())
            .or_insert_with(|| uses_random(&c.dir));
        let (same, total, note) = match (&reference, &mine) {
            (Err(h), Err(m)) => {
                // helm's answer may be cached from a checkout at another path
                let (h, m) = (&corpus_relative(h), &corpus_relative(m));
                let eq = if loose_errors {
                    error_essence(h) == error_essence(m)
                } else {
                    h.trim() == m.trim()
                };
                if eq {
                    (1, 1, "fails in both".to_string())
                } else {
                    (
                        0,
                        1,
                        format!("both fail, messages differ:\n  helm: {h}\n  ours: {m}"),
                    )
                }
            }
            (Err(h), Ok(_)) => (0, 1, format!("helm fails, ours renders: {h}")),
            (Ok(h), Err(m)) => {
                let n = split(h)
                    .into_iter()
                    .map(|d| d.0)
                    .collect::<BTreeSet<_>>()
                    .len();
                (0, n.max(1), format!("ours fails: {m}"))
            }
            (Ok(h), Ok(m)) => {
                let (hd, md) = (split(h), split(m));
                let mut by_file: BTreeMap<String, (String, String)> = BTreeMap::new();
                for (s, d) in &hd {
                    by_file
                        .entry(s.clone())
                        .or_default()
                        .0
                        .push_str(&format!("---\n{d}"));
                }
                for (s, d) in &md {
                    by_file
                        .entry(s.clone())
                        .or_default()
                        .1
                        .push_str(&format!("---\n{d}"));
                }
                let mut same: usize = 0;
                let mut diffs = Vec::new();
                for (f, (a, b)) in &by_file {
                    if equal_masked(a, b, random) {
                        same += 1;
                    } else {
                        diffs.push(f.clone());
                        if std::env::var_os("HELM_CONFORMANCE_DIFF").is_some() {
                            let dir = std::env::temp_dir()
                                .join("helm-conformance-diff")
                                .join(&c.chart)
                                .join(&c.case);
                            std::fs::create_dir_all(&dir).unwrap();
                            let fname = f.replace('/', "_");
                            std::fs::write(dir.join(format!("{fname}.helm")), a).unwrap();
                            std::fs::write(dir.join(format!("{fname}.ours")), b).unwrap();
                        }
                    }
                }
                let order_ok = hd.iter().map(|d| &d.0).eq(md.iter().map(|d| &d.0))
                    && equal_masked(h, m, random);
                let mut note = String::new();
                if !diffs.is_empty() {
                    note = format!("differs: {}", diffs.join(", "));
                } else if !order_ok {
                    note = "same files, different order or framing".to_string();
                    same = same.saturating_sub(1);
                }
                (same, by_file.len(), note)
            }
        };
        rows.push(Row {
            chart: c.chart.clone(),
            case: c.case.clone(),
            same,
            total,
            agrees: same == total,
            note,
        });
    }
    (rows, timing)
}

fn print_rows(
    title: &str,
    rows: &[Row],
    timing: std::time::Duration,
    status: impl Fn(&Row) -> &'static str,
) {
    println!("\n== {title}");
    println!("{:<44} {:<46} {:>10}  status", "chart", "case", "identical");
    for r in rows {
        let st = status(r);
        println!(
            "{:<44} {:<46} {:>10}  {st}",
            r.chart,
            r.case,
            format!("{}/{}", r.same, r.total)
        );
        if st != "ok" && !r.note.is_empty() {
            for l in r.note.lines().take(6) {
                println!("      {}", l.chars().take(300).collect::<String>());
            }
        }
    }
    let total_files: usize = rows.iter().map(|r| r.total).sum();
    let total_same: usize = rows.iter().map(|r| r.same).sum();
    let cases_ok = rows.iter().filter(|r| r.agrees).count();
    println!(
        "\n{title}: {total_same}/{total_files} files identical ({:.1}%), {cases_ok}/{} cases fully identical; envboot rendered {} cases in {:?}",
        100.0 * total_same as f64 / total_files.max(1) as f64,
        rows.len(),
        rows.len(),
        timing
    );
}

/// The per-chart table: chart, cases agreeing/total, files identical/total, first difference.
fn print_chart_table(title: &str, rows: &[Row]) {
    println!("\n== {title}: per chart");
    println!(
        "{:<50} {:>7} {:>9}  first difference or error",
        "chart", "cases", "files"
    );
    let mut by_chart: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by_chart.entry(&r.chart).or_default().push(r);
    }
    for (chart, rs) in by_chart {
        let ok = rs.iter().filter(|r| r.agrees).count();
        let same: usize = rs.iter().map(|r| r.same).sum();
        let total: usize = rs.iter().map(|r| r.total).sum();
        let first = rs
            .iter()
            .find(|r| !r.agrees)
            .map(|r| {
                let n = r.note.replace('\n', " ");
                format!("[{}] {}", r.case, n.chars().take(160).collect::<String>())
            })
            .unwrap_or_default();
        println!(
            "{chart:<50} {:>7} {:>9}  {first}",
            format!("{ok}/{}", rs.len()),
            format!("{same}/{total}")
        );
    }
}

/// Every case must agree with helm: the same files with the same bytes, or a failure in both
/// for the same cause.
fn assert_all_agree(label: &str, rows: &[Row]) {
    let failures: Vec<String> = rows
        .iter()
        .filter(|r| !r.agrees)
        .map(|r| format!("{} {}: {}", r.chart, r.case, r.note))
        .collect();
    assert!(
        failures.is_empty(),
        "{label}: {} cases differ from helm:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn status(r: &Row) -> &'static str {
    if r.agrees {
        "ok"
    } else {
        "FAIL"
    }
}

#[test]
fn helm_template_conformance() {
    let corpus = manifest_dir().join("../shared/helm-corpus");
    if !corpus.join("charts").is_dir() {
        println!("skipped: ../shared/helm-corpus not found");
        return;
    }
    let (rows, timing) = run_cases(&cases(charts_flat(&corpus)), false);
    print_rows("charts", &rows, timing, status);
    assert_all_agree("charts", &rows);
}

/// The wide corpus: 61 real-world charts with vendored dependencies (folders and archives).
#[test]
fn helm_template_conformance_wide() {
    let wide = manifest_dir().join("../shared/helm-corpus/wide");
    if !wide.is_dir() {
        println!("skipped: ../shared/helm-corpus/wide not found");
        return;
    }
    let (rows, timing) = run_cases(&cases(charts_wide(&wide)), true);
    print_rows("wide", &rows, timing, status);
    print_chart_table("wide", &rows);
    assert_all_agree("wide", &rows);
}

/// This crate's folder: as cargo gives it when it runs the test (a test binary built in a
/// shared target directory from a checkout elsewhere is reused as it is), else as compiled.
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
