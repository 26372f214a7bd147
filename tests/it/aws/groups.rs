//! Security groups whose rules refer to each other.

use super::*;

/// Two security groups whose rules admit each other (web from db, db from web): both are
/// created, then each gets its rule naming the other; the next plan changes nothing; destroy
/// revokes the rules before deleting the groups.
#[tokio::test(flavor = "multi_thread")]
async fn security_groups_that_refer_to_each_other_are_created_and_destroyed() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("mutual");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: app\n    module: mutual\n"
    );
    let repo = Repo::new(&name, &env);
    repo.write(
        "modules/mutual/module.yaml",
        r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.94.0.0/16
  - name: web
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 8080, to_port: 8080, security_groups: ["${db.id}"]}
      - {protocol: tcp, from_port: 443, to_port: 443, cidr_blocks: [10.94.0.0/16]}
  - name: db
    type: aws_security_group
    vpc_id: ${vpc.id}
    ingress:
      - {protocol: tcp, from_port: 5432, to_port: 5432, security_groups: ["${web.id}"]}
"#,
    );
    repo.commit("groups that admit each other");
    envboot(&repo, settings, &["apply", &name]).assert_ok();

    let ec2 = ec2(settings).await;
    let groups = ec2
        .describe_security_groups()
        .filters(env_filter(&name))
        .send()
        .await
        .expect("DescribeSecurityGroups");
    let by_address: BTreeMap<String, &aws_sdk_ec2::types::SecurityGroup> = groups
        .security_groups()
        .iter()
        .map(|g| (tags(g.tags())["envboot:address"].clone(), g))
        .collect();
    let id = |a: &str| by_address[a].group_id().unwrap_or_default().to_string();
    let sources = |a: &str| -> Vec<(i32, String)> {
        by_address[a]
            .ip_permissions()
            .iter()
            .flat_map(|p| {
                p.user_id_group_pairs().iter().map(move |g| {
                    (
                        p.from_port().unwrap_or(-1),
                        g.group_id().unwrap_or_default().to_string(),
                    )
                })
            })
            .collect()
    };
    assert_eq!(sources("app.web"), [(8080, id("app.db"))]);
    assert_eq!(sources("app.db"), [(5432, id("app.web"))]);
    // The CIDR rule of web was made with the group.
    assert!(by_address["app.web"]
        .ip_permissions()
        .iter()
        .any(|p| p.from_port() == Some(443)));

    let r = envboot(&repo, settings, &["plan", &name, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}
