//! Loading and validating environments from in-memory commits.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const MODULE: &str = r#"apiVersion: envboot.dev/v1alpha1
kind: Module
inputs:
  cidr: {type: string, default: 10.0.0.0/16}
  zone: {type: string}
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: ${input.cidr}
  - name: subnet
    type: aws_subnet
    vpc_id: ${vpc.id}
    cidr_block: 10.0.1.0/24
    availability_zone: ${input.zone}
outputs:
  vpc_id: ${vpc.id}
  subnet_id: ${subnet.id}
"#;

const WEB: &str = r#"apiVersion: envboot.dev/v1alpha1
kind: Module
inputs:
  vpc_id: {type: string}
resources:
  - name: sg
    type: aws_security_group
    vpc_id: ${input.vpc_id}
    ingress:
      - {protocol: tcp, from_port: 80, to_port: 80, cidr_blocks: [0.0.0.0/0]}
"#;

fn snapshot(env: &str) -> Snapshot {
    let mut files = BTreeMap::new();
    files.insert(
        "environments/t/environment.yaml".to_string(),
        env.as_bytes().to_vec(),
    );
    files.insert(
        "modules/network/module.yaml".to_string(),
        MODULE.as_bytes().to_vec(),
    );
    files.insert(
        "modules/web/module.yaml".to_string(),
        WEB.as_bytes().to_vec(),
    );
    Snapshot::from_files("0123456789abcdef", files)
}

fn env_with(body: &str) -> String {
    format!("apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: t\ncloud: {{provider: aws, region: us-east-1}}\n{body}")
}

