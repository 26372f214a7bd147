//! Behaviour tests of the template engine from small templates.

use std::collections::BTreeMap;

use super::*;

fn chart_with(values: &str, templates: &[(&str, &str)]) -> Chart {
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        b"apiVersion: v2\nname: t\nversion: 0.1.0\nappVersion: \"1.0\"\n".to_vec(),
    );
    files.insert("values.yaml".to_string(), values.as_bytes().to_vec());
    for (n, t) in templates {
        files.insert(format!("templates/{n}"), t.as_bytes().to_vec());
    }
    Chart::from_files(files).unwrap()
}

fn opts() -> Options {
    Options {
        release_name: "rel".into(),
        namespace: "ns".into(),
        kube_version: "1.30.0".into(),
        ..Options::default()
    }
}

/// Render one template (as a comment-free YAML doc) and return its content.
fn render(values: &str, tpl: &str) -> String {
    let c = chart_with(values, &[("t.yaml", tpl)]);
    let r = template(&c, &opts()).unwrap();
    r.into_iter()
        .map(|r| r.content)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn render_err(values: &str, tpl: &str) -> String {
    let c = chart_with(values, &[("t.yaml", tpl)]);
    template(&c, &opts()).unwrap_err().to_string()
}

#[test]
fn set_mutates_the_dict_in_place() {
    assert_eq!(
        render(
            "",
            "{{- $d := dict \"a\" 1 }}{{- $_ := set $d \"b\" 2 }}x: {{ $d.b }}"
        ),
        "x: 2"
    );
    assert_eq!(
        render(
            "m: {a: 1}",
            "{{- $_ := set .Values.m \"z\" 3 }}x: {{ .Values.m.z }}"
        ),
        "x: 3"
    );
}

#[test]
fn methods_take_arguments() {
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        b"apiVersion: v2\nname: t\nversion: 0.1.0\n".to_vec(),
    );
    files.insert("conf/a.txt".to_string(), b"hello\n".to_vec());
    files.insert(
        "templates/t.yaml".to_string(),
        b"a: {{ .Files.Get \"conf/a.txt\" | trim }}\nb: {{ .Capabilities.APIVersions.Has \"apps/v1\" }}\nc: {{ .Files.Glob \"conf/*\" | len }}".to_vec(),
    );
    let r = template(&Chart::from_files(files).unwrap(), &opts()).unwrap();
    assert_eq!(r[0].content, "a: hello\nb: true\nc: 1");
}

#[test]
fn zero_float_is_false() {
    assert_eq!(
        render(
            "z: 0.0\no: 0.5",
            "a: {{ if .Values.z }}t{{ else }}f{{ end }}{{ if .Values.o }}t{{ end }}"
        ),
        "a: ft"
    );
}

#[test]
fn numbers_from_values_are_float64() {
    assert_eq!(
        render(
            "big: 1000000\nk: 3",
            "a: {{ .Values.big }} {{ .Values.k }} {{ printf \"%T\" .Values.k }}"
        ),
        "a: 1e+06 3 float64"
    );
}

#[test]
fn missing_values_print_empty_and_nested_missing_fails() {
    assert_eq!(render("", "a: '{{ .Values.nope }}'"), "a: ''");
    let e = render_err("", "a: {{ .Values.nope.deeper }}");
    assert_eq!(
        e,
        "t/templates/t.yaml:1:13\n  executing \"t/templates/t.yaml\" at <.Values.nope.deeper>:\n    nil pointer evaluating interface {}.deeper"
    );
}

#[test]
fn range_over_maps_is_sorted_and_supports_break_continue() {
    assert_eq!(
        render("m: {b: 2, a: 1, c: 3}", "x: {{ range $k, $v := .Values.m }}{{ if eq $k \"b\" }}{{ continue }}{{ end }}{{ $k }}={{ $v }};{{ end }}"),
        "x: a=1;c=3;"
    );
    assert_eq!(
        render(
            "",
            "x: {{ range $i := 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}"
        ),
        "x: 012"
    );
}

