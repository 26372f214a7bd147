//! `envboot cluster init`: a k3s cluster's credentials, age-encrypted into the repository.

use clap::Subcommand;
use envboot::engine::{self, exit};

// The subcommands of `envboot cluster` (its help text is on `Command::Cluster`).
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Generate a k3s cluster's CAs, admin certificate (system:masters) and join token, and
    /// write them age-encrypted to environments/<ENVIRONMENT>/cluster.age; commit that file.
    Init {
        /// Name of the environment: its folder under environments/.
        environment: String,
        /// Where the repository's working tree is.
        #[arg(long, default_value = ".", value_name = "PATH")]
        repo: std::path::PathBuf,
        /// The file, relative to the environment's folder (what `cluster.credentials` names).
        #[arg(long, default_value = envboot::k3s::DEFAULT_CREDENTIALS)]
        file: String,
        /// An age public key (`age1...`); default: the keys in the nearest .age-recipients.
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
        /// Replace existing credentials (a new cluster: every node is replaced on the next apply).
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: ClusterCommand) -> engine::Result<u8> {
    let ClusterCommand::Init {
        environment,
        repo,
        file,
        recipients,
        force,
    } = command;
    let dir = repo.join("environments").join(&environment);
    if !dir.join("environment.yaml").is_file() {
        return Err(engine::Error::Secret {
            origin: dir.display().to_string(),
            message: "no environment.yaml here: create the environment first".into(),
        });
    }
    let path = dir.join(&file);
    let recipients =
        envboot::secrets::recipients(&recipients, &dir).map_err(|e| engine::Error::Secret {
            origin: "envboot cluster init".into(),
            message: e.to_string(),
        })?;
    engine::cluster_init(&path, &recipients, force)?;
    println!(
        "Wrote the k3s cluster's credentials, encrypted to {} recipient(s): {}\nCommit it; `envboot apply {environment}` installs k3s with them.",
        recipients.len(),
        path.display()
    );
    Ok(exit::OK)
}
