//! The `k3s` cluster: credentials envboot generates itself, the cloud-init user-data that
//! installs k3s with them on the server and agent instances, and the kubeconfig that follows
//! from Git plus the decryption key alone.
//!
//! The credentials (three CAs as k3s lays them out, an admin client certificate in
//! `system:masters`, and the join token) live in the repository age-encrypted
//! (`envboot cluster init`). They are decrypted in memory only; every value is registered as
//! sensitive, so output and errors show `(sensitive)` instead.

use serde::{Deserialize, Serialize};

/// The folder where k3s looks for CAs given to it before its first start.
pub const TLS_DIR: &str = "/var/lib/rancher/k3s/server/tls";
/// The port of the k3s API server.
pub const API_PORT: u16 = 6443;
/// The credentials file, relative to the environment's folder, unless `cluster.credentials` says.
pub const DEFAULT_CREDENTIALS: &str = "cluster.age";
/// Points envboot at another API server address (`https://HOST:PORT`) than the server
/// instance's public IP: a load balancer or tunnel in front of it, or a test server.
pub const ENDPOINT_VAR: &str = "ENVBOOT_K3S_ENDPOINT";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not generate the {what}: {message}")]
    Generate { what: &'static str, message: String },
    /// Never quotes the content: it is secret.
    #[error("the decrypted cluster credentials are not what `envboot cluster init` writes: {0}")]
    Malformed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertAndKey {
    pub cert: String,
    pub key: String,
}

/// What `envboot cluster init` generates, stored encrypted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Credentials {
    /// The shared secret servers and agents join with.
    pub token: String,
    /// Signs the API server's serving certificate; clients trust it.
    pub server_ca: CertAndKey,
    /// Signs client certificates; the API server trusts it.
    pub client_ca: CertAndKey,
    /// Signs the front proxy's client certificate (API aggregation).
    pub request_header_ca: CertAndKey,
    /// envboot's own client certificate: `CN=envboot-admin`, `O=system:masters`.
    pub admin: CertAndKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(sensitive)")
    }
}

fn generate_error(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Generate {
        what,
        message: e.to_string(),
    }
}