#[test]
fn whitespace_trimming_and_comments() {
    assert_eq!(render("", "a:   {{- /* c */ -}}   \n  b: 1"), "a:b: 1");
}

#[test]
fn define_include_template_and_block() {
    assert_eq!(
        render("", "{{- define \"x\" }}[{{ . }}]{{ end -}}\na: {{ include \"x\" 1 | quote }}\nb: {{ template \"x\" 2 }}\nc: {{ block \"y\" 3 }}<{{ . }}>{{ end }}"),
        "a: \"[1]\"\nb: [2]\nc: <3>"
    );
}

#[test]
fn and_or_short_circuit() {
    assert_eq!(
        render(
            "",
            "a: {{ or 0 \"\" \"x\" }} {{ and 1 0 2 }} {{ and false .Values.no.such }}"
        ),
        "a: x 0 false"
    );
}

#[test]
fn else_if_and_else_with() {
    assert_eq!(
        render("v: 2", "a: {{ if eq .Values.v 1.0 }}one{{ else if eq .Values.v 2.0 }}two{{ else }}other{{ end }} {{ with .Values.none }}x{{ else with .Values.v }}{{ . }}{{ end }}"),
        "a: two 2"
    );
}

#[test]
fn eq_of_int_and_float_is_an_error_as_in_go() {
    let e = render_err("v: 2", "a: {{ eq .Values.v 2 }}");
    assert!(e.contains("incompatible types for comparison"), "{e}");
}

#[test]
fn printing_maps_and_nil_like_go() {
    assert_eq!(
        render(
            "m: {b: x, a: 1}",
            "a: {{ .Values.m }} {{ printf \"%v\" .Values.nope }}"
        ),
        "a: map[a:1 b:x] <nil>"
    );
}

#[test]
fn to_yaml_and_nindent() {
    assert_eq!(
        render(
            "r: {limits: {cpu: 100m}, requests: {memory: 1Gi}}",
            "r:{{ toYaml .Values.r | nindent 2 }}"
        ),
        "r:\n  limits:\n    cpu: 100m\n  requests:\n    memory: 1Gi"
    );
}

#[test]
fn required_and_fail_report_helm_style() {
    let e = render_err("", "a: {{ required \"need x\" .Values.x }}");
    assert_eq!(e, "execution error at (t/templates/t.yaml:1:6): need x");
    let e = render_err("", "{{ fail \"boom\" }}");
    assert_eq!(e, "execution error at (t/templates/t.yaml:1:3): boom");
}

#[test]
fn tpl_renders_with_the_given_context() {
    assert_eq!(
        render(
            "name: nm\nt: \"{{ .Values.name }}-x\"",
            "a: {{ tpl .Values.t . }}"
        ),
        "a: nm-x"
    );
}

#[test]
fn merge_and_merge_overwrite() {
    assert_eq!(
        render("", "{{- $a := dict \"x\" 1 \"y\" \"\" }}{{- $_ := merge $a (dict \"x\" 2 \"y\" \"b\" \"z\" 3) }}a: {{ $a }}\n{{- $c := dict \"x\" 1 }}{{- $_ := mergeOverwrite $c (dict \"x\" 2) }}\nc: {{ $c }}"),
        "a: map[x:1 y:b z:3]\nc: map[x:2]"
    );
}

#[test]
fn yaml_11_booleans_in_values() {
    assert_eq!(
        render(
            "a: yes\nb: on\nc: 'yes'",
            "x: {{ .Values.a }} {{ .Values.b }} {{ .Values.c }}"
        ),
        "x: true true yes"
    );
}

