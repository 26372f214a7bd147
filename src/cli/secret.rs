//! `envboot secret encrypt|decrypt|edit`: age-encrypted secret files.

use clap::Subcommand;
use envboot::engine::{self, exit};
use envboot::secrets;

// The subcommands of `envboot secret` (its help text is on `Command::Secret`).
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Encrypt a YAML map of names to values (a plain file outside Git) to the recipients.
    Encrypt {
        /// The plain file.
        file: std::path::PathBuf,
        /// Where to write the encrypted file (default: FILE.age).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// An age public key (`age1...`); default: the keys in the nearest .age-recipients.
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
    },
    /// Print a secret file decrypted (to the terminal only; never redirect it into the repository).
    Decrypt { file: std::path::PathBuf },
    /// Edit a secret file in $EDITOR, decrypted in memory, and encrypt it again.
    Edit {
        file: std::path::PathBuf,
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
    },
}

pub fn run(command: SecretCommand) -> engine::Result<u8> {
    secret(command).map_err(|e| engine::Error::Secret {
        origin: "envboot secret".into(),
        message: e.to_string(),
    })
}

fn secret(command: SecretCommand) -> Result<u8, secrets::Error> {
    let io = |e: std::io::Error| secrets::Error::Encrypt(e.to_string());
    let here = std::env::current_dir().map_err(io)?;
    match command {
        SecretCommand::Encrypt {
            file,
            output,
            recipients,
        } => {
            let recipients = secrets::recipients(&recipients, &here)?;
            let plaintext = std::fs::read(&file).map_err(io)?;
            let out = output.unwrap_or_else(|| {
                let mut name = file.clone().into_os_string();
                name.push(".age");
                name.into()
            });
            std::fs::write(&out, secrets::encrypt(&plaintext, &recipients)?).map_err(io)?;
            eprintln!(
                "envboot: encrypted to {} recipient(s): {}",
                recipients.len(),
                out.display()
            );
        }
        SecretCommand::Decrypt { file } => {
            let ciphertext = std::fs::read(&file).map_err(io)?;
            let plaintext = secrets::decrypt(&ciphertext, &secrets::identities_from_env()?)?;
            use std::io::Write;
            std::io::stdout().write_all(&plaintext).map_err(io)?;
        }
        SecretCommand::Edit { file, recipients } => {
            let recipients = secrets::recipients(&recipients, &here)?;
            let editor = std::env::var("VISUAL")
                .or_else(|_| std::env::var("EDITOR"))
                .unwrap_or_else(|_| "vi".into());
            secrets::edit(&file, &editor, &recipients)?;
        }
    }
    Ok(exit::OK)
}
