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