#[test]
fn set_values_override_and_null_deletes() {
    let c = chart_with(
        "a: 1\nb: {c: 2, d: 3}",
        &[("t.yaml", "x: {{ toJson .Values }}")],
    );
    let mut o = opts();
    o.values_files = vec![("f".into(), "b: {d: null}".into())];
    o.set = vec!["a=5,e.f=true".into()];
    let r = template(&c, &o).unwrap();
    assert_eq!(r[0].content, r#"x: {"a":5,"b":{"c":2},"e":{"f":true}}"#);
}

#[test]
fn output_is_sorted_by_kind_and_framed_like_helm() {
    let c = chart_with(
        "",
        &[
            ("a.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"),
            ("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n\n---\n# only a comment\n"),
            ("NOTES.txt", "notes"),
            ("_helpers.tpl", "{{ define \"x\" }}{{ end }}"),
        ],
    );
    let r = template(&c, &opts()).unwrap();
    assert_eq!(
        to_helm_output(&r),
        "---\n# Source: t/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n# Source: t/templates/a.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n---\n# Source: t/templates/b.yaml\n---\n# only a comment\n"
    );
}

#[test]
fn chart_and_release_objects() {
    assert_eq!(
        render("", "a: {{ .Chart.Name }} {{ .Chart.AppVersion }} {{ .Release.Name }} {{ .Release.Namespace }} {{ .Release.Service }} {{ .Capabilities.KubeVersion.Minor }} {{ .Template.Name }}"),
        "a: t 1.0 rel ns Helm 30 t/templates/t.yaml"
    );
}

#[test]
fn variables_assign_and_scope() {
    assert_eq!(
        render(
            "",
            "{{- $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ end }}a: {{ $x }}"
        ),
        "a: 2"
    );
}

/// A chart from (path, content) pairs, for dependency tests.
fn chart_files(files: &[(&str, &[u8])]) -> Chart {
    let m: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect();
    Chart::from_files(m).unwrap()
}

fn output(c: &Chart, set: &[&str]) -> Result<String, String> {
    let mut o = opts();
    o.set = set.iter().map(|s| s.to_string()).collect();
    template(c, &o)
        .map(|r| to_helm_output(&r))
        .map_err(|e| e.to_string())
}

const SUB_CHART: &[u8] = b"apiVersion: v2\nname: sub\nversion: 1.2.0\n";
const SUB_TPL: &[u8] = b"{{ define \"sub.n\" }}{{ .Chart.Name }}-{{ .Values.v }}{{ end }}\nname: {{ .Chart.Name }}\nv: {{ .Values.v }}\n";

fn alias_chart() -> Chart {
    chart_files(&[
        (
            "Chart.yaml",
            b"apiVersion: v2\nname: p\nversion: 1.0.0\ndependencies:\n  - name: sub\n    alias: one\n    version: \"1.x\"\n    condition: one.enabled\n  - name: sub\n    alias: two\n    version: \"1.x\"\n    condition: two.enabled,other.x\n  - name: other\n    version: \"2.0.0\"\n    tags: [t1]\n",
        ),
        (
            "values.yaml",
            b"one: {enabled: true, v: 1}\ntwo: {enabled: false}\ntags: {t1: true}\n",
        ),
        (
            "templates/a.yaml",
            b"subs: {{ keys .Subcharts | sortAlpha | toJson }}\noneName: {{ .Subcharts.one.Chart.Name }} {{ .Subcharts.one.Values.v }} {{ .Subcharts.one.Chart.IsRoot }}\ntpl: {{ include \"sub.n\" .Subcharts.one }}\n",
        ),
        ("charts/sub/Chart.yaml", SUB_CHART),
        ("charts/sub/values.yaml", b"v: 0\nenabled: true\n"),
        ("charts/sub/templates/s.yaml", SUB_TPL),
        (
            "charts/other/Chart.yaml",
            b"apiVersion: v2\nname: other\nversion: 2.0.0\n",
        ),
        ("charts/other/values.yaml", b"x: true\n"),
        ("charts/other/templates/o.yaml", b"o: {{ .Values.x }}\n"),
    ])
}

// Expected output from helm v4.1.4.
#[test]
fn dependency_aliases_conditions_tags_and_subcharts() {
    let c = alias_chart();
    assert_eq!(
        output(&c, &[]).unwrap(),
        "---\n# Source: p/charts/one/templates/s.yaml\nname: one\nv: 1\n---\n# Source: p/charts/other/templates/o.yaml\no: true\n---\n# Source: p/templates/a.yaml\nsubs: [\"one\",\"other\"]\noneName: one 1 false\ntpl: one-1\n"
    );
    // a false tag drops `other`; `two` is enabled by its first condition
    assert_eq!(
        output(&c, &["tags.t1=false", "two.enabled=true"]).unwrap(),
        "---\n# Source: p/charts/one/templates/s.yaml\nname: one\nv: 1\n---\n# Source: p/charts/two/templates/s.yaml\nname: two\nv: 0\n---\n# Source: p/templates/a.yaml\nsubs: [\"one\",\"two\"]\noneName: one 1 false\ntpl: one-1\n"
    );
}

#[test]
fn chart_dependencies_list_enabled_ones_under_aliases() {
    let c = chart_files(&[
        (
            "Chart.yaml",
            b"apiVersion: v2\nname: p\nversion: 1.0.0\ndependencies:\n  - name: sub\n    alias: one\n    version: \"1.x\"\n    condition: one.enabled\n  - name: sub\n    version: \"1.x\"\n    condition: sub.on\n",
        ),
        ("values.yaml", b"sub: {on: false}\n"),
        ("templates/a.yaml", b"d: {{ toJson .Chart.Dependencies }}\n"),
        ("charts/sub/Chart.yaml", SUB_CHART),
        ("charts/sub/templates/s.yaml", b"# x\n"),
    ]);
    let out = output(&c, &[]).unwrap();
    assert!(
        // `on` is a YAML 1.1 boolean key, so `sub.on` is not found and `sub` stays enabled
        out.ends_with("d: [{\"Alias\":\"one\",\"Condition\":\"one.enabled\",\"Enabled\":true,\"ImportValues\":[],\"Name\":\"one\",\"Repository\":\"\",\"Tags\":[],\"Version\":\"1.x\"},{\"Alias\":\"\",\"Condition\":\"sub.on\",\"Enabled\":true,\"ImportValues\":[],\"Name\":\"sub\",\"Repository\":\"\",\"Tags\":[],\"Version\":\"1.x\"}]\n"),
        "{out}"
    );
}

#[test]
fn missing_dependency_is_helms_error_and_requirements_yaml_is_read() {
    let c = chart_files(&[
        ("Chart.yaml", b"apiVersion: v1\nname: q\nversion: 1.0.0\n"),
        (
            "requirements.yaml",
            b"dependencies:\n- name: sub\n  version: 1.x\n  condition: sub.on\n- name: gone\n  version: 1.0.0\n- name: gone2\n  alias: g\n  version: 1.0.0\n",
        ),
        ("templates/a.yaml", b"x: 1\n"),
        ("charts/sub/Chart.yaml", SUB_CHART),
        ("charts/sub/templates/s.yaml", SUB_TPL),
    ]);
    assert_eq!(
        output(&c, &[]).unwrap_err(),
        "an error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: gone, gone2"
    );
    let c = chart_files(&[
        ("Chart.yaml", b"apiVersion: v1\nname: q\nversion: 1.0.0\n"),
        (
            "requirements.yaml",
            b"dependencies:\n- name: sub\n  version: 1.x\n  condition: sub.on\n",
        ),
        ("templates/a.yaml", b"x: {{ len .Chart.Dependencies }}\n"),
        ("charts/sub/Chart.yaml", SUB_CHART),
        ("charts/sub/templates/s.yaml", SUB_TPL),
    ]);
    assert_eq!(
        output(&c, &["sub.on=false"]).unwrap(),
        "---\n# Source: q/templates/a.yaml\nx: 0\n"
    );
}

#[test]
fn tgz_subchart_archives_are_loaded() {
    // what `helm package` writes: a gzipped tar with the chart under its name
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        for (p, d) in [
            ("sub/Chart.yaml", SUB_CHART),
            ("sub/values.yaml", b"v: 7\n".as_slice()),
            ("sub/templates/s.yaml", SUB_TPL),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, p, d).unwrap();
        }
        b.finish().unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar_bytes).unwrap();
    let tgz = gz.finish().unwrap();
    let c = chart_files(&[
        (
            "Chart.yaml",
            b"apiVersion: v2\nname: p\nversion: 1.0.0\ndependencies:\n  - name: sub\n    version: 1.x\n",
        ),
        ("charts/sub-1.2.0.tgz", &tgz),
    ]);
    assert_eq!(
        output(&c, &[]).unwrap(),
        "---\n# Source: p/charts/sub/templates/s.yaml\nname: sub\nv: 7\n"
    );
    // a broken archive is an error, not a panic
    let c = chart_files(&[
        ("Chart.yaml", b"apiVersion: v2\nname: p\nversion: 1.0.0\n"),
        ("charts/sub-1.2.0.tgz", b"not gzip"),
    ]);
    assert!(output(&c, &[])
        .unwrap_err()
        .contains("error unpacking subchart sub-1.2.0.tgz in p"));
}