fn invalid(body: &str) -> Diagnostics {
    match load(&snapshot(&env_with(body)), "t") {
        Err(Error::Invalid(d)) => d,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn modules_are_instantiated_in_dependency_order_with_canonical_references() {
    let env = load(
        &snapshot(&env_with(
            "infrastructure:\n  - name: web\n    module: web\n    inputs: {vpc_id: '${module.net.vpc_id}'}\n  - name: net\n    module: network\n    inputs: {zone: us-east-1a}\n",
        )),
        "t",
    )
    .unwrap();
    let addresses: Vec<&str> = env.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, vec!["net.vpc", "net.subnet", "web.sg"]);
    let ResourceSpec::SecurityGroup(sg) = &env.resources[2].spec else {
        panic!()
    };
    assert_eq!(sg.vpc_id, "${net.vpc.id}");
    assert!(env.resources[2].depends_on.contains("net.vpc"));
    let ResourceSpec::Subnet(subnet) = &env.resources[1].spec else {
        panic!()
    };
    assert_eq!(subnet.availability_zone, "us-east-1a");
}

#[test]
fn unknown_field_names_its_line() {
    let d = invalid("clutser: {type: existing}\n");
    assert_eq!(d.0.len(), 1, "{d}");
    assert_eq!(
        (d.0[0].file.as_str(), d.0[0].line),
        ("environments/t/environment.yaml", 5),
        "{d}"
    );
    assert!(d.0[0].message.contains("unknown field `clutser`"), "{d}");
}

#[test]
fn missing_input_unknown_input_and_missing_module_are_all_reported() {
    let d = invalid(
        "infrastructure:\n  - name: net\n    module: network\n    inputs: {zoen: a}\n  - name: x\n    module: nosuch\n",
    );
    let text = d.to_string();
    assert!(
        text.contains("environment.yaml:8:14: module `network` has no input `zoen`"),
        "{text}"
    );
    assert!(text.contains("requires input `zone`"), "{text}");
    assert!(
        text.contains("environment.yaml:10:5: module `nosuch` not found"),
        "{text}"
    );
}

#[test]
fn bad_cidr_in_an_input_is_reported() {
    let d = invalid("infrastructure:\n  - name: net\n    module: network\n    inputs: {zone: a, cidr: 10.0.0.0/33}\n");
    assert!(
        d.to_string().contains("invalid CIDR block `10.0.0.0/33`"),
        "{d}"
    );
}

#[test]
fn subnet_outside_its_vpc_is_reported() {
    let d = invalid("infrastructure:\n  - name: net\n    module: network\n    inputs: {zone: a, cidr: 192.168.0.0/16}\n");
    assert!(
        d.to_string().contains("modules/network/module.yaml:13:"),
        "{d}"
    );
    assert!(
        d.to_string()
            .contains("is not inside its VPC's 192.168.0.0/16"),
        "{d}"
    );
}

#[test]
fn cyclic_module_references_are_reported() {
    let d = invalid(
        "infrastructure:\n  - name: a\n    module: web\n    inputs: {vpc_id: '${module.b.x}'}\n  - name: b\n    module: web\n    inputs: {vpc_id: '${module.a.x}'}\n",
    );
    assert!(d.to_string().contains("cycle: a -> b -> a"), "{d}");
}

#[test]
fn duplicate_names_and_missing_charts_are_reported() {
    let d = invalid(
        "cluster: {type: existing}\nreleases:\n  - {name: r, chart: nochart, namespace: apps}\nconfigMaps:\n  - {name: c, namespace: apps}\n  - {name: c, namespace: apps}\n",
    );
    let text = d.to_string();
    assert!(
        text.contains(":7:") && text.contains("chart `nochart` not found"),
        "{text}"
    );
    assert!(
        text.contains(":10:") && text.contains("duplicate ConfigMap `apps/c`"),
        "{text}"
    );
}

#[test]
fn values_merge_like_helm() {
    let mut base = serde_json::json!({"a": {"b": 1, "c": 2}, "d": 3});
    merge_values(
        &mut base,
        &serde_json::json!({"a": {"b": 9, "c": null}, "e": 4}),
    );
    assert_eq!(base, serde_json::json!({"a": {"b": 9}, "d": 3, "e": 4}));
}

#[test]
fn a_missing_environment_lists_the_known_ones() {
    let err = load(&snapshot(&env_with("")), "prod").unwrap_err();
    assert!(err.to_string().contains("environments there: t"), "{err}");
}

#[test]
fn ssh_or_all_ports_open_to_the_internet_is_a_warning_with_its_location() {
    let web = WEB.replace("from_port: 80, to_port: 80", "from_port: 0, to_port: 65535");
    let mut snap = snapshot(&env_with(
        "infrastructure:\n  - name: w\n    module: web\n    inputs: {vpc_id: vpc-1}\n",
    ));
    snap.files
        .insert("modules/web/module.yaml".into(), web.into_bytes());
    let env = load(&snap, "t").unwrap();
    assert_eq!(env.warnings.0.len(), 1, "{}", env.warnings);
    let w = &env.warnings.0[0];
    assert_eq!((w.file.as_str(), w.line), ("modules/web/module.yaml", 10));
    assert!(
        w.message
            .contains("security group w.sg opens all ports to 0.0.0.0/0"),
        "{w}"
    );

    let ok = load(
        &snapshot(&env_with(
            "infrastructure:\n  - name: w\n    module: web\n    inputs: {vpc_id: vpc-1}\n",
        )),
        "t",
    )
    .unwrap();
    assert!(
        ok.warnings.is_empty(),
        "port 80 open to the internet is fine: {}",
        ok.warnings
    );
}

fn snapshot_with(module: &str, extra: &[(&str, &str)]) -> Snapshot {
    let mut files = BTreeMap::new();
    files.insert(
        "environments/t/environment.yaml".to_string(),
        env_with("infrastructure:\n  - name: s\n    module: stack\n")
            .as_bytes()
            .to_vec(),
    );
    files.insert(
        "modules/stack/module.yaml".to_string(),
        module.as_bytes().to_vec(),
    );
    for (path, text) in extra {
        files.insert(path.to_string(), text.as_bytes().to_vec());
    }
    Snapshot::from_files("0123456789abcdef", files)
}

const STACK: &str = r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.0.0.0/16
  - name: igw
    type: aws_internet_gateway
    vpc_id: ${vpc.id}
  - name: rt
    type: aws_route_table
    vpc_id: ${vpc.id}
    routes:
      - {cidr_block: 0.0.0.0/0, gateway_id: "${igw.id}"}
  - name: key
    type: aws_key_pair
    public_key_file: keys/deploy.pub
  - name: lb
    type: aws_security_group
    vpc_id: ${vpc.id}
  - name: app
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 80, to_port: 80, security_groups: ["${lb.id}"]}
    egress:
      - {protocol: tcp, from_port: 443, to_port: 443, cidr_blocks: [0.0.0.0/0]}
"#;

#[test]
fn new_resource_types_load_with_their_references_and_the_key_file_from_the_commit() {
    let env = load(
        &snapshot_with(
            STACK,
            &[("modules/stack/keys/deploy.pub", "ssh-ed25519 AAAA me\n")],
        ),
        "t",
    )
    .unwrap();
    let by: BTreeMap<&str, &Resource> = env
        .resources
        .iter()
        .map(|r| (r.address.as_str(), r))
        .collect();
    let ResourceSpec::KeyPair(k) = &by["s.key"].spec else {
        panic!()
    };
    assert_eq!(k.public_key.as_deref(), Some("ssh-ed25519 AAAA me"));
    assert_eq!(
        by["s.rt"].depends_on,
        ["s.igw".to_string(), "s.vpc".to_string()].into()
    );
    assert!(by["s.app"].depends_on.contains("s.lb"));
    let order: Vec<&str> = env.resources.iter().map(|r| r.address.as_str()).collect();
    let pos = |a: &str| order.iter().position(|o| *o == a).unwrap();
    assert!(pos("s.igw") < pos("s.rt") && pos("s.lb") < pos("s.app"));
}

