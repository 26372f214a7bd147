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
    /// Print a secret file decrypted: to the terminal only, or to the file `--output` names
    /// (never into the repository).
    Decrypt {
        file: std::path::PathBuf,
        /// Write the plaintext to this file instead of the terminal.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
    },
    /// Edit a secret file in $EDITOR, decrypted in memory, and encrypt it again.
    Edit {
        file: std::path::PathBuf,
        #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
        recipients: Vec<String>,
    },
}

pub fn run(command: SecretCommand) -> engine::Result<u8> {
    secret(command).map_err(|e| match e {
        Refusal::Secret(e) if e.is_input() => engine::Error::Secret {
            origin: "envboot secret".into(),
            message: e.to_string(),
        },
        Refusal::Secret(e) => engine::Error::File(e.to_string()),
        Refusal::NotATerminal => engine::Error::Refused {
            why: "secret decrypt writes plaintext only to a terminal: name a file with --output (outside the repository) to write it there".into(),
        },
    })
}

enum Refusal {
    Secret(secrets::Error),
    NotATerminal,
}

impl From<secrets::Error> for Refusal {
    fn from(e: secrets::Error) -> Refusal {
        Refusal::Secret(e)
    }
}

fn secret(command: SecretCommand) -> Result<u8, Refusal> {
    let here =
        std::env::current_dir().map_err(secrets::file_error("read", std::path::Path::new(".")))?;
    match command {
        SecretCommand::Encrypt {
            file,
            output,
            recipients,
        } => {
            let recipients = secrets::recipients(&recipients, &here)?;
            let plaintext = std::fs::read(&file).map_err(secrets::file_error("read", &file))?;
            let out = output.unwrap_or_else(|| {
                let mut name = file.clone().into_os_string();
                name.push(".age");
                name.into()
            });
            std::fs::write(&out, secrets::encrypt(&plaintext, &recipients)?)
                .map_err(secrets::file_error("write", &out))?;
            eprintln!(
                "envboot: encrypted to {} recipient(s): {}",
                recipients.len(),
                out.display()
            );
        }
        SecretCommand::Decrypt { file, output } => {
            use std::io::{IsTerminal, Write};
            if output.is_none() && !std::io::stdout().is_terminal() {
                return Err(Refusal::NotATerminal);
            }
            let ciphertext = std::fs::read(&file).map_err(secrets::file_error("read", &file))?;
            let plaintext = secrets::decrypt(&ciphertext, &secrets::identities_from_env()?)?;
            match &output {
                Some(out) => {
                    std::fs::write(out, &plaintext).map_err(secrets::file_error("write", out))?
                }
                None => std::io::stdout()
                    .write_all(&plaintext)
                    .map_err(secrets::file_error("write", std::path::Path::new("stdout")))?,
            }
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
