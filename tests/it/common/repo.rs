//! Throwaway Git repositories for tests: the project's `modules/` and one environment, in a
//! temporary folder, committed with git itself.

use std::path::Path;
use std::process::Command;

use super::project_root;

/// A Git repository in a temporary folder holding the project's `modules/` and one environment.
pub struct Repo {
    pub dir: tempfile::TempDir,
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

impl Repo {
    /// A repository with the project's modules and `environments/<name>/environment.yaml` = `env`.
    pub fn new(name: &str, env: &str) -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&project_root().join("modules"), &dir.path().join("modules"));
        let repo = Repo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.write(&format!("environments/{name}/environment.yaml"), env);
        repo.commit("initial environment");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).expect("read")
    }

    /// Replaces `from` by `to` in a file (which must contain it).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Runs git in the repository (with a fixed identity, and none of the user's settings for
    /// who commits); returns its output.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=envboot tests",
                "-c",
                "user.email=tests@envboot.invalid",
            ])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Commits everything; returns the commit SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// An environment file for the sandbox: the network and web-tier modules, one release of the
/// `hello` chart and one ConfigMap, all in namespace `<name>-apps`.
pub fn sandbox_environment(name: &str) -> String {
    format!(
        r##"apiVersion: envboot.dev/v1alpha1
kind: Environment
name: {name}
cloud:
  provider: aws
  region: us-east-1
infrastructure:
  - name: network
    module: network
    inputs:
      cidr: 10.42.0.0/16
      zone_a: us-east-1a
      zone_b: us-east-1b
      subnet_a_cidr: 10.42.1.0/24
      subnet_b_cidr: 10.42.2.0/24
  - name: web
    module: web-tier
    inputs:
      vpc_id: ${{module.network.vpc_id}}
      subnet_id: ${{module.network.subnet_a_id}}
      ami: ami-03cf127a
      user_data: "#!/bin/sh\necho hello\n"
cluster:
  type: existing
  context: envboot-sandbox
releases:
  - name: hello
    chart: hello
    namespace: {name}-apps
    values:
      greeting: Hello from {name}
configMaps:
  - name: app-settings
    namespace: {name}-apps
    data:
      LOG_LEVEL: debug
      VPC_ID: ${{module.network.vpc_id}}
      WEB_URL: http://${{module.web.private_ip}}/
    files:
      - path: config/app.properties
"##
    )
}

/// A repository holding [`sandbox_environment`] for `name`, with its ConfigMap file.
pub fn sandbox_repo(name: &str) -> Repo {
    let repo = Repo::new(name, &sandbox_environment(name));
    repo.write(
        &format!("environments/{name}/config/app.properties"),
        "server.port=8080\ncache.size=64\n",
    );
    repo.commit("add the ConfigMap file");
    repo
}
