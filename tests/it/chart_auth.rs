//! A chart from an OCI registry that asks for credentials: Debian's `docker-registry` with
//! htpasswd (basic) authentication over plain HTTP on 127.0.0.1, the chart pushed by the real
//! `helm push --username --password`. `envboot charts lock` without credentials is refused
//! (exit 7, "not authorized"); with Docker's `config.json`, or `ENVBOOT_CHART_USERNAME` and
//! `ENVBOOT_CHART_PASSWORD` for the hosts `ENVBOOT_CHART_HOSTS` names, it locks; the password
//! is never printed, nor sent to a host it is not for.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine;

use crate::common::*;

const USER: &str = "chartreader";
const PASSWORD: &str = "Pw-4f9c1e7a-never-printed";

/// The htpasswd line `user:<bcrypt hash>` (the only scheme docker-registry reads), made by
/// whatever is here: apache2-utils' `htpasswd -B`, Python's `bcrypt`, or the C library's
/// `crypt` with a `$2b$` salt (libxcrypt, through Perl); or why none of them can.
fn htpasswd_entry(user: &str, password: &str) -> Result<String, String> {
    let attempts: [(&str, Vec<&str>); 3] = [
        ("htpasswd", vec!["-Bbn", user, password]),
        (
            "python3",
            vec![
                "-c",
                "import bcrypt, sys; print(sys.argv[1] + ':' + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(5)).decode())",
                user,
                password,
            ],
        ),
        (
            "perl",
            vec![
                "-e",
                "print $ARGV[0], ':', crypt($ARGV[1], '$2b$05$' . join('', map { ('.', '/', 0..9, 'A'..'Z', 'a'..'z')[rand 64] } 1..21) . 'e'), qq(\\n)",
                user,
                password,
            ],
        ),
    ];
    let mut tried = Vec::new();
    for (program, args) in attempts {
        let line = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if let Some(hash) = line
            .as_deref()
            .and_then(|l| l.strip_prefix(&format!("{user}:")))
        {
            if hash.starts_with("$2") && hash.len() == 60 {
                return Ok(format!("{user}:{hash}\n"));
            }
        }
        tried.push(program);
    }
    Err(format!(
        "no bcrypt for an htpasswd file (tried {}: install apache2-utils or python3-bcrypt)",
        tried.join(", ")
    ))
}

