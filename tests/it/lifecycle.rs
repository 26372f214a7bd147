//! The whole lifecycle of one environment against the sandbox (moto's EC2 API and a real
//! kube-apiserver): fresh apply, a second apply that writes nothing, a change in a new commit,
//! rollback to an older revision, and destroy next to resources envboot does not own.
//! Outcomes are checked through the AWS and Kubernetes APIs, not through envboot's output.

use std::collections::BTreeMap;

use crate::common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, PostParams};

/// What envboot last wrote to each object it manages in the environment's namespace: the
/// revision annotation, the generation and the time of envboot's own managedFields entry.
/// (Not resourceVersion: controllers bump it when they write status.)
async fn versions(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    use kube::api::{DynamicObject, ListParams};
    use kube::discovery::ApiResource;
    let env = ns.trim_end_matches("-apps");
    let selector = ListParams::default().labels(&format!("envboot.dev/environment={env}"));
    let mut out = BTreeMap::new();
    let kinds = [
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<Service>(&()),
    ];
    for ar in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for o in api.list(&selector).await.expect("list").items {
            let written = o
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter(|m| m.manager.as_deref() == Some("envboot"))
                .filter_map(|m| m.time.as_ref().map(|t| t.0.to_string()))
                .max()
                .unwrap_or_default();
            let revision = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("envboot.dev/revision").cloned())
                .unwrap_or_default();
            let generation = o.metadata.generation.unwrap_or_default();
            out.insert(
                format!("{}/{}", ar.kind, o.metadata.name.unwrap_or_default()),
                format!("{revision}|{generation}|{written}"),
            );
        }
    }
    let n = Api::<Namespace>::all(client.clone())
        .get(ns)
        .await
        .expect("namespace");
    out.insert(
        "Namespace".into(),
        n.metadata.resource_version.unwrap_or_default(),
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_apply_creates_everything_and_a_second_apply_writes_nothing() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("fresh");
    let ns = format!("{name}-apps");
    let repo = sandbox_repo(&name);
    let sha = repo.git(&["rev-parse", "HEAD"]);

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains("+ aws_vpc network.vpc: created (vpc-"),
        "{}",
        run.stdout
    );

    // AWS: one of each resource, tagged with the environment, its address and the commit.
    let ec2 = ec2(settings).await;
    let owned = owned_aws(&ec2, &name).await;
    let addresses: Vec<(&str, &str)> = owned
        .resources
        .iter()
        .map(|o| (o.rtype, o.address.as_str()))
        .collect();
    assert_eq!(
        addresses,
        vec![
            ("aws_instance", "web.server"),
            ("aws_internet_gateway", "network.igw"),
            ("aws_route_table", "network.public"),
            ("aws_security_group", "web.web"),
            ("aws_subnet", "network.public_a"),
            ("aws_subnet", "network.public_b"),
            ("aws_vpc", "network.vpc"),
        ]
    );
    assert!(
        owned
            .resources
            .iter()
            .all(|o| o.tags.get("envboot:revision") == Some(&sha)),
        "{owned:#?}"
    );
    let vpc_id = &owned.id("aws_vpc", "network.vpc");
    let subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(vpc_id)
                .build(),
        )
        .send()
        .await
        .expect("subnets");
    let mut cidrs: Vec<&str> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.cidr_block())
        .collect();
    cidrs.sort();
    assert_eq!(cidrs, vec!["10.42.1.0/24", "10.42.2.0/24"]);
    let sg_id = &owned.id("aws_security_group", "web.web");
    let groups = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .expect("sg");
    let mut ports: Vec<i32> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![22, 80]);
    let instance_id = &owned.id("aws_instance", "web.server");
    let instances = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .expect("instance");
    let instance = &instances.reservations()[0].instances()[0];
    assert_eq!(
        instance.subnet_id(),
        Some(owned.id("aws_subnet", "network.public_a").as_str())
    );
    assert_eq!(
        instance.security_groups()[0].group_id(),
        Some(sg_id.as_str())
    );
    // The public subnets route to the internet through the environment's gateway.
    let igw_id = &owned.id("aws_internet_gateway", "network.igw");
    let gateway = ec2
        .describe_internet_gateways()
        .internet_gateway_ids(igw_id)
        .send()
        .await
        .expect("igw");
    assert_eq!(
        gateway.internet_gateways()[0].attachments()[0].vpc_id(),
        Some(vpc_id.as_str())
    );
    let table_id = &owned.id("aws_route_table", "network.public");
    let tables = ec2
        .describe_route_tables()
        .route_table_ids(table_id)
        .send()
        .await
        .expect("route table");
    let table = &tables.route_tables()[0];
    assert!(table
        .routes()
        .iter()
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
            && r.gateway_id() == Some(igw_id.as_str())));
    let mut associated: Vec<&str> = table
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id())
        .collect();
    associated.sort();
    let mut public = owned.ids("aws_subnet");
    public.sort();
    assert_eq!(associated, public);
    let listed: Vec<(&str, &str)> = owned
        .route_table_associations
        .iter()
        .map(|(table, subnet, _)| (table.as_str(), subnet.as_str()))
        .collect();
    assert_eq!(
        listed,
        public
            .iter()
            .map(|s| ("network.public", s.as_str()))
            .collect::<Vec<_>>(),
        "what the environment owns includes the associations"
    );

    // Kubernetes: namespace, ConfigMaps (inline and from a file), the chart's objects, labelled.
    let client = kube_client(settings).await;
    let settings_cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("app-settings")
        .await
        .expect("app-settings");
    let data = settings_cm.data.clone().unwrap_or_default();
    assert_eq!(data["LOG_LEVEL"], "debug");
    assert_eq!(data["app.properties"], "server.port=8080\ncache.size=64\n");
    // Values flow from the cloud into the cluster.
    assert_eq!(&data["VPC_ID"], vpc_id);
    let ip = instance.private_ip_address().expect("private IP");
    assert_eq!(data["WEB_URL"], format!("http://{ip}/"));
    let labels = settings_cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["envboot.dev/environment"], name);
    assert_eq!(
        settings_cm.metadata.annotations.clone().unwrap_or_default()["envboot.dev/revision"],
        sha
    );
    let chart_cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("hello-config")
        .await
        .expect("hello-config");
    assert_eq!(
        chart_cm.data.unwrap_or_default()["GREETING"],
        format!("Hello from {name}")
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("hello")
        .await
        .expect("deployment");
    assert_eq!(
        deployment.metadata.labels.unwrap_or_default()["envboot.dev/release"],
        "hello"
    );
    Api::<Service>::namespaced(client.clone(), &ns)
        .get("hello")
        .await
        .expect("service");

    // Second apply of the same commit: no changes, no write call, nothing touched.
    let before = versions(&client, &ns).await;
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    assert!(
        run.stdout.contains("(0 writes), Kubernetes") && run.stdout.ends_with("(0 writes).\n"),
        "{}",
        run.stdout
    );
    assert_eq!(versions(&client, &ns).await, before);
    assert_eq!(
        owned_aws(&ec2, &name).await,
        owned,
        "AWS resources and their tags are unchanged"
    );

    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_value_in_a_new_commit_updates_exactly_that_resource_and_rollback_restores_it() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("change");
    let ns = format!("{name}-apps");
    let repo = sandbox_repo(&name);
    let first = repo.git(&["rev-parse", "HEAD"]);
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let client = kube_client(settings).await;
    let ec2 = ec2(settings).await;
    let before_k8s = versions(&client, &ns).await;
    let before_aws = owned_aws(&ec2, &name).await;

    let env_file = format!("environments/{name}/environment.yaml");
    repo.edit(&env_file, "LOG_LEVEL: debug", "LOG_LEVEL: info");
    let second = repo.commit("raise the log level");
    let run = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("~ data.LOG_LEVEL: \"debug\" -> \"info\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("0 to add, 1 to change, 0 to replace, 0 to destroy"),
        "{}",
        run.stdout
    );

    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    let after_k8s = versions(&client, &ns).await;
    let changed: Vec<&String> = after_k8s
        .keys()
        .filter(|k| before_k8s.get(*k) != after_k8s.get(*k))
        .collect();
    assert_eq!(changed, vec!["ConfigMap/app-settings"]);
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("app-settings")
        .await
        .expect("cm");
    assert_eq!(cm.data.unwrap_or_default()["LOG_LEVEL"], "info");
    assert_eq!(
        cm.metadata.annotations.unwrap_or_default()["envboot.dev/revision"],
        second
    );
    assert_eq!(owned_aws(&ec2, &name).await, before_aws, "AWS untouched");
    let run = envboot(&repo, settings, &["status", &name]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains(&format!("Live:   {}, applied ", &second[..12])),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{} x1", &second[..12])),
        "only the ConfigMap is stamped with the new commit: {}",
        run.stdout
    );
    assert!(run.stdout.contains("Drift:  none"), "{}", run.stdout);

    // A security group rule changes in place: same group id, new rules.
    repo.edit(
        "modules/web-tier/module.yaml",
        "from_port: 22, to_port: 22",
        "from_port: 2222, to_port: 2222",
    );
    repo.commit("move SSH");
    let run = envboot(&repo, settings, &["apply", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains("~ aws_security_group web.web: updated"),
        "{}",
        run.stdout
    );
    let after_aws = owned_aws(&ec2, &name).await;
    assert_eq!(
        after_aws.ids_by_type(),
        before_aws.ids_by_type(),
        "same resources, same ids"
    );
    let sg_id = &after_aws.id("aws_security_group", "web.web");
    let groups = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .expect("sg");
    let mut ports: Vec<i32> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![80, 2222]);

    // Rollback: apply the first revision.
    let run = envboot(&repo, settings, &["apply", &name, "--revision", &first]);
    run.assert_ok();
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("app-settings")
        .await
        .expect("cm");
    assert_eq!(cm.data.unwrap_or_default()["LOG_LEVEL"], "debug");
    let groups = ec2
        .describe_security_groups()
        .group_ids(sg_id)
        .send()
        .await
        .expect("sg");
    let mut ports: Vec<i32> = groups.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    assert_eq!(ports, vec![22, 80]);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_removes_what_the_environment_owns_and_nothing_else() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("destroy");
    let ns = format!("{name}-apps");
    let repo = sandbox_repo(&name);
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let ec2 = ec2(settings).await;
    let client = kube_client(settings).await;

    // Resources beside it that envboot does not own: a VPC with a look-alike Name tag, and
    // ConfigMaps in the environment's namespace and in `default`.
    let foreign_vpc = ec2
        .create_vpc()
        .cidr_block("10.42.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("Name")
                        .value(format!("{name}-network.vpc"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateVpc")
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let foreign_cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{name}-not-ours")},
        "data": {"keep": "me"},
    }))
    .expect("configmap");
    for namespace in [ns.as_str(), "default"] {
        Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &foreign_cm)
            .await
            .expect("create foreign configmap");
    }

    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!("namespace {ns} kept")),
        "{}",
        run.stdout
    );

    assert!(
        owned_aws(&ec2, &name).await.is_empty(),
        "nothing with the environment's tag is left"
    );
    let vpcs = ec2
        .describe_vpcs()
        .vpc_ids(&foreign_vpc)
        .send()
        .await
        .expect("foreign vpc survives");
    assert_eq!(vpcs.vpcs().len(), 1);
    for namespace in [ns.as_str(), "default"] {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get(&format!("{name}-not-ours"))
            .await
            .expect("foreign configmap survives");
        assert_eq!(cm.data.unwrap_or_default()["keep"], "me");
    }
    let owned = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .list(&labelled(&name))
        .await
        .expect("list");
    assert!(owned.items.is_empty(), "owned ConfigMaps are gone");
    assert!(Api::<Deployment>::namespaced(client.clone(), &ns)
        .get_opt("hello")
        .await
        .expect("get")
        .is_none());

    // Clean up what the test made by hand.
    ec2.delete_vpc()
        .vpc_id(&foreign_vpc)
        .send()
        .await
        .expect("DeleteVpc");
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .delete(&format!("{name}-not-ours"), &Default::default())
        .await
        .expect("delete");
}
