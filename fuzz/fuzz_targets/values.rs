//! Any bytes as a values file and as `--set` text, read as Helm reads them (go-yaml v2's
//! scalars, anchors and aliases with its limits, nesting to 10,000, tabs after colons) and
//! merged into a chart's values, must render or fail with an error, never panic or hang.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        b"apiVersion: v2\nname: c\nversion: 1.0.0\n".to_vec(),
    );
    files.insert("values.yaml".to_string(), b"a: {b: 1}\nlist: [x]\n".to_vec());
    files.insert(
        "templates/t.yaml".to_string(),
        b"v: {{ toJson .Values | quote }}\ny: {{ toYaml .Values | b64enc }}\n".to_vec(),
    );
    let Ok(chart) = envboot_helm::Chart::from_files(files) else { return };
    let options = envboot_helm::Options {
        release_name: "r".into(),
        namespace: "ns".into(),
        values_files: vec![("f.yaml".into(), text.clone())],
        set: vec![text.lines().next().unwrap_or_default().to_string()],
        max_steps: Some(100_000),
        ..Default::default()
    };
    let _ = envboot_helm::template(&chart, &options);
    // and as envboot reads a values file for its own checks
    let _ = envboot::diag::parse_as_helm::<Option<serde_json::Value>>("f.yaml", &text);
});