/// The parameters of one of the cluster's CAs (also what signs with it: the issuer's name
/// and key identifier follow from these and the key).
fn ca_params(common_name: &str) -> Result<rcgen::CertificateParams> {
    use rcgen::{BasicConstraints, DnType, IsCa, KeyUsagePurpose};
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(generate_error("CA parameters"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    Ok(params)
}

/// The common names of the three CAs, as k3s names its own.
const SERVER_CA: &str = "k3s-server-ca";
const CLIENT_CA: &str = "k3s-client-ca";
const REQUEST_HEADER_CA: &str = "k3s-request-header-ca";

fn new_ca(common_name: &str) -> Result<CertAndKey> {
    let key = rcgen::KeyPair::generate().map_err(generate_error("CA key"))?;
    let cert = ca_params(common_name)?
        .self_signed(&key)
        .map_err(generate_error("CA certificate"))?;
    Ok(CertAndKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a certificate signed by `ca` (one of the cluster's CAs, named `ca_name`).
fn issue(
    ca: &CertAndKey,
    ca_name: &str,
    params: rcgen::CertificateParams,
    what: &'static str,
) -> Result<CertAndKey> {
    let ca_key = rcgen::KeyPair::from_pem(&ca.key).map_err(|e| Error::Malformed(e.to_string()))?;
    let issuer = rcgen::Issuer::new(ca_params(ca_name)?, ca_key);
    let key = rcgen::KeyPair::generate().map_err(generate_error(what))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate_error(what))?;
    Ok(CertAndKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Generate {
        what: "join token",
        message: e.to_string(),
    })?;
    Ok(hex::encode(buf))
}

impl Credentials {
    /// Fresh CAs, admin certificate and token.
    pub fn generate() -> Result<Credentials> {
        let client_ca = new_ca(CLIENT_CA)?;
        let mut admin = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(generate_error("admin certificate"))?;
        admin
            .distinguished_name
            .push(rcgen::DnType::CommonName, "envboot-admin");
        admin
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        admin.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        admin.not_before = rcgen::date_time_ymd(2020, 1, 1);
        admin.not_after = rcgen::date_time_ymd(2125, 1, 1);
        let admin = issue(&client_ca, CLIENT_CA, admin, "admin certificate")?;
        Ok(Credentials {
            token: random_hex(32)?,
            server_ca: new_ca(SERVER_CA)?,
            client_ca,
            request_header_ca: new_ca(REQUEST_HEADER_CA)?,
            admin,
        })
    }

    /// Parses the decrypted file. Registers every value as sensitive first.
    pub fn parse(plaintext: &[u8]) -> Result<Credentials> {
        let creds: Credentials = serde_yaml_ng::from_slice(plaintext).map_err(|e| {
            // Only the location: the message could quote the content.
            Error::Malformed(match e.location() {
                Some(l) => format!("line {}, column {}", l.line(), l.column()),
                None => "not a YAML map".into(),
            })
        })?;
        creds.register_sensitive();
        Ok(creds)
    }

    /// Marks every secret value as sensitive, so that output shows `(sensitive)` instead.
    pub fn register_sensitive(&self) {
        let mut values = vec![self.token.as_str()];
        for ck in [
            &self.server_ca,
            &self.client_ca,
            &self.request_header_ca,
            &self.admin,
        ] {
            values.push(ck.key.as_str());
            values.extend(pem_body_lines(&ck.key));
        }
        crate::sensitive::register_sensitive(values);
    }

    /// The file `envboot cluster init` encrypts.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml_ng::to_string(self).unwrap_or_default();
        format!("# k3s cluster credentials generated by `envboot cluster init`. Keep encrypted.\n{body}")
    }

    /// A serving certificate for an API server at `names` (IPs or DNS names), signed by the
    /// server CA: what k3s issues itself on the server; also used to stand in for it in tests.
    pub fn serving_certificate(&self, names: &[&str]) -> Result<CertAndKey> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params =
            rcgen::CertificateParams::new(names).map_err(generate_error("serving certificate"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "k3s");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        issue(&self.server_ca, SERVER_CA, params, "serving certificate")
    }

    /// The kubeconfig for the API server at `endpoint` (`https://HOST:PORT`), as YAML.
    pub fn kubeconfig_yaml(&self, cluster: &str, endpoint: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {
                "server": endpoint,
                "certificate-authority-data": b64(&self.server_ca.cert),
            }}],
            "users": [{"name": format!("{cluster}-admin"), "user": {
                "client-certificate-data": b64(&self.admin.cert),
                "client-key-data": b64(&self.admin.key),
            }}],
            "contexts": [{"name": cluster, "context": {
                "cluster": cluster,
                "user": format!("{cluster}-admin"),
            }}],
            "current-context": cluster,
        });
        serde_yaml_ng::to_string(&doc).unwrap_or_default()
    }
}

/// The base64 lines of a PEM block (how a key appears when split over lines).
fn pem_body_lines(pem: &str) -> impl Iterator<Item = &str> {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
}

/// What a node's user-data is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub environment: String,
    pub cluster: String,
    /// k3s release to install (`v1.33.5+k3s1`): pinned, so a rebuild installs what Git says.
    pub version: String,
    /// Address of k3s's install script.
    pub install_script: String,
}

/// The role of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Server,
    /// Joins the server at this address (an IP, or a reference resolved at apply time).
    Agent {
        server: String,
    },
}