#[test]
fn hex_float_literals() {
    assert_eq!(
        render(
            "",
            "a: {{ 0x1p60 }}\nb: {{ mulf 2 0x1p-2 }}\nc: {{ 0x1.8p1 }}\nd: {{ -0x1p3 }}\ne: {{ 0x_1p4 }}"
        ),
        "a: 1.152921504606847e+18\nb: 0.5\nc: 3\nd: -8\ne: 16"
    );
}

#[test]
fn nil_map_arguments_like_go() {
    // a nil variable or pipeline is a nil map; a field holding no value is an error
    assert_eq!(
        render(
            "m: {}",
            "# {{ hasKey nil \"x\" }} {{ mustMergeOverwrite (dict \"a\" 1) nil | toJson }} {{ keys (.Values.nope) | toJson }} {{ $x := .Values.nope }}{{ hasKey $x \"a\" }} {{ .Values.nope | keys | toJson }}"
        ),
        "# false {\"a\":1} [] false []"
    );
    assert_eq!(
        render_err("m: {}", "# {{ hasKey .Values.m.nope \"a\" }}"),
        "t/templates/t.yaml:1:19\n  executing \"t/templates/t.yaml\" at <.Values.m.nope>:\n    wrong type for value; expected map[string]interface {}; got interface {}"
    );
}

