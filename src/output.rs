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
    let documents = render::to_yaml_documents(manifests);
    for (text, name) in documents.iter().zip(render::file_names(manifests)) {
        let path = dir.join(name);
        std::fs::write(&path, envboot_core::sensitive::redact(text).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
