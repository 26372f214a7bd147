//! `envboot kubeconfig`: a k3s cluster's kubeconfig, from Git and the age identity.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::Source;

/// Print the kubeconfig of the environment's k3s cluster, from Git and the age identity
/// alone (no SSH). It holds the admin key: keep it out of Git.
#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    #[command(flatten)]
    source: Source,
}

pub async fn run(args: KubeconfigArgs) -> engine::Result<u8> {
    let loaded = engine::load(&args.source.options(), &args.source.environment)?;
    let text = engine::kubeconfig(&loaded).await?;
    // Not through the redacting macros: the key is the point of this output.
    use std::io::Write;
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|source| engine::Error::Output {
            path: "standard output".into(),
            source,
        })?;
    Ok(exit::OK)
}
