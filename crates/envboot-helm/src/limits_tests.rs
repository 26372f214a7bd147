//! Bounds: what no chart may make the renderer do (overflow its stack, allocate without limit,
//! run forever), each checked against what Helm v4.1.4 does with the same input. These tests run
//! on the test harness's 2 MiB threads, so depth comes from the renderer, not from a big stack.

use std::collections::BTreeMap;

use super::*;

pub(crate) fn chart(values: &str, templates: &[(&str, &str)]) -> Result<Chart, Error> {
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        b"apiVersion: v2\nname: t\nversion: 0.1.0\n".to_vec(),
    );
    files.insert("values.yaml".to_string(), values.as_bytes().to_vec());
    for (n, t) in templates {
        files.insert(format!("templates/{n}"), t.as_bytes().to_vec());
    }
    Chart::from_files(files)
}

pub(crate) fn opts() -> Options {
    Options {
        release_name: "rel".into(),
        namespace: "ns".into(),
        kube_version: "1.30.0".into(),
        ..Options::default()
    }
}

fn run(values: &str, tpl: &str) -> Result<String, String> {
    let c = chart(values, &[("t.yaml", tpl)]).map_err(|e| e.to_string())?;
    template(&c, &opts())
        .map(|r| {
            r.into_iter()
                .map(|r| r.content)
                .collect::<Vec<_>>()
                .join("\n---\n")
        })
        .map_err(|e| e.to_string())
}