#[test]
fn dig_errors_like_sprig() {
    assert!(render_err("m: {s: str}", "# {{ dig \"s\" \"b\" \"def\" .Values.m }}").ends_with(
        "error calling dig: interface conversion: interface {} is string, not map[string]interface {}"
    ));
    assert!(render_err("", "# {{ dig \"a\" \"b\" \"def\" .Values.nope }}").ends_with(
        "error calling dig: interface conversion: interface {} is nil, not map[string]interface {}"
    ));
}

#[test]
fn yaml_alias_of_a_mapping_is_a_copy() {
    assert_eq!(
        render(
            "image: &image\n  repo: a\n  tag: 1\nother:\n  image: *image\nmerged:\n  <<: *image\n  tag: 2\n",
            "# {{ toJson .Values }}"
        ),
        "# {\"image\":{\"repo\":\"a\",\"tag\":1},\"merged\":{\"repo\":\"a\",\"tag\":2},\"other\":{\"image\":{\"repo\":\"a\",\"tag\":1}}}"
    );
}

#[test]
fn files_glob_ranges_over_bytes() {
    let c = chart_files(&[
        ("Chart.yaml", b"apiVersion: v2\nname: fb\nversion: 0.1.0\n"),
        ("files/b.txt", b"x: 1"),
        (
            "templates/t.yaml",
            b"{{- range $p, $c := .Files.Glob \"files/*\" }}\n# {{ $c | toString | quote }} {{ len $c }} {{ typeOf $c }} {{ kindOf $c }} {{ toJson $c }}\n{{- end }}\n# {{ .Files.GetBytes \"files/b.txt\" }}\n",
        ),
    ]);
    assert_eq!(
        output(&c, &[]).unwrap(),
        "---\n# Source: fb/templates/t.yaml\n# \"x: 1\" 4 []uint8 slice \"eDogMQ==\"\n# [120 58 32 49]\n"
    );
}

