//! Secrets: age-encrypted files in the repository, decrypted only in memory.
//!
//! A secret file holds a YAML map of names to string values, encrypted with age (ASCII armour)
//! to the recipients listed in `.age-recipients` at the repository root (one `age1...` public
//! key per line, `#` comments). The identity that decrypts them lives outside Git: the file named
//! by `ENVBOOT_AGE_IDENTITY_FILE`, or the key itself in `ENVBOOT_AGE_IDENTITY`.
//!
//! # Guarantees
//! - Plaintext never leaves memory: nothing here writes it anywhere but to the caller.
//! - Every value shown to a user (plan, diff, render, errors) is [`SENSITIVE`] instead.

use std::io::{Read, Write};
use std::str::FromStr;

pub use envboot_core::sensitive::{redact, register_sensitive, MIN_REDACTED_LEN, SENSITIVE};
/// Environment variable naming the identity file.
pub const IDENTITY_FILE_VAR: &str = "ENVBOOT_AGE_IDENTITY_FILE";
/// Environment variable holding the identity itself (`AGE-SECRET-KEY-1...`).
pub const IDENTITY_VAR: &str = "ENVBOOT_AGE_IDENTITY";
/// The repository file listing the recipients new secrets are encrypted to.
pub const RECIPIENTS_FILE: &str = ".age-recipients";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no age identity: set {IDENTITY_FILE_VAR} to an identity file or {IDENTITY_VAR} to the key"
    )]
    NoIdentity,
    #[error("cannot read the age identity file {path}: {source}")]
    IdentityUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the age identity in {origin} is not valid: {message}")]
    BadIdentity { origin: String, message: String },
    #[error("invalid age recipient `{recipient}`: {message}")]
    BadRecipient { recipient: String, message: String },
    #[error("no recipients: list age public keys in {RECIPIENTS_FILE} or pass --recipient")]
    NoRecipients,
    #[error("cannot read the recipients file {path}: {source}")]
    RecipientsUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the error is about the input (a key, a recipient, a file's content: exit 3) rather
    /// than reading or writing a file (exit 1).
    pub fn is_input(&self) -> bool {
        !matches!(self, Error::File { .. })
    }
}

/// A file error naming the file.
pub fn file_error<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::File {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The identities that may decrypt, from the environment (never from the repository).
pub fn identities_from_env() -> Result<Vec<age::x25519::Identity>> {
    let (text, origin) = if let Ok(key) = std::env::var(IDENTITY_VAR) {
        (key, IDENTITY_VAR.to_string())
    } else if let Ok(path) = std::env::var(IDENTITY_FILE_VAR) {
        let text = std::fs::read_to_string(&path).map_err(|source| Error::IdentityUnreadable {
            path: path.clone(),
            source,
        })?;
        (text, path)
    } else {
        return Err(Error::NoIdentity);
    };
    parse_identities(&text, &origin)
}

/// The key generated chart values (`randAlphaNum`, `uuidv4`, ...) derive from in plan and
/// apply: the first age identity's, for `environment`; `None` without an identity.
pub fn randomness_key(environment: &str) -> Option<[u8; 32]> {
    use age::secrecy::ExposeSecret;
    let identities = identities_from_env().ok()?;
    let secret = identities.first()?.to_string();
    Some(envboot_core::render::environment_randomness(
        secret.expose_secret().as_bytes(),
        environment,
    ))
}

/// Parses identity lines (`AGE-SECRET-KEY-1...`), skipping blank lines and `#` comments.
pub fn parse_identities(text: &str, origin: &str) -> Result<Vec<age::x25519::Identity>> {
    let identities: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            age::x25519::Identity::from_str(l).map_err(|e| Error::BadIdentity {
                origin: origin.to_string(),
                message: e.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    if identities.is_empty() {
        return Err(Error::BadIdentity {
            origin: origin.to_string(),
            message: "no AGE-SECRET-KEY line".into(),
        });
    }
    Ok(identities)
}

/// Parses recipient lines (`age1...`), skipping blank lines and `#` comments.
pub fn parse_recipients(text: &str) -> Result<Vec<age::x25519::Recipient>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            age::x25519::Recipient::from_str(l).map_err(|e| Error::BadRecipient {
                recipient: l.to_string(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Encrypts `plaintext` to every recipient, ASCII-armoured (diff-friendly in Git).
pub fn encrypt(plaintext: &[u8], recipients: &[age::x25519::Recipient]) -> Result<String> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Encrypt(e.to_string()))?;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    let mut writer = encryptor
        .wrap_output(armor)
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| Error::Encrypt(e.to_string()))?;
    String::from_utf8(out).map_err(|e| Error::Encrypt(e.to_string()))
}

/// Decrypts an age file (armoured or binary) with any of the identities.
pub fn decrypt(ciphertext: &[u8], identities: &[age::x25519::Identity]) -> Result<Vec<u8>> {
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(ciphertext))
        .map_err(|e| Error::Decrypt(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| Error::Decrypt(e.to_string()))?;
    let mut plaintext = Vec::new();
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| Error::Decrypt(e.to_string()))?;
    Ok(plaintext)
}

/// The nearest `.age-recipients` file in `start` or a folder above it.
pub fn find_recipients_file(start: &std::path::Path) -> Option<std::path::PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(RECIPIENTS_FILE))
        .find(|path| path.is_file())
}