fn ok(values: &str, tpl: &str) -> String {
    run(values, tpl).unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn err(values: &str, tpl: &str) -> String {
    match run(values, tpl) {
        Ok(out) => panic!("render succeeded: {}", &out[..out.len().min(200)]),
        Err(e) => e,
    }
}

#[test]
fn deeply_nested_control_structures_render_as_helm_renders_them() {
    // helm renders 100,000 nested ifs (and 340,000 within its 5 MiB file limit)
    let n = 100_000;
    let t = format!("a: {}x{}", "{{if 1}}".repeat(n), "{{end}}".repeat(n));
    assert_eq!(ok("", &t), "a: x");
    let n = 20_000;
    let t = format!(
        "a: {}x{}",
        "{{with .}}{{range list 1}}".repeat(n),
        "{{end}}{{end}}".repeat(n)
    );
    assert_eq!(ok("", &t), "a: x");
}

#[test]
fn template_recursion_ends_at_gos_depth_limit() {
    let t = |n: u32| {
        format!(
            "{{{{- define \"r\" }}}}{{{{ if gt . 0 }}}}{{{{ template \"r\" (sub . 1) }}}}{{{{ end }}}}{{{{ end -}}}}\na: {{{{ template \"r\" {n} }}}}x"
        )
    };
    // 100,000 calls in all: what text/template allows
    assert_eq!(ok("", &t(99_999)), "a: x");
    let e = err("", &t(100_000));
    assert!(
        e.contains("exceeded maximum template depth (100000)"),
        "{e}"
    );
    assert!(e.contains(r#"<{{template "r" (sub . 1)}}>"#), "{e}");
}

#[test]
fn unbounded_include_and_tpl_recursion_is_helms_error() {
    let e = err(
        "",
        "{{- define \"r\" }}{{ include \"r\" . }}{{ end -}}\na: {{ include \"r\" 1 }}",
    );
    assert!(
        e.contains("rendering template has a nested reference name: r: unable to execute template"),
        "{e}"
    );
    let e = err(
        "",
        "{{- define \"r\" }}{{ tpl \"{{ include \\\"r\\\" . }}\" $ }}{{ end -}}\na: {{ include \"r\" . }}",
    );
    assert!(e.contains("nested reference name: r"), "{e}");
}

#[test]
fn parenthesised_pipelines_nest_to_ten_thousand() {
    let t = |n: usize| format!("a: {{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_eq!(ok("", &t(10_000)), "a: 1");
    let e = err("", &t(10_001));
    assert!(e.contains("max expression depth exceeded"), "{e}");
    assert!(
        e.starts_with("parse error at (t/templates/t.yaml:1)"),
        "{e}"
    );
}

fn nested_block_map(levels: usize) -> String {
    let mut s = String::new();
    for i in 0..levels - 1 {
        s.push_str(&" ".repeat(i));
        s.push_str("k:\n");
    }
    s.push_str(&" ".repeat(levels - 1));
    s.push_str("k: 1\n");
    s
}

/// Render with a user's values file (`helm template -f`), which Helm's 5 MiB limit on chart
/// files does not cover.
fn run_with_values_file(values: &str, tpl: &str) -> Result<String, String> {
    let c = chart("", &[("t.yaml", tpl)]).map_err(|e| e.to_string())?;
    let o = Options {
        values_files: vec![("deep.yaml".into(), values.into())],
        ..opts()
    };
    template(&c, &o)
        .map(|r| {
            r.into_iter()
                .map(|r| r.content)
                .collect::<Vec<_>>()
                .join("\n---\n")
        })
        .map_err(|e| e.to_string())
}

#[test]
fn values_nest_to_go_yamls_limit_and_no_further() {
    let tpl = "a: {{ .Values | toJson | len }}";
    // 10,000 maps: the JSON text is 6 bytes per level plus the innermost value
    assert_eq!(
        run_with_values_file(&nested_block_map(10_000), tpl).as_deref(),
        Ok("a: 60001")
    );
    let e = run_with_values_file(&nested_block_map(10_001), tpl).unwrap_err();
    assert!(e.contains("exceeded max depth of 10000"), "{e}");
    assert!(e.contains("line 10001"), "{e}");
}

fn laughs(levels: usize) -> String {
    let mut s = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = "abcdefghij".as_bytes();
    for i in 1..levels {
        let (p, c) = (names[i - 1] as char, names[i] as char);
        s.push_str(&format!(
            "{c}: &{c} [{}]\n",
            vec![format!("*{p}"); 9].join(",")
        ));
    }
    s
}

#[test]
fn alias_expansion_is_bounded_like_go_yaml() {
    let tpl = "a: {{ .Values | toJson | len }}";
    // 9 + 81 + 729 nodes from 3 levels: a few aliases, allowed
    assert!(ok(&laughs(3), tpl).starts_with("a: "));
    // 9^4 nodes from 40 lines is "excessive aliasing" in go-yaml; nine levels would be 387 million
    let e = err(&laughs(4), tpl);
    assert!(e.contains("document contains excessive aliasing"), "{e}");
    let e = err(&laughs(9), tpl);
    assert!(e.contains("document contains excessive aliasing"), "{e}");
    // fromYaml reports it as Helm does, in the map's Error key
    let vals = format!(
        "doc: |\n{}",
        laughs(9)
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    assert_eq!(
        ok(&vals, "a: {{ (fromYaml .Values.doc).Error | quote }}"),
        "a: \"error converting YAML to JSON: yaml: document contains excessive aliasing\""
    );
}

#[test]
fn functions_that_allocate_from_a_count_stop_at_the_budget() {
    for t in [
        "{{ range until 2000000000 }}{{ end }}",
        "{{ range untilStep 0 2000000000 1 }}{{ end }}",
        "{{ repeat 2000000000 \"abc\" }}",
        "{{ indent 2000000000 \"a\" }}",
        "{{ nindent 300000000 \"a\\nb\" }}",
        "{{ randAlphaNum 2000000000 }}",
        "{{ replace \"\" (repeat 1000 \"x\") (repeat 1000000 \"y\") }}",
    ] {
        let e = err("", &format!("a: {t}"));
        assert!(e.contains("over the rendering budget"), "{t}: {e}");
    }
}

#[test]
fn until_step_near_the_integer_limits_ends() {
    assert_eq!(
        ok(
            "",
            "a: {{ untilStep 9223372036854775805 9223372036854775807 1 | len }}"
        ),
        "a: 2"
    );
    assert_eq!(
        ok(
            "",
            "a: {{ untilStep 0 9223372036854775807 4611686018427387904 | len }}"
        ),
        "a: 2"
    );
    assert_eq!(
        ok(
            "",
            "a: {{ untilStep -9223372036854775807 -9223372036854775808 -5 | len }}"
        ),
        "a: 1"
    );
}

#[test]
fn printf_widths_past_a_million_are_gos_errors() {
    assert_eq!(
        ok("", "a: '{{ printf \"%*d\" 2000000000 1 }}'"),
        "a: '%!(BADWIDTH)1'"
    );
    assert_eq!(
        ok("", "a: '{{ printf \"%.*d\" 2000000000 1 }}'"),
        "a: '%!(BADPREC)1'"
    );
    assert_eq!(
        ok("", "a: '{{ printf \"%2000000000d\" 1 }}'"),
        "a: '%!(NOVERB)%!(EXTRA int=1)'"
    );
    assert_eq!(
        ok("", "a: '{{ printf \"%.2000000000d|%d\" 1 2 }}'"),
        "a: '%!(NOVERB)%!(EXTRA int=1, int=2)'"
    );
    assert_eq!(ok("", "a: '{{ printf \"%3d|\" 1 }}'"), "a: '  1|'");
}

#[test]
fn a_render_that_never_ends_stops_at_the_step_budget() {
    let c = chart(
        "",
        &[(
            "t.yaml",
            "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}",
        )],
    )
    .unwrap();
    let o = Options {
        max_steps: Some(1_000_000),
        ..opts()
    };
    let e = template(&c, &o).unwrap_err().to_string();
    assert!(
        e.contains("exceeds envboot's budget of 1000000 steps"),
        "{e}"
    );
    assert!(e.contains("t/templates/t.yaml:1"), "{e}");
}

#[test]
fn output_is_bounded() {
    let e = err(
        "",
        "{{ $s := repeat 100000000 \"x\" }}{{ range until 4 }}{{ $s }}{{ end }}",
    );
    assert!(e.contains("bytes of output"), "{e}");
}

#[test]
fn chart_files_and_archives_keep_helms_size_limits() {
    let big = format!("a: {}", "x".repeat(5 * 1024 * 1024));
    let e = chart("", &[("big.yaml", &big)]).unwrap_err().to_string();
    assert_eq!(
        e,
        "chart file \"big.yaml\" is larger than the maximum file size 5242880"
    );
    // a gzip bomb: an archive whose one file unpacks past 5 MiB
    let mut tar = tar::Builder::new(Vec::new());
    let data = vec![b'x'; 6 * 1024 * 1024];
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "sub/templates/x.yaml", &data[..])
        .unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let tgz = gz.finish().unwrap();
    assert!(tgz.len() < 100 * 1024);
    let e = untar_chart(&tgz).unwrap_err();
    assert_eq!(
        e,
        "decompressed chart file \"sub/templates/x.yaml\" is larger than the maximum file size 5242880"
    );
}

#[test]
fn deep_values_built_by_templates_print_and_serialise() {
    // 50,000 nested dicts built in a loop: toJson, toYaml and printing recurse that deep
    let t = "{{- $d := dict }}{{- range until 50000 }}{{- $d = dict \"k\" $d }}{{- end }}\
             a: {{ $d | toJson | len }}\nc: {{ printf \"%v\" $d | len }}\nd: {{ deepCopy $d | toJson | len }}";
    assert_eq!(ok("", t), "a: 300002\nc: 350005\nd: 300002");
    // toYaml indents each level: 2,000 levels are 4 MB of text
    let t = "{{- $d := dict }}{{- range until 2000 }}{{- $d = dict \"k\" $d }}{{- end }}\
             b: {{ $d | toYaml | len }}";
    assert_eq!(ok("", t), "b: 4004002");
}
