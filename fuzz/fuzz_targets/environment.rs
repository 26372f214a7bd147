//! Any bytes as `environment.yaml` (next to the project's real modules and chart) must load or
//! fail with diagnostics, never panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut files = BTreeMap::new();
    files.insert("environments/f/environment.yaml".to_string(), data.to_vec());
    files.insert("environments/f/config/app.properties".to_string(), b"a=b\n".to_vec());
    for (path, text) in [
        ("modules/network/module.yaml", include_str!("../../modules/network/module.yaml")),
        ("modules/web-tier/module.yaml", include_str!("../../modules/web-tier/module.yaml")),
        ("modules/hello/Chart.yaml", include_str!("../../modules/hello/Chart.yaml")),
        ("modules/hello/values.yaml", include_str!("../../modules/hello/values.yaml")),
        ("modules/hello/templates/deployment.yaml", include_str!("../../modules/hello/templates/deployment.yaml")),
        ("modules/hello/templates/configmap.yaml", include_str!("../../modules/hello/templates/configmap.yaml")),
    ] {
        files.insert(path.to_string(), text.as_bytes().to_vec());
    }
    let snapshot = envboot::source::Snapshot::from_files("0000000000000000000000000000000000000000", files);
    if let Ok(env) = envboot::model::load(&snapshot, "f") {
        let _ = envboot::render::render(&env, &[]);
    }
});