#[test]
fn go_regex_syntax() {
    // expected output from helm v4.1.4
    assert_eq!(
        render(
            "",
            r#"# {{ regexMatch "^[\\w-\\.]+$" "my-master.x_1" }} {{ regexMatch "^[\\w-\\.]+$" "a b" }} {{ regexFindAll "\\d+" "a1b22c٣" -1 | toJson }} {{ regexFindAll "\\w+" "héllo wörld" -1 | toJson }} {{ regexFindAll "[\\D]" "a1b2" -1 | toJson }} {{ regexFindAll "[]a]" "]ab" -1 | toJson }} {{ regexFindAll "[[:alpha:]-z]+" "ab-z1" -1 | toJson }} {{ regexFindAll "[a[]+" "a[b" -1 | toJson }}"#
        ),
        r#"# true false ["1","22"] ["h","llo","w","rld"] ["a","b"] ["]","a"] ["ab-z"] ["a["]"#
    );
}

#[test]
fn certificate_functions() {
    // shape as helm v4.1.4 prints it (the content is random)
    let out = render(
        "",
        "# {{ $ca := genCA \"x-ca\" 365 }}{{ $c := genSignedCert \"n\" nil (list \"a.b\" \"c\") 365 $ca }}{{ $s := genSelfSignedCert \"m\" (list \"10.0.0.1\") nil 10 }}{{ $c.Key | substr 0 31 }} {{ $s.Cert | substr 0 27 }} {{ genPrivateKey \"foo\" }}",
    );
    assert_eq!(
        out,
        "# -----BEGIN RSA PRIVATE KEY----- -----BEGIN CERTIFICATE----- Unknown type foo"
    );
    assert!(render_err(
        "",
        "# {{ genSelfSignedCert \"m\" (list \"notanip\") nil 10 }}"
    )
    .ends_with("error calling genSelfSignedCert: error parsing ip: notanip"));
    assert!(render_err(
        "",
        "# {{ $c := buildCustomCert \"bm9wZQ==\" \"bm9wZQ==\" }}"
    )
    .ends_with("error calling buildCustomCert: unable to decode certificate"));
}

#[test]
fn go_path_clean_and_dir() {
    // expected output from helm v4.1.4
    assert_eq!(
        render(
            "",
            r#"# {{ clean "" }}|{{ clean "a//b/./c/.." }}|{{ clean "/../a/" }}|{{ clean "../../x/../y" }}|{{ clean "./" }}|{{ osClean "/a/b/../../.." }}|{{ clean "a/../.." }}"#
        ),
        "# .|a/b|/a|../../y|.|/|.."
    );
    assert_eq!(
        render(
            "",
            r#"# {{ dir "" }}|{{ dir "/" }}|{{ dir "a/b/" }}|{{ dir "a//b" }}|{{ dir "/x" }}|{{ dir "x" }}|{{ dir "a/./b/../c" }}|{{ osDir "//a" }}"#
        ),
        "# .|/|a/b|a|/|.|a|/"
    );
}

#[test]
fn base32_like_go() {
    // expected output from helm v4.1.4
    assert_eq!(
        render(
            "",
            r#"# {{ b32enc "" }}|{{ b32enc "f" }}|{{ b32enc "fo" }}|{{ b32enc "foo" }}|{{ b32enc "foob" }}|{{ b32enc "fooba" }}|{{ b32enc "foobar" }}"#
        ),
        "# |MY======|MZXQ====|MZXW6===|MZXW6YQ=|MZXW6YTB|MZXW6YTBOI======"
    );
    assert_eq!(
        render(
            "",
            r#"# {{ b32dec "MZXW6YTBOI======" }}|{{ b32dec "MY======" }}|{{ b32dec "" }}|{{ b32dec "MZXW6" }}|{{ b32dec "MZ1W6YTB" }}|{{ b32dec "M=======" }}|{{ b32dec "MY======MY======" }}|{{ b32dec "mzxw6ytb" }}"#
        ),
        "# foobar|f||illegal base32 data at input byte 0|illegal base32 data at input byte 2|illegal base32 data at input byte 1|illegal base32 data at input byte 2|illegal base32 data at input byte 0"
    );
}