#[test]
fn route_targets_rule_sources_and_key_files_are_validated() {
    let bad = STACK
        .replace(
            "gateway_id: \"${igw.id}\"",
            "gateway_id: \"${igw.id}\", nat_gateway_id: nat-1",
        )
        .replace(
            "{protocol: tcp, from_port: 443, to_port: 443, cidr_blocks: [0.0.0.0/0]}",
            "{protocol: tcp, from_port: 443, to_port: 443}",
        );
    let Err(Error::Invalid(d)) = load(&snapshot_with(&bad, &[]), "t") else {
        panic!("expected invalid")
    };
    let text = d.to_string();
    assert!(
        text.contains("a route needs exactly one of `gateway_id` and `nat_gateway_id`"),
        "{text}"
    );
    assert!(text.contains("public_key_file `keys/deploy.pub` not found: expected modules/stack/keys/deploy.pub in the commit"), "{text}");
    assert!(
        text.contains("a rule needs `cidr_blocks` or `security_groups`"),
        "{text}"
    );
    assert!(text.contains("modules/stack/module.yaml:"), "{text}");
}

const K3S: &str = "infrastructure:\n  - name: net\n    module: network\n    inputs: {zone: us-east-1a}\ncluster:\n  type: k3s\n  version: v1.33.5+k3s1\n  server: {ami: ami-1, instanceType: t3.medium, subnetId: '${module.net.subnet_id}'}\n  agents: {count: 2, ami: ami-1, instanceType: t3.large, subnetId: '${module.net.subnet_id}'}\n";

fn k3s_snapshot(body: &str, credentials: Option<&[u8]>) -> Snapshot {
    let mut files = snapshot(&env_with(body)).files;
    if let Some(c) = credentials {
        files.insert("environments/t/cluster.age".to_string(), c.to_vec());
    }
    Snapshot::from_files("0123456789abcdef", files)
}

#[test]
fn a_k3s_cluster_becomes_a_server_and_its_agents_after_what_they_refer_to() {
    let env = load(
        &k3s_snapshot(K3S, Some(b"-----BEGIN AGE ENCRYPTED FILE-----\n")),
        "t",
    )
    .unwrap();
    let addresses: Vec<&str> = env.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "net.vpc",
            "net.subnet",
            "cluster.server",
            "cluster.agent-1",
            "cluster.agent-2"
        ]
    );
    let agent = &env.resources[3];
    assert!(agent.depends_on.contains("cluster.server"), "{agent:?}");
    assert!(agent.depends_on.contains("net.subnet"), "{agent:?}");
    let ResourceSpec::Instance(i) = &agent.spec else {
        panic!("{agent:?}")
    };
    assert_eq!(i.subnet_id, "${net.subnet.id}");
    assert_eq!(i.instance_type, "t3.large");
    // The user-data is written once the credentials are decrypted, not by the model.
    assert_eq!(i.user_data, None);
    let cluster = env.cluster.expect("cluster");
    let k3s = cluster.k3s.expect("k3s");
    assert_eq!(k3s.version, "v1.33.5+k3s1");
    assert_eq!(k3s.credentials_file, "environments/t/cluster.age");
    assert_eq!(k3s.agents, ["cluster.agent-1", "cluster.agent-2"]);
    assert_eq!(k3s.api_timeout, DEFAULT_API_TIMEOUT);
}

