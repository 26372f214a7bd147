//! Reading the environment from Git and rejecting bad input before any API call.
//! These tests need no server: AWS and Kubernetes point at a closed port, so any attempted call
//! would fail with exit code 1 instead of the input error's code.

use crate::common::*;

/// The 1-based line of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn an_invalid_environment_fails_with_file_and_line_for_every_mistake_and_calls_no_api() {
    let name = "broken";
    let env = sandbox_environment(name)
        // 1. an unknown field in a module instance
        .replace(
            "    module: web-tier\n",
            "    module: web-tier\n    modul: typo\n",
        );
    let repo = Repo::new(name, &env);
    let settings = unreachable(repo.path());
    let run = envboot(&repo, &settings, &["plan", name]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let expected = format!(
        "environments/broken/environment.yaml:{}:5: unknown field `modul`",
        line_of(&env, "modul:")
    );
    assert!(
        run.stderr.contains(&expected),
        "missing {expected:?} in:\n{}",
        run.stderr
    );

    // 2-5. a bad CIDR, an unknown input, a missing chart and a duplicate ConfigMap, all at once.
    let env = sandbox_environment(name)
        .replace("cidr: 10.42.0.0/16", "cidr: 10.42.0.0/33")
        .replace(
            "      ami: ami-03cf127a\n",
            "      ami: ami-03cf127a\n      flavour: large\n",
        )
        .replace("chart: hello", "chart: no-such-chart")
        + "  - name: app-settings\n    namespace: broken-apps\n";
    repo.write("environments/broken/environment.yaml", &env);
    repo.commit("break it in four more ways");
    let run = envboot(&repo, &settings, &["apply", name]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let module = repo.read("modules/network/module.yaml");
    let file = "environments/broken/environment.yaml";
    for expected in [
        format!(
            "{file}:{}:7: module `web-tier` has no input `flavour`",
            line_of(&env, "flavour")
        ),
        format!(
            "modules/network/module.yaml:{}:5: invalid CIDR block `10.42.0.0/33`",
            line_of(&module, "cidr_block: ${input.cidr}")
        ),
        format!(
            "{file}:{}:5: chart `no-such-chart` not found",
            line_of(&env, "no-such-chart")
        ),
        format!(
            "{file}:{}:5: duplicate ConfigMap `broken-apps/app-settings`",
            env.lines().count() - 1
        ),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("127.0.0.1:9"),
        "no API was called:\n{}",
        run.stderr
    );

    // 6. a reference cycle between module instances, and a template error.
    let env = sandbox_environment(name).replace(
        "vpc_id: ${module.network.vpc_id}",
        "vpc_id: ${module.web2.security_group_id}",
    ) + "";
    let env = env.replace(
        "cluster:",
        "  - name: web2\n    module: web-tier\n    inputs:\n      vpc_id: ${module.web.security_group_id}\n      subnet_id: x\n      ami: y\ncluster:",
    );
    repo.write("environments/broken/environment.yaml", &env);
    repo.commit("a cycle");
    let run = envboot(&repo, &settings, &["validate", name]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("module instances refer to each other in a cycle: web -> web2 -> web"),
        "{}",
        run.stderr
    );

    repo.write(
        "environments/broken/environment.yaml",
        &sandbox_environment(name),
    );
    repo.write("environments/broken/config/app.properties", "a=b\n");
    repo.edit(
        "modules/hello/templates/service.yaml",
        "{{ .Values.service.port }}",
        "{{ .Values.service.port | nosuch }}",
    );
    repo.commit("a template error");
    let run = envboot(&repo, &settings, &["plan", name]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "parse error at (modules/hello/templates/service.yaml:{}): function \"nosuch\" not defined",
            line_of(&repo.read("modules/hello/templates/service.yaml"), "nosuch")
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn uncommitted_changes_are_ignored_and_named() {
    let repo = Repo::new("t", &sandbox_environment("t"));
    repo.write("environments/t/config/app.properties", "a=b\n");
    repo.commit("config");
    repo.edit(
        "environments/t/environment.yaml",
        "LOG_LEVEL: debug",
        "LOG_LEVEL: dirty",
    );
    let settings = unreachable(repo.path());
    let run = envboot(&repo, &settings, &["render", "t"]);
    run.assert_ok();
    assert!(run.stdout.contains("LOG_LEVEL: debug"), "{}", run.stdout);
    assert!(!run.stdout.contains("dirty"));
    assert!(
        run.stderr.contains("uncommitted changes are ignored (envboot reads only the commit): environments/t/environment.yaml"),
        "{}",
        run.stderr
    );
}

#[test]
fn revisions_branches_and_remote_urls_are_read() {
    let repo = Repo::new("t", &sandbox_environment("t"));
    repo.write("environments/t/config/app.properties", "a=b\n");
    let first = repo.commit("config");
    repo.git(&["tag", "v1"]);
    repo.edit(
        "environments/t/environment.yaml",
        "LOG_LEVEL: debug",
        "LOG_LEVEL: info",
    );
    repo.commit("info");
    let settings = unreachable(repo.path());

    let run = envboot(&repo, &settings, &["render", "t", "--revision", "v1"]);
    run.assert_ok();
    assert!(run.stdout.contains("LOG_LEVEL: debug"));
    assert!(
        run.stdout
            .contains(&format!("envboot.dev/revision: {first}")),
        "the commit is stamped"
    );

    let run = envboot(&repo, &settings, &["render", "t", "--revision", "nope"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("revision `nope` does not exist"),
        "{}",
        run.stderr
    );

    // A URL is cloned into a temporary directory; `main` resolves to the remote branch.
    let url = format!("file://{}", repo.path().display());
    let run = Envboot::new(&settings)
        .args(["render", "t", "--repo", &url, "--revision", "main"])
        .run();
    run.assert_ok();
    assert!(run.stdout.contains("LOG_LEVEL: info"), "{}", run.stdout);

    let run = envboot(&repo, &settings, &["plan", "nosuch"]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("environment `nosuch` not found"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("environments there: t"),
        "{}",
        run.stderr
    );
}

#[test]
fn secret_and_cluster_file_errors_name_the_file_and_plaintext_goes_only_to_a_terminal_or_a_named_file(
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let servers = tempfile::tempdir().expect("temp dir");
    let settings = unreachable(servers.path());
    let key = age::x25519::Identity::generate();
    let mut settings = settings;
    settings.insert(
        "ENVBOOT_AGE_IDENTITY".into(),
        age::secrecy::ExposeSecret::expose_secret(&key.to_string()).to_string(),
    );
    let run_in = |args: &[&str]| {
        Envboot::new(&settings)
            .args(args)
            .current_dir(dir.path())
            .run()
    };

    // A missing file: its path, and "read", not "cannot encrypt"; an I/O error exits 1.
    let run = run_in(&["secret", "decrypt", "missing.age", "--output", "out.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read missing.age"),
        "{}",
        run.stderr
    );

    // Plaintext is written to a terminal or to the file named, never to a pipe.
    let plain = dir.path().join("db.yaml");
    std::fs::write(&plain, "password: hunter2-not-shown\n").expect("write");
    let recipient = key.to_public().to_string();
    run_in(&["secret", "encrypt", "db.yaml", "--recipient", &recipient]).assert_ok();
    let run = run_in(&["secret", "decrypt", "db.yaml.age"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--output"), "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
    run_in(&["secret", "decrypt", "db.yaml.age", "--output", "back.yaml"]).assert_ok();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("back.yaml")).expect("read"),
        "password: hunter2-not-shown\n"
    );

    // An unreadable .age-recipients is named as the recipients file, not as an identity.
    std::fs::write(dir.path().join(".age-recipients"), [0xff, 0xfe, 0x00]).expect("write");
    let run = run_in(&["secret", "encrypt", "db.yaml"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read the recipients file"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("identity"), "{}", run.stderr);

    // `cluster init` that cannot write its file exits 1 (an I/O error), naming the path.
    std::fs::create_dir_all(dir.path().join("environments/k")).expect("mkdir");
    std::fs::write(
        dir.path().join("environments/k/environment.yaml"),
        "name: k\n",
    )
    .expect("write");
    let run = run_in(&[
        "cluster",
        "init",
        "k",
        "--recipient",
        &recipient,
        "--file",
        "environment.yaml/cluster.age",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("environment.yaml"), "{}", run.stderr);
}

#[test]
fn a_command_rejects_the_flags_it_does_not_use() {
    let servers = tempfile::tempdir().expect("temp dir");
    let settings = unreachable(servers.path());
    for args in [
        &["validate", "t", "--adopt"][..],
        &["drift", "t", "--output", "json"],
        &["render", "t", "--parallelism", "2"],
        &["destroy", "t", "--adopt"],
    ] {
        let run = Envboot::new(&settings).args(args).run();
        assert_eq!(run.code, 64, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("unexpected argument"),
            "{args:?}: {}",
            run.stderr
        );
    }
}