/// Functions on edge inputs, each expected output as helm v4.1.4 renders it.
#[test]
fn functions_behave_as_helms_on_edge_inputs() {
    let values = "big: 9223372036854775807\nnegz: -0.0\nl: [1, 2.5, \"x\", null, true]\n";
    for (expr, helm) in [
        // Go's conversions and arithmetic: float64 past int64 is the minimum int64, ints wrap
        ("int .Values.big", "-9223372036854775808"),
        ("add1 .Values.big", "-9223372036854775807"),
        ("atoi \"99999999999999999999\"", "9223372036854775807"),
        ("round -1.5 0", "-2"),
        ("round 2.345 2", "2.35"),
        // a whole float constant is an integer constant
        ("plural \"one\" \"many\" 1.0", "one"),
        ("trunc 1e1 \"hello world\"", "hello worl"),
        // fmt
        ("printf \"%v %f\" .Values.negz .Values.negz", "-0 -0.000000"),
        ("printf \"%[2]v %[1]v\" 1 2", "2 1"),
        ("printf \"%[3]v\" 1", "%!v(BADINDEX)"),
        ("printf \"%6.2v|\" 3.14159", "   3.1|"),
        ("printf \"%5.|\" 3", "%!|(int=    3)"),
        ("printf \"%#v\" .Values.l", "[]interface {}{1, 2.5, \"x\", interface {}(nil), true}"),
        // goutils' wrapping
        ("wrapWith 3 \"<br>\" \"abcdefgh ij kl\"", "abc<br>def<br>gh<br>ij<br>kl"),
        ("wrap 5 \"abcdefgh ij kl  mn\"", "abcdefgh\nij kl\n mn"),
        ("abbrevboth 5 10 \"1234 5678 9123\"", "...5678..."),
        // encodings and decodings as Go reports them
        ("b64dec \"aGVsbG8\"", "illegal base64 data at input byte 4"),
        ("b64dec \"aGVsbA=\"", "illegal base64 data at input byte 7"),
        ("fromJson \"[1,2]\" | toJson", "{\"Error\":\"json: cannot unmarshal array into Go value of type map[string]interface {}\"}"),
        ("fromJson \"null\" | toJson", "null"),
        ("fromJsonArray \"{}\" | toJson", "[\"json: cannot unmarshal object into Go value of type []interface {}\"]"),
        // Go's Regexp.Split
        ("regexSplit \"x*\" \"axbc\" -1 | toJson", "[\"a\",\"b\",\"c\"]"),
        ("regexSplit \",\" \"a,b,c\" 2 | toJson", "[\"a\",\"b,c\"]"),
        ("chunk 2 (list 1 2 3) | toJson", "[[1,2],[3]]"),
        ("sortAlpha .Values.missing | toJson", "[\"\\u003cnil\\u003e\"]"),
        ("urlquery .Values.missing", "%3Cno+value%3E"),
        ("urlParse \"https://u:p@host:8080/p/a?q=1#frag\" | toJson", "{\"fragment\":\"frag\",\"host\":\"host:8080\",\"hostname\":\"host\",\"opaque\":\"\",\"path\":\"/p/a\",\"query\":\"q=1\",\"scheme\":\"https\",\"userinfo\":\"u:p\"}"),
        ("urlJoin (dict \"scheme\" \"http\" \"host\" \"h:80\" \"path\" \"a b\" \"fragment\" \"x y\")", "http://h:80/a%20b#x%20y"),
    ] {
        let out = render(values, &format!("v: {{{{ ({expr}) | quote }}}}\n"));
        let want = format!("v: {}", crate::value::go_quote(helm));
        assert_eq!(out.trim_end(), want, "{expr}");
    }
    for (expr, helm) in [
        (
            "substr 3 1 \"hello\"",
            "error calling substr: runtime error: slice bounds out of range [3:1]",
        ),
        (
            "repeat -1 \"ab\"",
            "error calling repeat: strings: negative Repeat count",
        ),
        (
            "seq .Values.big",
            "wrong type for value; expected int; got interface {}",
        ),
        ("seq 1.5", "expected integer; found 1.5"),
        (
            "maxf",
            "wrong number of args for maxf: want at least 1 got 0",
        ),
        (
            "deepCopy .Values.missing",
            "reflect: call of reflect.Value.Type on zero Value",
        ),
    ] {
        let e = render_err(values, &format!("v: {{{{ {expr} }}}}\n"));
        assert!(e.contains(helm), "{expr}: {e}");
    }
}

