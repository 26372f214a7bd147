//! Any text as a chart template, rendered by the Helm-compatible engine with a few values, must
//! render or fail with an error, never panic or hang.
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
        api_versions: Vec::new(),
        values_files: Vec::new(),
        set: Vec::new(),
        set_string: Vec::new(),
        is_upgrade: false,
    };
    let _ = envboot_helm::template(&chart, &options);
});