#[test]
fn k3s_mistakes_are_reported_at_their_lines() {
    let load_err = |body: &str, creds: Option<&[u8]>| match load(&k3s_snapshot(body, creds), "t") {
        Err(Error::Invalid(d)) => d.to_string(),
        other => panic!("expected invalid, got {other:?}"),
    };
    // No credentials in the commit: how to make them.
    let d = load_err(K3S, None);
    assert!(
        d.contains("environment.yaml:9:1: the cluster's credentials are not in the commit: expected environments/t/cluster.age (create them with `envboot cluster init t`"),
        "{d}"
    );
    // In plain text: refused.
    let d = load_err(K3S, Some(b"token: abc\n"));
    assert!(d.contains("is not age-encrypted"), "{d}");
    let ok = Some(b"age-encryption.org/v1\n".as_slice());
    // Version missing, a server count, a bad reference, a k3s field on an existing cluster.
    let d = load_err(&K3S.replace("  version: v1.33.5+k3s1\n", ""), ok);
    assert!(d.contains("needs a pinned `version`"), "{d}");
    let d = load_err(
        &K3S.replace(
            "{ami: ami-1, instanceType: t3.medium",
            "{count: 2, ami: ami-1, instanceType: t3.medium",
        ),
        ok,
    );
    assert!(d.contains(":12:") && d.contains("one server"), "{d}");
    let d = load_err(
        &K3S.replace(
            "'${module.net.subnet_id}'}\n  agents",
            "'${module.nope.subnet_id}'}\n  agents",
        ),
        ok,
    );
    assert!(d.contains("module instance `nope`"), "{d}");
    let d = load_err(&K3S.replace("type: k3s", "type: existing"), ok);
    assert!(d.contains("`version` is only for `type: k3s`"), "{d}");
    // A count of agents no cluster here could have is refused before anything is built.
    let d = load_err(&K3S.replace("count: 2", "count: 100000000"), ok);
    assert!(
        d.contains(":13:") && d.contains("100000000 agents: a k3s cluster here has at most 500"),
        "{d}"
    );
    let d = load_err(
        &K3S.replace("  type: k3s\n", "  type: k3s\n  apiTimeout: soon\n"),
        ok,
    );
    assert!(d.contains(":11:3: `soon` is not a duration"), "{d}");
}

#[test]
fn security_groups_whose_rules_refer_to_each_other_are_not_a_cycle() {
    let mutual = r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.0.0.0/16
  - name: web
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 80, to_port: 80, security_groups: ["${db.id}"]}
  - name: db
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 5432, to_port: 5432, security_groups: ["${web.id}"]}
"#;
    let env = load(&snapshot_with(mutual, &[]), "t").unwrap();
    let addresses: Vec<&str> = env.resources.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses[0], "s.vpc");
    for r in &env.resources[1..] {
        assert_eq!(r.depends_on, BTreeSet::from(["s.vpc".to_string()]), "{r:?}");
        assert_eq!(r.late.len(), 1, "{r:?}");
    }
    // A cycle through anything but rules is still one.
    let real = mutual.replace(
        "  - name: vpc\n    type: aws_vpc\n    cidr_block: 10.0.0.0/16\n",
        "  - name: vpc\n    type: aws_vpc\n    cidr_block: 10.0.0.0/16\n    tags: {peer: \"${db.id}\"}\n",
    );
    let Err(Error::Invalid(d)) = load(&snapshot_with(&real, &[]), "t") else {
        panic!("expected a cycle")
    };
    assert!(
        d.to_string()
            .contains("resources refer to each other in a cycle"),
        "{d}"
    );
}

#[test]
fn the_kubernetes_version_charts_see_offline_is_pinned_or_the_k3s_clusters() {
    let env = load(
        &snapshot(&env_with(
            "cluster:\n  type: existing\n  kubeVersion: v1.29.3\n  apiVersions: [monitoring.coreos.com/v1, monitoring.coreos.com/v1/ServiceMonitor]\n",
        )),
        "t",
    )
    .unwrap();
    let cluster = env.cluster.expect("cluster");
    assert_eq!(cluster.kube_version.as_deref(), Some("v1.29.3"));
    assert_eq!(cluster.api_versions.len(), 2);
    let env = load(
        &k3s_snapshot(K3S, Some(b"-----BEGIN AGE ENCRYPTED FILE-----\n")),
        "t",
    )
    .unwrap();
    assert_eq!(
        env.cluster.expect("cluster").kube_version.as_deref(),
        Some("v1.33.5")
    );
    let d = invalid(
        "cluster:\n  type: existing\n  kubeVersion: latest\n  apiVersions: ['apps/v1', 'a b/v1']\n",
    )
    .to_string();
    assert!(
        d.contains("environment.yaml:7:3: invalid kubeVersion `latest`"),
        "{d}"
    );
    assert!(
        d.contains(":8:") && d.contains("invalid API version `a b/v1`"),
        "{d}"
    );
}

