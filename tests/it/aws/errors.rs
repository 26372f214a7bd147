//! A permanent AWS error stops the run, naming the resource, the call and AWS's message; nothing
//! after it is made.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_error_stops_the_run_naming_the_resource_the_call_and_aws_message() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("awserror");
    let env = format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: net\n    module: broken\n"
    );
    let repo = Repo::new(&name, &env);
    // The route points to a gateway that does not exist; the subnet after it is never made.
    repo.write(
        "modules/broken/module.yaml",
        r#"apiVersion: envboot.dev/v1alpha1
kind: Module
resources:
  - name: vpc
    type: aws_vpc
    cidr_block: 10.65.0.0/16
  - name: rt
    type: aws_route_table
    vpc_id: ${vpc.id}
    routes:
      - {cidr_block: 0.0.0.0/0, gateway_id: igw-00000000000000000}
  - name: after
    type: aws_subnet
    vpc_id: ${rt.id}
    cidr_block: 10.65.1.0/24
    availability_zone: us-east-1a
"#,
    );
    repo.commit("broken module");
    let run = envboot(&repo, settings, &["apply", &name]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("error: CreateRoute for net.rt failed: InvalidInternetGatewayID.NotFound"),
        "{}",
        run.stderr
    );
    let ec2 = ec2(settings).await;
    let live = owned_aws(&ec2, &name).await;
    assert!(
        live.of("aws_subnet").next().is_none(),
        "nothing after the failure: {live:?}"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
    let left = owned_aws(&ec2, &name).await;
    assert!(left.is_empty(), "{left:#?}");
}
