//! Any text as a rendered manifest, read as Kubernetes clients read it (sigs.k8s.io/yaml:
//! go-yaml v2, then JSON) and written back as YAML, must round-trip or fail with an error,
//! never panic: what is read back from the written YAML is what was read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(value) = envboot_helm::manifest::to_json(&text) {
        let written = envboot_helm::manifest::to_yaml(&value);
        let again = envboot_helm::manifest::to_json(&written)
            .unwrap_or_else(|e| panic!("written YAML does not read back: {e}\n{written}"));
        assert_eq!(value, again, "{written}");
    }
});