/// A docker-registry with htpasswd authentication on a free port; stopped (its process only)
/// when dropped.
struct AuthRegistry {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl AuthRegistry {
    fn start(entry: &str) -> Result<AuthRegistry, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, entry).map_err(|e| e.to_string())?;
        let port = free_port();
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: envboot-tests\n    path: {}\n",
            htpasswd.display()
        );
        let child = start_registry(dir.path(), port, &auth)?;
        Ok(AuthRegistry { dir, port, child })
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `helm package` of `chart`, then `helm push --plain-http` with the credentials (Helm's
    /// configuration in this registry's folder, so nothing of the user's is read or written).
    fn push(&self, helm: &str, chart: &Path) {
        let staging = self.dir.path().join("package");
        let run = |args: &[&str]| run_helm_in(helm, self.dir.path(), args);
        run(&[
            "package",
            chart.to_str().expect("utf-8"),
            "-d",
            staging.to_str().expect("utf-8"),
        ]);
        let archive = staging.join("hello-0.1.0.tgz");
        run(&[
            "push",
            archive.to_str().expect("utf-8"),
            &format!("oci://{}/charts", self.host()),
            "--plain-http",
            "--username",
            USER,
            "--password",
            PASSWORD,
        ]);
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_registry_asking_for_basic_credentials_is_answered_from_docker_config_or_the_variables() {
    const TEST: &str =
        "chart_auth::a_registry_asking_for_basic_credentials_is_answered_from_docker_config_or_the_variables";
    let helm = match helm() {
        Ok(h) => h,
        Err(why) => return skipped(TEST, &why),
    };
    let entry = match htpasswd_entry(USER, PASSWORD) {
        Ok(e) => e,
        Err(why) => return skipped(TEST, &why),
    };
    let registry = match AuthRegistry::start(&entry) {
        Ok(r) => r,
        Err(why) => return skipped(TEST, &why),
    };
    registry.push(&helm, &project_root().join("modules/hello"));

    let name = unique("chartauth");
    let lock_path = format!("environments/{name}/charts.lock");
    let chart = format!(
        "{{repository: \"oci://{}/charts\", name: hello, version: \"0.1.0\"}}",
        registry.host()
    );
    // Where credentials could come from, all empty unless a case fills them: none of this
    // machine's user's files is read.
    let homes = tempfile::tempdir().expect("tempdir");
    let no_docker = homes.path().join("no-docker");
    std::fs::create_dir_all(&no_docker).expect("mkdir");
    let base = |repo: &Repo, cache: &Path| {
        let mut s = with_chart_cache(unreachable(repo.path()), cache);
        s.insert(
            "HELM_REGISTRY_CONFIG".into(),
            homes
                .path()
                .join("no-helm/config.json")
                .display()
                .to_string(),
        );
        s.insert(
            "HELM_REPOSITORY_CONFIG".into(),
            homes
                .path()
                .join("no-helm/repositories.yaml")
                .display()
                .to_string(),
        );
        s.insert("DOCKER_CONFIG".into(), no_docker.display().to_string());
        s
    };
    let never_printed = |run: &Run, case: &str| {
        for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(PASSWORD),
                "{case}: the password is in {stream}:\n{text}"
            );
        }
    };

    // No credentials: refused, saying why, with nothing written.
    let repo = Repo::new(&name, &chart_environment(&name, &chart));
    let cache = tempfile::tempdir().expect("tempdir");
    let run = envboot(
        &repo,
        &base(&repo, cache.path()),
        &["charts", "lock", &name],
    );
    never_printed(&run, "without credentials");
    assert_eq!(run.code, 7, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not authorized"), "{}", run.stderr);
    assert!(!repo.path().join(&lock_path).exists());

    // Docker's config.json, `auths` keyed by the registry's host:port.
    let docker = homes.path().join("docker");
    std::fs::create_dir_all(&docker).expect("mkdir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(
            "{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}\n",
            registry.host()
        ),
    )
    .expect("write config.json");
    let repo = Repo::new(&name, &chart_environment(&name, &chart));
    let cache = tempfile::tempdir().expect("tempdir");
    let mut settings = base(&repo, cache.path());
    settings.insert("DOCKER_CONFIG".into(), docker.display().to_string());
    let run = envboot(&repo, &settings, &["charts", "lock", &name]);
    never_printed(&run, "with Docker's config.json");
    run.assert_ok();
    assert!(run.stdout.contains("hello 0.1.0: added"), "{}", run.stdout);
    assert!(repo.path().join(&lock_path).exists());
    let docker_lock = repo.read(&lock_path);
    assert!(
        docker_lock.contains(&format!("repository: oci://{}/charts", registry.host())),
        "{docker_lock}"
    );

    // The variables, for other hosts only: not sent here.
    let repo = Repo::new(&name, &chart_environment(&name, &chart));
    let cache = tempfile::tempdir().expect("tempdir");
    let mut settings = base(&repo, cache.path());
    settings.insert("ENVBOOT_CHART_USERNAME".into(), USER.into());
    settings.insert("ENVBOOT_CHART_PASSWORD".into(), PASSWORD.into());
    settings.insert(
        "ENVBOOT_CHART_HOSTS".into(),
        "charts.example.com, 127.0.0.1:9".into(),
    );
    let run = envboot(&repo, &settings, &["charts", "lock", &name]);
    never_printed(&run, "with the variables for other hosts");
    assert_eq!(run.code, 7, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not authorized"), "{}", run.stderr);

    // The variables for this registry, with an empty cache so that the chart is fetched again.
    settings.insert("ENVBOOT_CHART_HOSTS".into(), registry.host());
    let run = envboot(&repo, &settings, &["charts", "lock", &name]);
    never_printed(&run, "with the variables");
    run.assert_ok();
    assert!(run.stdout.contains("hello 0.1.0: added"), "{}", run.stdout);
    assert_eq!(
        repo.read(&lock_path),
        docker_lock,
        "the same pin either way"
    );
    assert!(
        std::fs::read_dir(cache.path().join("sha256"))
            .expect("the chart was fetched into the fresh cache")
            .count()
            == 1
    );

    // A wrong password: refused as without any.
    let repo = Repo::new(&name, &chart_environment(&name, &chart));
    let cache = tempfile::tempdir().expect("tempdir");
    let mut settings = base(&repo, cache.path());
    settings.insert("ENVBOOT_CHART_USERNAME".into(), USER.into());
    settings.insert("ENVBOOT_CHART_PASSWORD".into(), "not-the-password".into());
    settings.insert("ENVBOOT_CHART_HOSTS".into(), registry.host());
    let run = envboot(&repo, &settings, &["charts", "lock", &name]);
    never_printed(&run, "with a wrong password");
    assert!(!run.stderr.contains("not-the-password"), "{}", run.stderr);
    assert_eq!(run.code, 7, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("not authorized"), "{}", run.stderr);
    assert!(!repo.path().join(&lock_path).exists());
}