/// Masterminds' `*Version` and `Version` methods, as helm v4.1.4 renders them.
#[test]
fn semver_objects_have_masterminds_methods_by_receiver() {
    assert_eq!(
        render(
            "",
            r#"a: {{ list (semver "v1.2") (semver "1.2.3-b+m").IncPatch (semver "1.2.3").IncPatch (semver "1.2.3-b").IncMinor (semver "1.2.3").IncMajor ((semver "1.2.3").SetPrerelease "rc.1") ((semver "1.2.3-x").SetMetadata "") | join " " | quote }}
b: {{ list ((semver "1.2.3").GreaterThan (semver "1.2.3-a")) ((semver "1.2.3+a").Equal (semver "1.2.3+b")) ((semver "1.2.3").Compare (semver "1.2.3")) ((semver "2.0.0").Compare (semver "1.9.9")) ((semver "1.0.0").LessThanEqual (semver "1.0.0")) ((semver "1.0.0").GreaterThanEqual (semver "1.0.1")) | join " " | quote }}
c: {{ typeOf (semver "1.2.3").IncPatch }} {{ kindOf (semver "1.2.3").IncPatch }} {{ (semver "1.2.3").IncPatch.Major }} {{ (semver "v1.2").Original }}"#
        ),
        "a: \"1.2.0 1.2.3 1.2.4 1.3.0 2.0.0 1.2.3-rc.1 1.2.3-x\"\n\
         b: \"true true 0 1 true false\"\n\
         c: semver.Version struct 1 v1.2"
    );
    for (tpl, error) in [
        (
            r#"{{ (semver "1.2.3").SetPrerelease "01" }}"#,
            "error calling SetPrerelease: version segment starts with 0",
        ),
        (
            r#"{{ (semver "1.2.3").IncPatch.LessThan (semver "1.3.0") }}"#,
            "can't evaluate field LessThan in type semver.Version",
        ),
        (
            r#"{{ (semver "1.2.3").LessThan "1.3.0" }}"#,
            r#"can't handle "1.3.0" for arg of type *semver.Version"#,
        ),
    ] {
        let got = render_err("", tpl);
        assert!(got.contains(error), "{tpl}: {got}");
    }
}

#[test]
fn globs_match_as_helm_matches_them() {
    let cases = [
        ("*.swp", "a.swp", true),
        ("*.swp", "dir/a.swp", false),
        ("*", "", true),
        ("*", "a/b", false),
        ("**", "a/b", true),
        ("files/*.json", "files/a.json", true),
        ("files/*.json", "files/x/a.json", false),
        ("files/**.json", "files/x/a.json", true),
        ("?.txt", "a.txt", true),
        ("?.txt", "/.txt", false),
        ("[a-c]x", "bx", true),
        ("[!a-c]x", "bx", false),
        ("[^a-c]x", "dx", true),
        ("{a,bb}.yaml", "bb.yaml", true),
        ("{a,bb}.yaml", "c.yaml", false),
        ("\\*.md", "*.md", true),
        ("\\*.md", "a.md", false),
        ("OWNERS", "OWNERS", true),
        ("OWNERS", "OWNERS2", false),
        ("é*", "éa", true),
        ("*é", "aé", true),
        ("[é]", "é", true),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(funcs::glob_match(pattern, path), want, "{pattern} ~ {path}");
    }
}

#[test]
fn work_spread_over_threads_comes_back_in_order() {
    let items: Vec<u32> = (0..1000).collect();
    // a weight that puts the whole over the threshold, so threads are used
    let out = par_map(items, |_| PARALLEL_BYTES, |i| i * 2);
    assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(par_map(Vec::<u32>::new(), |_| 1, |i| i), Vec::<u32>::new());
}