/// Indents every line of `text` by `n` spaces (a YAML block scalar's content).
fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `s` as one shell word (quoted by shlex where it must be; a NUL byte, which no shell word
/// can hold, is dropped: validation rejects it before).
fn shell_word(s: &str) -> String {
    shlex::try_quote(&s.replace('\0', ""))
        .map(|q| q.into_owned())
        .unwrap_or_default()
}

/// A YAML double-quoted string.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The cloud-init user-data (`#cloud-config`) of a node: the CAs (server only) and k3s's
/// configuration written as files, then k3s installed at the pinned version. No SSH, no
/// copying files off the server: the kubeconfig follows from the same credentials.
pub fn user_data(creds: &Credentials, node: &NodeSettings, role: &Role) -> String {
    let mut files: Vec<(String, &str, String)> = Vec::new();
    let mut config = String::new();
    config.push_str(&format!("token: {}\n", quoted(&creds.token)));
    config.push_str(&format!(
        "node-label:\n  - {}\n  - {}\n",
        quoted(&format!("envboot.dev/environment={}", node.environment)),
        quoted(&format!(
            "envboot.dev/role={}",
            match role {
                Role::Server => "server",
                Role::Agent { .. } => "agent",
            }
        )),
    ));
    let mode = match role {
        Role::Server => {
            for (name, ck) in [
                ("server-ca", &creds.server_ca),
                ("client-ca", &creds.client_ca),
                ("request-header-ca", &creds.request_header_ca),
            ] {
                files.push((format!("{TLS_DIR}/{name}.crt"), "0644", ck.cert.clone()));
                files.push((format!("{TLS_DIR}/{name}.key"), "0600", ck.key.clone()));
            }
            config.push_str("write-kubeconfig-mode: \"0600\"\n");
            config.push_str("tls-san:\n  - kubernetes\n  - localhost\n");
            "server"
        }
        Role::Agent { server } => {
            config.push_str(&format!(
                "server: {}\n",
                quoted(&format!("https://{server}:{API_PORT}"))
            ));
            "agent"
        }
    };
    files.push(("/etc/rancher/k3s/config.yaml".into(), "0600", config));
    // On a server, the API server's certificate also names the instance's public IP, read
    // from the instance metadata service (IMDSv2).
    let public_ip = match role {
        Role::Server => "imds() {\n\
             \x20 t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) &&\n\
             \x20 curl -sf -H \"X-aws-ec2-metadata-token: $t\" \"http://169.254.169.254/latest/meta-data/$1\"\n\
             }\n\
             ip=$(imds public-ipv4 || true)\n\
             if [ -n \"$ip\" ]; then extra=\"--tls-san $ip\"; fi\n",
        Role::Agent { .. } => "",
    };
    let install = format!(
        "#!/bin/sh\n\
         # Installs k3s {shown} ({mode}), pinned by the environment in Git.\n\
         set -eu\n\
         extra=''\n\
         {public_ip}\
         curl -sfL --retry 10 --retry-all-errors {script} |\n\
         \x20 INSTALL_K3S_VERSION={version} INSTALL_K3S_EXEC=\"{mode} $extra\" sh -s -\n",
        version = shell_word(&node.version),
        shown = node.version.escape_debug(),
        script = shell_word(&node.install_script),
    );
    files.push((
        "/usr/local/lib/envboot/install-k3s.sh".into(),
        "0700",
        install,
    ));
    let mut out = String::from("#cloud-config\n");
    out.push_str(&format!(
        "# k3s {mode} of cluster {} (environment {}), written by envboot.\n",
        node.cluster, node.environment
    ));
    out.push_str("write_files:\n");
    for (path, permissions, content) in &files {
        out.push_str(&format!(
            "  - path: {path}\n    owner: root:root\n    permissions: \"{permissions}\"\n    content: |\n{}\n",
            indent(content.trim_end(), 6)
        ));
    }
    out.push_str("runcmd:\n  - [/usr/local/lib/envboot/install-k3s.sh]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Credentials {
        let ck = |name: &str| CertAndKey {
            cert: format!("-----BEGIN CERTIFICATE-----\n{name}-cert\n-----END CERTIFICATE-----\n"),
            key: format!("-----BEGIN PRIVATE KEY-----\n{name}-key\n-----END PRIVATE KEY-----\n"),
        };
        Credentials {
            token: "0123456789abcdef-golden-token".into(),
            server_ca: ck("server-ca"),
            client_ca: ck("client-ca"),
            request_header_ca: ck("request-header-ca"),
            admin: ck("admin"),
        }
    }

    fn node() -> NodeSettings {
        NodeSettings {
            environment: "edge".into(),
            cluster: "edge".into(),
            version: "v1.33.5+k3s1".into(),
            install_script: "https://get.k3s.io".into(),
        }
    }

    /// The package's folder: as cargo gives it when it runs the test (a test binary built in a
    /// shared target directory from a checkout elsewhere is reused as it is), else as compiled.
    fn manifest_dir() -> std::path::PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    }

    /// Compares with `tests/golden/<name>`; `ENVBOOT_BLESS=1` rewrites the file.
    fn golden(name: &str, actual: &str) {
        let path = manifest_dir().join("../../tests/golden").join(name);
        if std::env::var_os("ENVBOOT_BLESS").is_some() {
            std::fs::write(&path, actual).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&path).expect("golden file");
        assert_eq!(
            actual, expected,
            "{name} differs from its golden file (ENVBOOT_BLESS=1 rewrites it)"
        );
    }

    #[test]
    fn server_user_data_matches_its_golden_file() {
        golden(
            "k3s-server.user-data",
            &user_data(&fixture(), &node(), &Role::Server),
        );
    }

    #[test]
    fn agent_user_data_matches_its_golden_file() {
        let role = Role::Agent {
            server: "${cluster.server.private_ip}".into(),
        };
        golden(
            "k3s-agent.user-data",
            &user_data(&fixture(), &node(), &role),
        );
    }

    #[test]
    fn user_data_is_yaml_whose_files_hold_exactly_the_credentials() {
        let creds = fixture();
        let text = user_data(&creds, &node(), &Role::Server);
        assert!(text.starts_with("#cloud-config\n"));
        let doc: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        let files = doc["write_files"].as_array().expect("write_files");
        let content = |path: &str| {
            files
                .iter()
                .find(|f| f["path"] == path)
                .and_then(|f| f["content"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            content(&format!("{TLS_DIR}/server-ca.key")),
            creds.server_ca.key
        );
        assert_eq!(
            content(&format!("{TLS_DIR}/client-ca.crt")),
            creds.client_ca.cert
        );
        let config: serde_json::Value =
            serde_yaml_ng::from_str(&content("/etc/rancher/k3s/config.yaml")).expect("config");
        assert_eq!(config["token"], creds.token.as_str());
        // The admin's key never leaves the operator: it is not on any node.
        assert!(!text.contains("admin-key"));
        let agent = user_data(
            &creds,
            &node(),
            &Role::Agent {
                server: "10.0.0.5".into(),
            },
        );
        assert!(!agent.contains("server-ca-key") && !agent.contains("client-ca-key"));
        let doc: serde_json::Value = serde_yaml_ng::from_str(&agent).expect("YAML");
        let config = doc["write_files"]
            .as_array()
            .and_then(|f| {
                f.iter()
                    .find(|f| f["path"] == "/etc/rancher/k3s/config.yaml")
            })
            .and_then(|f| f["content"].as_str())
            .unwrap_or_default();
        assert!(config.contains("server: \"https://10.0.0.5:6443\""));
    }

    #[test]
    fn generated_credentials_round_trip_and_chain_to_their_cas() {
        let creds = Credentials::generate().expect("generate");
        let again = Credentials::parse(creds.to_yaml().as_bytes()).expect("parse");
        assert_eq!(creds, again);
        assert_eq!(creds.token.len(), 64);
        assert_ne!(creds.server_ca.cert, creds.client_ca.cert);
        // A second generation shares nothing with the first.
        let other = Credentials::generate().expect("generate");
        assert_ne!(creds.token, other.token);
        assert_ne!(creds.admin.key, other.admin.key);
        let serving = creds
            .serving_certificate(&["127.0.0.1", "kubernetes"])
            .expect("serving certificate");
        assert!(serving.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        let config: serde_json::Value =
            serde_yaml_ng::from_str(&creds.kubeconfig_yaml("edge", "https://127.0.0.1:6443"))
                .expect("kubeconfig");
        assert_eq!(config["current-context"], "edge");
        // Parsing registered the keys: they never print.
        assert_eq!(
            crate::sensitive::redact(&format!("x {} y", creds.token)),
            "x (sensitive) y"
        );
    }

    #[test]
    fn the_install_script_quotes_what_the_environment_sets() {
        let creds = Credentials::generate().expect("credentials");
        let mut node = node();
        node.version = "v1.33.5+k3s1$(reboot)\nreboot".into();
        node.install_script = "https://example.test/k3s;reboot".into();
        let data = user_data(
            &creds,
            &node,
            &Role::Agent {
                server: "10.0.0.1".into(),
            },
        );
        assert!(
            data.contains("INSTALL_K3S_VERSION='v1.33.5+k3s1$(reboot)"),
            "{data}"
        );
        assert!(data.contains("'https://example.test/k3s;reboot'"), "{data}");
        assert!(
            data.contains("# Installs k3s v1.33.5+k3s1$(reboot)\\nreboot (agent)"),
            "{data}"
        );
    }

    #[test]
    fn malformed_credentials_are_reported_without_their_content() {
        let err = Credentials::parse(b"token: [hunter2-not-shown").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("line"), "{err}");
    }
}
