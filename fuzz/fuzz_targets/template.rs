//! Any text as a chart template, rendered by the Helm-compatible engine with a few values, must
//! render or fail with an error, never panic or hang (the render's step budget is lowered so
//! that a loop ends quickly; the bounds are the engine's own otherwise).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut files = BTreeMap::new();
    files.insert(
        "Chart.yaml".to_string(),
        b"apiVersion: v2\nname: c\nversion: 1.0.0\n".to_vec(),
    );
    files.insert(
        "values.yaml".to_string(),
        b"name: web\nport: 80\nlist: [1, two, {three: 3}]\nmap: {a: {b: null}}\non: true\n".to_vec(),
    );
    files.insert("templates/t.yaml".to_string(), data.to_vec());
    let Ok(chart) = envboot_helm::Chart::from_files(files) else { return };
    let options = envboot_helm::Options {
        release_name: "r".into(),
        namespace: "ns".into(),
        kube_version: "1.30.0".into(),
        max_steps: Some(100_000),
        lookups: Some(std::sync::Arc::default()),
        randomness: envboot_helm::Randomness::Derived([7; 32]),
        ..Default::default()
    };
    let _ = envboot_helm::template_with_lookups(&chart, &options);
});
