//! `envboot validate`: check the files, references and templates, with no API call.

use clap::Args;
use envboot::engine::{self, exit};

use super::shared::{report_loaded, Target};

/// Check the environment's files, references and templates; makes no API call.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    target: Target,
}

pub fn run(args: ValidateArgs) -> engine::Result<u8> {
    let target = &args.target;
    let validated = engine::validate(&target.source_options(), target.environment())?;
    let loaded = &validated.loaded;
    report_loaded(target.environment(), loaded);
    println!(
        "Environment {} is valid: {} AWS resources, {} Kubernetes objects.",
        target.environment(),
        loaded.env.resources.len(),
        loaded.manifests.len()
    );
    if !validated.decrypted {
        println!("Encrypted files were not decrypted (no age identity: set ENVBOOT_AGE_IDENTITY_FILE or ENVBOOT_AGE_IDENTITY): their content was not checked.");
    }
    Ok(exit::OK)
}
