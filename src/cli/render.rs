//! `envboot render`: the Kubernetes objects as YAML, on standard output or one file each.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::Target;

/// Print the Kubernetes objects the environment renders to, as YAML. Without --cluster it makes
/// no API call and renders as `helm template` does; with it, as plan and apply render.
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    target: Target,
    /// Render for the environment's live cluster, as plan and apply do and as
    /// `helm install --dry-run=server` does: `.Capabilities` and `lookup` from the cluster
    /// (read-only), `.Release.IsUpgrade` for releases it holds.
    #[arg(long)]
    cluster: bool,
    /// Write one file per object into this folder instead (NNN-kind-namespace-name.yaml).
    #[arg(long, value_name = "DIR")]
    output_dir: Option<std::path::PathBuf>,
    /// Leave out the releases' Helm hooks (printed after the other objects, as
    /// `helm template` does; apply runs them at their phases).
    #[arg(long)]
    no_hooks: bool,
}

pub async fn run(args: RenderArgs) -> engine::Result<u8> {
    let (mut objects, hooks) = if args.cluster {
        engine::render_live(&args.target.load_for_cluster()?).await?
    } else {
        let loaded = args.target.load()?;
        (loaded.manifests, loaded.hooks)
    };
    if !args.no_hooks {
        objects.extend(hooks);
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
