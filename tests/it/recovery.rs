//! Disaster recovery: everything is deleted by hand behind envboot's back (the AWS resources,
//! the namespace, the inventory), and one apply rebuilds it all from Git. And destroy's leak
//! report: what still carries the environment's labels after destroy is listed, exit 1.

use std::collections::BTreeMap;
use std::io::BufRead;

use crate::common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};

/// Deletes every AWS resource of the environment with the SDK, in the order AWS needs.
async fn delete_aws_by_hand(ec2: &aws_sdk_ec2::Client, name: &str) {
    let owned = owned_aws(ec2, name).await;
    let kinds: std::collections::BTreeSet<&str> = owned.resources.iter().map(|o| o.rtype).collect();
    let handled = [
        "aws_instance",
        "aws_internet_gateway",
        "aws_route_table",
        "aws_security_group",
        "aws_subnet",
        "aws_vpc",
    ];
    assert!(
        kinds.iter().all(|k| handled.contains(k)),
        "this test deletes only {handled:?} by hand: {kinds:?}"
    );
    let instances = owned.ids("aws_instance");
    if !instances.is_empty() {
        ec2.terminate_instances()
            .set_instance_ids(Some(instances))
            .send()
            .await
            .expect("TerminateInstances");
    }
    let vpc = owned.ids("aws_vpc").pop().expect("the VPC");
    for igw in owned.ids("aws_internet_gateway") {
        ec2.detach_internet_gateway()
            .internet_gateway_id(&igw)
            .vpc_id(&vpc)
            .send()
            .await
            .expect("DetachInternetGateway");
        ec2.delete_internet_gateway()
            .internet_gateway_id(&igw)
            .send()
            .await
            .expect("DeleteInternetGateway");
    }
    for (_, _, association) in &owned.route_table_associations {
        ec2.disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .expect("DisassociateRouteTable");
    }
    for table in owned.ids("aws_route_table") {
        ec2.delete_route_table()
            .route_table_id(table)
            .send()
            .await
            .expect("DeleteRouteTable");
    }
    for sg in owned.ids("aws_security_group") {
        ec2.delete_security_group()
            .group_id(sg)
            .send()
            .await
            .expect("DeleteSecurityGroup");
    }
    for subnet in owned.ids("aws_subnet") {
        ec2.delete_subnet()
            .subnet_id(subnet)
            .send()
            .await
            .expect("DeleteSubnet");
    }
    ec2.delete_vpc()
        .vpc_id(&vpc)
        .send()
        .await
        .expect("DeleteVpc");
}

/// The environment's AWS resources by address, and how many of each.
async fn aws_addresses(ec2: &aws_sdk_ec2::Client, name: &str) -> BTreeMap<String, usize> {
    owned_aws(ec2, name).await.count_by_address()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_apply_rebuilds_everything_deleted_behind_envboots_back() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("disaster");
    let repo = sandbox_repo(&name);
    envboot(&repo, settings, &["apply", &name, "--wait", "120s"]).assert_ok();
    let ec2 = ec2(settings).await;
    let client = kube_client(settings).await;
    let ns = format!("{name}-apps");
    let greeting = format!("Hello from {name}\n");
    assert_eq!(service_answer(&client, &ns, "hello").await, greeting);
    let before = aws_addresses(&ec2, &name).await;
    assert_eq!(before.len(), 7, "{before:?}");

    // The disaster: AWS resources, the namespace with everything in it, and envboot's inventory.
    delete_aws_by_hand(&ec2, &name).await;
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::foreground())
        .await
        .expect("delete the namespace");
    // Namespace deletion finishes in the background; one apply must cope either way, but the
    // rebuild is only meaningful once it is gone.
    let gone = {
        use futures::StreamExt;
        let watch = namespaces
            .watch(
                &kube::api::WatchParams::default()
                    .fields(&format!("metadata.name={ns}"))
                    .timeout(120),
                "0",
            )
            .await
            .expect("watch");
        let mut events = watch.boxed();
        let mut gone = namespaces.get_opt(&ns).await.expect("get").is_none();
        while !gone {
            match events.next().await {
                Some(Ok(kube::api::WatchEvent::Deleted(_))) => gone = true,
                Some(_) => {}
                None => break,
            }
        }
        gone
    };
    assert!(gone, "the namespace was deleted");
    let _ = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .delete(
            &format!("envboot-inventory-{name}"),
            &DeleteParams::default(),
        )
        .await;

    // One apply restores it all, from Git alone, and the app answers again.
    let run = envboot(&repo, settings, &["apply", &name, "--wait", "120s"]);
    run.assert_ok();
    assert_eq!(service_answer(&client, &ns, "hello").await, greeting);
    let after = aws_addresses(&ec2, &name).await;
    assert_eq!(
        after, before,
        "exactly one of every AWS resource, tagged as before"
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("app-settings")
        .await
        .expect("the ConfigMap is back");
    let vpc = owned_aws(&ec2, &name).await.id("aws_vpc", "network.vpc");
    assert_eq!(
        cm.data.unwrap_or_default()["VPC_ID"],
        vpc,
        "it refers to the new VPC"
    );
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("hello")
        .await
        .expect("the chart's Deployment is back");
    let plan = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn destroy_reports_what_still_carries_the_environments_labels() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("leak");
    let repo = sandbox_repo(&name);
    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let client = kube_client(settings).await;
    let defaults = Api::<ConfigMap>::namespaced(client.clone(), "default");

    // While destroy runs (after it planned), something labelled as the environment's appears.
    let mut destroy = Envboot::new(settings)
        .args(["destroy", &name])
        .json()
        .repo(&repo)
        .spawn_with_output();
    let mut lines = std::io::BufReader::new(destroy.stdout.take().expect("stdout")).lines();
    let planned = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("\"event\":\"plan\""));
    assert!(planned);
    let rogue: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{name}-late"), "labels": {"envboot.dev/environment": name}},
        "data": {"made": "during destroy"},
    }))
    .expect("configmap");
    defaults
        .create(&PostParams::default(), &rogue)
        .await
        .expect("create");
    let _: Vec<String> = lines.map_while(Result::ok).collect();
    let out = destroy.wait_with_output().expect("destroy ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a leak fails destroy: {stderr}");
    assert!(
        stderr.contains("destroy left behind what still carries the environment's tags or labels")
            && stderr.contains(&format!("ConfigMap default/{name}-late")),
        "the leak report names it: {stderr}"
    );

    // envboot never applied it, so it is not envboot's to delete: a rerun leaves it alone and
    // reports it again (text output this time), until its owner removes it.
    let run = envboot(&repo, settings, &["destroy", &name]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "ConfigMap default/{name}-late (labelled, but not applied by envboot)"
        )),
        "{}",
        run.stderr
    );
    defaults
        .get(&format!("{name}-late"))
        .await
        .expect("left alone");
    defaults
        .delete(&format!("{name}-late"), &Default::default())
        .await
        .expect("its owner removes it");
    let run = envboot(&repo, settings, &["destroy", &name]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("Leak check: nothing carries the environment's tags or labels any more."),
        "{}",
        run.stdout
    );
}
