//! Any text as a chart template must render or fail with an error, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let root = serde_json::json!({
        "Values": {"name": "web", "port": 80, "list": [1, "two", {"three": 3}], "map": {"a": {"b": null}}, "on": true},
        "Release": {"Name": "r", "Namespace": "ns"},
        "Chart": {"Name": "c", "Version": "1.0.0"},
    });
    let _ = envboot::render::template::render(text, &root);
});