#[test]
fn manifest_folders_read_as_kubectl_reads_them() {
    let body = "cluster: {type: existing}\nmanifests:\n  - path: base\n    namespace: apps\n";
    let mut snap = snapshot(&env_with(body));
    let add = |snap: &mut Snapshot, path: &str, text: &str| {
        snap.files.insert(
            format!("environments/t/base/{path}"),
            text.as_bytes().to_vec(),
        );
    };
    add(
        &mut snap,
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {mode: '0644', octal: 0644}\n---\n# empty\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ServiceAccount, metadata: {name: two}}\n",
    );
    add(
        &mut snap,
        "nested/b.json",
        r#"{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "three"}}"#,
    );
    add(&mut snap, "README.md", "not a manifest");
    let env = load(&snap, "t").unwrap();
    let set = &env.manifests[0];
    assert_eq!(set.path, "environments/t/base");
    let names: Vec<(&str, &str)> = set
        .objects
        .iter()
        .map(|(at, o)| (at.as_str(), o["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("environments/t/base/a.yaml:1", "one"),
            ("environments/t/base/a.yaml:8", "two"),
            ("environments/t/base/nested/b.json:1", "three"),
        ]
    );
    // YAML 1.1 as sigs.k8s.io/yaml reads it: an unquoted 0644 is octal
    assert_eq!(
        set.objects[0].1["data"]["octal"], 420,
        "{:?}",
        set.objects[0].1
    );
    assert!(env.namespaces().contains("apps"));

    add(&mut snap, "c.yaml", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n");
    add(&mut snap, "kustomization.yaml", "resources: [a.yaml]\n");
    let Err(Error::Invalid(d)) = load(&snap, "t") else {
        panic!("expected errors")
    };
    let text = d.to_string();
    assert!(
        text.contains("environments/t/base/c.yaml:1:1: the object has no metadata.name"),
        "{text}"
    );
    assert!(
        text.contains("environments/t/base/c.yaml:4:1: a Secret in plain text in Git"),
        "{text}"
    );
    assert!(
        text.contains("environments/t/base/kustomization.yaml:1:1: a kustomization"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[test]
fn chart_folder_dependencies_from_repositories_are_what_the_lock_pins() {
    let body =
        "cluster: {type: existing}\nreleases:\n  - {name: app, chart: app, namespace: apps}\n";
    let mut snap = snapshot(&env_with(body));
    let chart =
        |deps: &str| format!("apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n{deps}");
    let put = |snap: &mut Snapshot, path: &str, text: &str| {
        snap.files
            .insert(path.to_string(), text.as_bytes().to_vec());
    };
    put(
        &mut snap,
        "modules/app/Chart.yaml",
        &chart("  - {name: redis, version: ^17.1.0, repository: https://r.example.com}\n  - {name: local, version: 1.0.0, repository: file://../local}\n"),
    );
    // another chart whose name starts alike does not vendor `redis`
    put(&mut snap, "modules/app/charts/redis-cluster-9.0.0.tgz", "x");
    let found = chart_requirements(&snap, "t").unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            found[0].name.as_str(),
            found[0].version.as_str(),
            found[0].exact
        ),
        ("redis", "^17.1.0", false)
    );
    assert_eq!(found[0].dependency_of.as_deref(), Some("modules/app"));
    assert_eq!(found[0].origin, "modules/app/Chart.yaml:5:6");
    let Err(Error::Invalid(d)) = load(&snap, "t") else {
        panic!("a dependency the lock does not pin")
    };
    assert!(d.to_string().contains("modules/app/Chart.yaml:5:6: dependency redis ^17.1.0 from https://r.example.com is not vendored in modules/app/charts/ and not pinned in environments/t/charts.lock"), "{d}");

    // Chart.lock's version is the one asked for, and must fit Chart.yaml's constraint
    put(
        &mut snap,
        "modules/app/Chart.lock",
        "dependencies:\n- {name: redis, repository: https://r.example.com, version: 17.3.1}\n",
    );
    let found = chart_requirements(&snap, "t").unwrap();
    assert_eq!(
        (found[0].version.as_str(), found[0].exact),
        ("17.3.1", true)
    );
    put(
        &mut snap,
        "modules/app/Chart.lock",
        "dependencies:\n- {name: redis, repository: https://r.example.com, version: 16.0.0}\n",
    );
    let Err(Error::Invalid(d)) = chart_requirements(&snap, "t") else {
        panic!("a stale Chart.lock")
    };
    assert!(
        d.to_string()
            .contains("Chart.lock pins 16.0.0, which `^17.1.0` does not allow"),
        "{d}"
    );

    // a constraint that does not read is refused where it is written
    put(
        &mut snap,
        "modules/app/Chart.yaml",
        &chart("  - {name: redis, version: latest, repository: https://r.example.com}\n"),
    );
    let Err(Error::Invalid(d)) = chart_requirements(&snap, "t") else {
        panic!("an invalid constraint")
    };
    assert!(
        d.to_string().contains(
            "modules/app/Chart.yaml:5:6: dependency redis: `latest` is not a version constraint"
        ),
        "{d}"
    );
}
