//! What `helm install` does that `helm template` does not: `.Capabilities` from the cluster,
//! `lookup` answered from it, and random values from a chosen source.

use std::sync::Arc;

use super::limits_tests::{chart, opts};
use super::*;

fn render(tpl: &str, o: &Options) -> Result<(String, BTreeSet<LookupKey>), Error> {
    let c = chart("", &[("t.yaml", tpl)])?;
    let r = template_with_lookups(&c, o)?;
    let text: String = r.rendered.iter().map(|r| r.content.as_str()).collect();
    Ok((text.trim_end().to_string(), r.unread))
}

fn key(api_version: &str, kind: &str, namespace: &str, name: &str) -> LookupKey {
    LookupKey {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

#[test]
fn capabilities_are_the_clusters_when_it_is_asked() {
    let tpl = "v: {{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}\nhas: {{ .Capabilities.APIVersions.Has \"example.com/v1/Widget\" }} {{ .Capabilities.APIVersions.Has \"batch/v1\" }}\n";
    let (offline, _) = render(tpl, &opts()).unwrap();
    assert_eq!(offline, "v: v1.30.0 1.30\nhas: false true");
    let o = Options {
        cluster: Some(ClusterCapabilities {
            git_version: "v1.27.3+k3s1".into(),
            major: "1".into(),
            minor: "27+".into(),
            api_versions: vec![
                "v1".into(),
                "example.com/v1".into(),
                "example.com/v1/Widget".into(),
            ],
        }),
        ..opts()
    };
    // exactly what the cluster serves: no default set beside it
    let (live, _) = render(tpl, &o).unwrap();
    assert_eq!(live, "v: v1.27.3+k3s1 1.27+\nhas: true false");
}

#[test]
fn a_charts_kube_version_constraint_is_checked_against_the_cluster() {
    let mut c = chart("", &[("t.yaml", "a: 1\n")]).unwrap();
    c.files.insert(
        "Chart.yaml".into(),
        b"apiVersion: v2\nname: t\nversion: 0.1.0\nkubeVersion: '>= 1.25.0-0'\n"
            .to_vec()
            .into(),
    );
    let c = Chart::from_file_data(c.files).unwrap();
    let old = Options {
        cluster: Some(ClusterCapabilities {
            git_version: "v1.20.2".into(),
            major: "1".into(),
            minor: "20".into(),
            api_versions: vec!["v1".into()],
        }),
        ..opts()
    };
    let e = template(&c, &old).unwrap_err().to_string();
    assert!(e.contains("v1.20.2"), "{e}");
    assert!(template(&c, &opts()).is_ok());
}

#[test]
fn lookups_without_a_cluster_are_empty_and_with_one_are_answered_or_reported() {
    let tpl = "{{ $cm := lookup \"v1\" \"ConfigMap\" \"ns\" \"settings\" }}found: {{ with $cm.data }}{{ .level }} {{ add .replicas 1 }}{{ end }}\n{{ $gone := lookup \"v1\" \"Secret\" \"ns\" \"gone\" }}gone: {{ len $gone }}\n";
    // helm template: every lookup is an empty map, and nothing is asked for
    let (text, unread) = render(tpl, &opts()).unwrap();
    assert_eq!(text, "found: \ngone: 0");
    assert!(unread.is_empty());
    // a first render against a cluster names what it needs
    let o = Options {
        lookups: Some(Arc::new(Lookups::default())),
        ..opts()
    };
    let (_, unread) = render(tpl, &o).unwrap();
    assert_eq!(
        unread.into_iter().collect::<Vec<_>>(),
        vec![
            key("v1", "ConfigMap", "ns", "settings"),
            key("v1", "Secret", "ns", "gone")
        ]
    );
    // and once read, integers are integers as Kubernetes' unstructured JSON decodes them
    let mut found = Lookups::default();
    found.found.insert(
        key("v1", "ConfigMap", "ns", "settings"),
        Ok(serde_json::json!({"data": {"level": "debug", "replicas": 3}})),
    );
    found.found.insert(
        key("v1", "Secret", "ns", "gone"),
        Ok(serde_json::Value::Null),
    );
    let o = Options {
        lookups: Some(Arc::new(found)),
        ..opts()
    };
    let (text, unread) = render(tpl, &o).unwrap();
    assert_eq!(text, "found: debug 4\ngone: 0");
    assert!(unread.is_empty());
}

#[test]
fn a_lookup_the_cluster_refused_fails_the_render_as_helm_install_does() {
    let mut found = Lookups::default();
    found.found.insert(
        key("example.com/v1", "Widget", "", ""),
        Err("the server could not find the requested resource".into()),
    );
    let o = Options {
        lookups: Some(Arc::new(found)),
        ..opts()
    };
    let e = render("{{ lookup \"example.com/v1\" \"Widget\" \"\" \"\" }}", &o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("error calling lookup: the server could not find the requested resource"),
        "{e}"
    );
}

#[test]
fn random_values_are_fresh_unless_derived_from_a_key_and_then_stable_per_file() {
    let tpl = "v: {{ randAlphaNum 24 }} {{ uuidv4 }} {{ shuffle \"abcdefghijkl\" }}";
    let draw = |o: &Options, files: &[(&str, &str)]| {
        let c = chart("", files).unwrap();
        template(&c, o)
            .unwrap()
            .into_iter()
            .map(|r| (r.source, r.content))
            .collect::<BTreeMap<_, _>>()
    };
    let fresh = |n| draw(&opts(), &[("a.yaml", tpl)]).remove(n).unwrap();
    assert_ne!(fresh("t/templates/a.yaml"), fresh("t/templates/a.yaml"));
    let keyed = |k: u8| Options {
        randomness: Randomness::Derived([k; 32]),
        ..opts()
    };
    let one = draw(&keyed(1), &[("a.yaml", tpl)]);
    assert_eq!(one, draw(&keyed(1), &[("a.yaml", tpl)]));
    assert_ne!(one, draw(&keyed(2), &[("a.yaml", tpl)]));
    // a file added before it draws from its own stream: a.yaml's values do not move
    let more = draw(&keyed(1), &[("0.yaml", tpl), ("a.yaml", tpl)]);
    assert_eq!(more["t/templates/a.yaml"], one["t/templates/a.yaml"]);
    assert_ne!(more["t/templates/0.yaml"], one["t/templates/a.yaml"]);
    let text = &one["t/templates/a.yaml"];
    let words: Vec<&str> = text.trim_start_matches("v: ").split(' ').collect();
    assert_eq!(words[0].len(), 24, "{text}");
    assert!(
        words[0].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{text}"
    );
    assert_eq!(&words[1][14..15], "4", "{text}");
}

#[test]
fn from_json_nests_to_gos_limit() {
    let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let deep = format!(
        "{{{{ $v := fromJsonArray {:?} }}}}n: {{{{ len $v }}}}",
        nested(10_000)
    );
    let (text, _) = render(&deep, &opts()).unwrap();
    assert_eq!(text, "n: 1");
    let too = format!(
        "e: {{{{ fromJsonArray {:?} | first | quote }}}}",
        nested(10_001)
    );
    let (text, _) = render(&too, &opts()).unwrap();
    assert_eq!(text, "e: \"invalid character '[' exceeded max depth\"");
}

#[test]
fn a_render_says_whether_it_drew_random_values() {
    let drew = |tpl: &str| {
        let c = chart("", &[("t.yaml", tpl)]).unwrap();
        !template_with_lookups(&c, &opts())
            .unwrap()
            .random
            .is_empty()
    };
    assert!(!drew("a: {{ \"x\" | upper }}\n"));
    assert!(drew("a: {{ randAlphaNum 3 }}\n"));
    assert!(drew("a: {{ (genCA \"ca\" 30).Cert | b64enc }}\n"));
    // a branch never taken draws nothing
    assert!(!drew("{{ if false }}a: {{ uuidv4 }}{{ end }}\n"));
}

#[test]
fn a_render_says_whether_it_read_what_the_cluster_says_of_itself() {
    let read = |tpl: &str| {
        let c = chart("", &[("t.yaml", tpl)]).unwrap();
        template_with_lookups(&c, &opts()).unwrap().capabilities
    };
    assert!(!read("a: {{ .Release.Name }}\n"));
    assert!(read(
        "a: {{ .Capabilities.APIVersions.Has \"batch/v1\" }}\n"
    ));
    assert!(read("a: {{ .Capabilities.KubeVersion.Minor }}\n"));
    assert!(read(
        "a: {{ semverCompare \">=1.19\" .Capabilities.KubeVersion.Version }}\n"
    ));
    assert!(read("a: {{ len .Capabilities.APIVersions }}\n"));
    assert!(!read(
        "{{ if false }}a: {{ .Capabilities.KubeVersion }}{{ end }}\n"
    ));
}

#[test]
fn a_render_says_whether_it_may_differ_on_upgrade() {
    let rendering = |files: &[(&str, &str)], values: &str| {
        let c = chart("", files).unwrap();
        let mut o = opts();
        o.values_files = vec![("v.yaml".into(), values.into())];
        template_with_lookups(&c, &o).unwrap().install_state
    };
    let t = |tpl: &str| rendering(&[("t.yaml", tpl)], "");
    assert!(!t("a: {{ .Release.Name }}\n"));
    assert!(t("a: {{ .Release.IsUpgrade }}\n"));
    // named in a branch never taken, it may be read on another render
    assert!(t("{{ if false }}a: {{ .Release.IsInstall }}{{ end }}\n"));
    // a values string a template passes to `tpl`
    assert!(rendering(
        &[("t.yaml", "a: {{ tpl .Values.x . }}\n")],
        "x: '{{ .Release.IsInstall }}'\n"
    ));

    // and an upgrade renders as Helm's does
    let c = chart(
        "",
        &[(
            "t.yaml",
            "up: {{ .Release.IsUpgrade }}\ninstall: {{ .Release.IsInstall }}\n",
        )],
    )
    .unwrap();
    let mut o = opts();
    o.is_upgrade = true;
    let out = template_with_lookups(&c, &o).unwrap().rendered;
    assert!(
        out[0].content.contains("up: true\ninstall: false"),
        "{}",
        out[0].content
    );
}

#[test]
fn certificates_and_keys_derive_from_the_key_and_are_then_the_same_on_every_render() {
    let tpl = r#"{{- $ca := genCA "my-ca" 365 }}
{{- $c := genSignedCert "svc" (list "10.0.0.1") (list "svc.ns") 30 $ca }}
ca: {{ $ca.Cert | b64enc }}
caKey: {{ $ca.Key | b64enc }}
cert: {{ $c.Cert | b64enc }}
self: {{ (genSelfSignedCert "me" nil nil 10).Cert | b64enc }}
ec: {{ genPrivateKey "ecdsa" | b64enc }}
ed: {{ genPrivateKey "ed25519" | b64enc }}
rsa: {{ genPrivateKey "rsa" | b64enc }}
"#;
    let render = |o: &Options| {
        let c = chart("", &[("a.yaml", tpl)]).unwrap();
        let text = template(&c, o).unwrap().remove(0).content;
        let v = crate::yaml::parse(&text).unwrap();
        let Value::Map(m) = v else { panic!("{text}") };
        let out: BTreeMap<String, String> = m
            .borrow()
            .iter()
            .map(|(k, v)| {
                use base64::Engine as _;
                let b = base64::engine::general_purpose::STANDARD
                    .decode(crate::value::strval(v))
                    .unwrap();
                (k.clone(), String::from_utf8(b).unwrap())
            })
            .collect();
        out
    };
    let keyed = |k: u8| Options {
        randomness: Randomness::Derived([k; 32]),
        ..opts()
    };
    let one = render(&keyed(1));
    assert_eq!(one, render(&keyed(1)));
    let other = render(&keyed(2));
    for k in ["ca", "caKey", "cert", "self", "ec", "ed", "rsa"] {
        assert_ne!(one[k], other[k], "{k}");
    }
    let fresh = render(&opts());
    assert_ne!(fresh["ec"], render(&opts())["ec"]);
    // Sprig's encodings
    assert!(one["caKey"].starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(one["rsa"].starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(one["ec"].starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
    assert!(one["ed"].starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(one["cert"].starts_with("-----BEGIN CERTIFICATE-----\n"));
    for key in [&one["ec"], &fresh["ec"]] {
        let der = pem_body(key);
        assert!(p256::SecretKey::from_sec1_der(&der).is_ok(), "{key}");
    }
    // the CA that signed the certificate is the one returned
    let ca = rcgen::KeyPair::from_pem(&one["caKey"]).unwrap();
    assert!(rcgen::Issuer::from_ca_cert_pem(&one["ca"], ca).is_ok());

    // a lifetime no clock can hold is an error, not a panic
    let c = chart(
        "",
        &[("a.yaml", "a: {{ (genCA \"x\" 9223372036854775807).Cert }}")],
    )
    .unwrap();
    let e = template(&c, &keyed(1)).unwrap_err().to_string();
    assert!(e.contains("is out of range"), "{e}");
}

fn pem_body(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
