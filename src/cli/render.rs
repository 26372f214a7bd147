//! `envboot render`: the Kubernetes objects as YAML, on standard output or one file each.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::Target;

/// Print the Kubernetes objects the environment renders to, as YAML; makes no API call.
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    target: Target,
    /// Write one file per object into this folder instead (NNN-kind-namespace-name.yaml).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<std::path::PathBuf>,
    /// Leave out the releases' Helm hooks (printed after the other objects, as
    /// `helm template` does; apply runs them at their phases).
    #[arg(long)]
    no_hooks: bool,
}

pub fn run(args: RenderArgs) -> engine::Result<u8> {
    let loaded = args.target.load()?;
    let mut objects = loaded.manifests;
    if !args.no_hooks {
        objects.extend(loaded.hooks);
    }
    match args.output_dir {
        None => print!("{}", envboot::render::to_yaml_stream(&objects)),
        Some(dir) => {
            let written = envboot::output::write_files(&objects, &dir).map_err(|e| {
                engine::Error::Output {
                    path: dir.display().to_string(),
                    source: e,
                }
            })?;
            eprintln!("wrote {} files to {}", written.len(), dir.display());
        }
    }
    Ok(exit::OK)
}