/// Recipients given on the command line, else those of the nearest `.age-recipients`.
pub fn recipients(
    given: &[String],
    start: &std::path::Path,
) -> Result<Vec<age::x25519::Recipient>> {
    if !given.is_empty() {
        return parse_recipients(&given.join("\n"));
    }
    let path = find_recipients_file(start).ok_or(Error::NoRecipients)?;
    let text = std::fs::read_to_string(&path).map_err(|source| Error::RecipientsUnreadable {
        path: path.display().to_string(),
        source,
    })?;
    let list = parse_recipients(&text)?;
    if list.is_empty() {
        return Err(Error::NoRecipients);
    }
    Ok(list)
}

/// Opens `path` (an encrypted file) decrypted in `editor`, then encrypts what was saved back to
/// `recipients`. The plaintext lives in a private temporary file (in memory where `/dev/shm`
/// exists), removed afterwards.
pub fn edit(
    path: &std::path::Path,
    editor: &str,
    recipients: &[age::x25519::Recipient],
) -> Result<()> {
    let io = |e: std::io::Error| Error::Encrypt(e.to_string());
    let identities = identities_from_env()?;
    let plaintext = match std::fs::read(path) {
        Ok(ciphertext) => decrypt(&ciphertext, &identities)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let shm = std::path::Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("envboot-secret-").suffix(".yaml");
    let mut temp = if shm.is_dir() {
        builder.tempfile_in(shm)
    } else {
        builder.tempfile()
    }
    .map_err(io)?;
    temp.write_all(&plaintext).map_err(io)?;
    temp.flush().map_err(io)?;
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(temp.path())
        .status()
        .map_err(io)?;
    if !status.success() {
        return Err(Error::Encrypt(format!(
            "the editor `{editor}` failed; nothing was changed"
        )));
    }
    let edited = std::fs::read(temp.path()).map_err(io)?;
    std::fs::write(path, encrypt(&edited, recipients)?).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn registered_values_and_their_base64_are_redacted_wherever_they_appear() {
        register_sensitive(["s3cr3t-Value-for-redact", "abc"]);
        assert_eq!(
            redact("url=postgres://u:s3cr3t-Value-for-redact@db"),
            "url=postgres://u:(sensitive)@db"
        );
        assert_eq!(
            redact("czNjcjN0LVZhbHVlLWZvci1yZWRhY3Q="),
            "(sensitive)",
            "base64 form"
        );
        assert_eq!(
            redact("abc stays: too short to be masked"),
            "abc stays: too short to be masked"
        );
    }

    use super::*;

    #[test]
    fn encrypted_text_is_armoured_and_round_trips_only_with_the_right_identity() {
        let identity = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let armoured = encrypt(b"password: hunter2\n", &[identity.to_public()]).unwrap();
        assert!(armoured.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!armoured.contains("hunter2"));
        assert_eq!(
            decrypt(armoured.as_bytes(), &[identity]).unwrap(),
            b"password: hunter2\n"
        );
        assert!(matches!(
            decrypt(armoured.as_bytes(), &[other]),
            Err(Error::Decrypt(_))
        ));
    }

    #[test]
    fn recipients_and_identities_skip_comments() {
        let identity = age::x25519::Identity::generate();
        let text = format!("# ops team\n{}\n\n", identity.to_public());
        assert_eq!(parse_recipients(&text).unwrap().len(), 1);
        assert!(matches!(
            parse_recipients("age1nope"),
            Err(Error::BadRecipient { .. })
        ));
        assert!(matches!(
            parse_identities("# nothing\n", "x"),
            Err(Error::BadIdentity { .. })
        ));
    }
}
