//! Files the CLI writes for the user.

use envboot_core::render;

/// Writes one file per manifest into `dir` (created if missing), Secrets' data masked as in
/// `render::to_yaml_stream`. Returns the paths written.
pub fn write_files(
    manifests: &[render::Manifest],
    dir: &std::path::Path,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (m, name) in manifests.iter().zip(render::file_names(manifests)) {
        let path = dir.join(name);
        let text = format!(
            "# Source: {}\n{}",
            m.source,
            serde_yaml_ng::to_string(&render::mask(&m.object)).unwrap_or_default()
        );
        std::fs::write(&path, envboot_core::sensitive::redact(&text).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
