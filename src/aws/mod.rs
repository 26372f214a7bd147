//! AWS provider: finds the environment's EC2 resources by tag and carries out AWS changes.
//!
//! # Guarantees
//! - Identity is the tags `envboot:environment` and `envboot:address`; there is no state file.
//!   Tags are set at creation (`TagSpecifications`), so a crash cannot leave an untagged resource.
//! - Discovery is one paginated Describe call per resource type for the whole environment.
//! - Only resources carrying the environment's tag are ever modified or deleted.
//! - `RunInstances` carries a `ClientToken` derived from the environment, address and arguments,
//!   so a retried create does not start a second instance.
//!
//! Credentials, region and endpoint come from the standard AWS chain (`AWS_ENDPOINT_URL` included).

pub mod diff;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, InstanceStateName, IpPermission, IpRange, Tag, TagSpecification,
    UserIdGroupPair,
};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{json, Map, Value};

use crate::model::spec::{
    normalized_rules, Instance, InternetGateway, Route, RouteTable, Rule, SecurityGroup, Subnet,
    Vpc,
};
use crate::model::{ResourceSpec, ResourceType};
pub use diff::{Actual, AwsChange};

/// Tag naming the environment that owns a resource.
pub const TAG_ENVIRONMENT: &str = "envboot:environment";
/// Tag holding the resource's address (`module.resource`).
pub const TAG_ADDRESS: &str = "envboot:address";
/// Tag holding the commit the resource was created or last changed from.
pub const TAG_REVISION: &str = "envboot:revision";
/// Tag holding the hash of an instance's user data (AWS does not return it in DescribeInstances).
pub const TAG_USER_DATA: &str = "envboot:user-data";

/// How long a deletion keeps retrying `DependencyViolation` and waits for instances to terminate.
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{call} for {resource} failed: {message}")]
    CallFailed {
        resource: String,
        call: &'static str,
        code: Option<String>,
        message: String,
    },
    #[error("{call} returned no {what} for {resource}")]
    MissingInResponse {
        resource: String,
        call: &'static str,
        what: &'static str,
    },
    #[error("timed out after {seconds}s waiting for {resource} ({id}) to {goal}")]
    WaitTimedOut {
        resource: String,
        id: String,
        goal: &'static str,
        seconds: u64,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn call_failed<'a, E, R>(
    resource: &'a str,
    call: &'static str,
) -> impl FnOnce(aws_sdk_ec2::error::SdkError<E, R>) -> Error + 'a
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    move |err| {
        let code = err.code().map(str::to_string);
        let message = match (err.code(), err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        };
        Error::CallFailed {
            resource: resource.to_string(),
            call,
            code,
            message,
        }
    }
}

/// Counts the EC2 API calls made, by operation name (every attempt counts).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    /// Calls made so far, by operation (`DescribeVpcs`, `CreateVpc`, ...).
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Calls that may change something: everything but `Describe*`.
    pub fn writes(&self) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(op, _)| !op.starts_with("Describe"))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "envboot-call-counter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            if let Ok(mut map) = self.0.lock() {
                *map.entry(metadata.name().to_string()).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// A connection to EC2 in one region.
#[derive(Debug, Clone)]
pub struct Aws {
    client: Client,
    pub calls: CallCounter,
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// User tags as fields: everything but envboot's and AWS's own.
fn user_tags(tags: &[Tag]) -> Value {
    let map: Map<String, Value> = tags
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .filter(|(k, _)| !k.starts_with("envboot:") && !k.starts_with("aws:"))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(map)
}

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A resource found by the environment's tag, with its arguments as read (`fields`, to which its
/// user tags are added) and its attributes besides `id`. `None` without an id or address tag.
fn found(
    rtype: ResourceType,
    id: Option<&str>,
    tags: &[Tag],
    fields: Value,
    attributes: &[(&str, &str)],
) -> Option<Actual> {
    let id = id?;
    // An unowned resource has no address tag: its Name (`<environment>-<address>`) stands in.
    let address = tag_value(tags, TAG_ADDRESS)
        .or_else(|| tag_value(tags, "Name"))?
        .to_string();
    let mut fields = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    fields.insert("tags".into(), user_tags(tags));
    let attributes = std::iter::once(("id", id))
        .chain(attributes.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Actual {
        rtype,
        address,
        id: id.to_string(),
        owner: tag_value(tags, TAG_ENVIRONMENT).map(str::to_string),
        revision: tag_value(tags, TAG_REVISION).map(str::to_string),
        fields,
        attributes,
    })
}

fn rules_from(permissions: &[IpPermission]) -> Value {
    let rules: Vec<Rule> = permissions
        .iter()
        .map(|p| {
            let protocol = p.ip_protocol().unwrap_or("-1").to_string();
            let all = protocol == "-1";
            Rule {
                protocol,
                from_port: p.from_port().unwrap_or(if all { 0 } else { -1 }),
                to_port: p.to_port().unwrap_or(if all { 0 } else { -1 }),
                cidr_blocks: p
                    .ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_string))
                    .collect(),
                security_groups: p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string))
                    .collect(),
            }
        })
        .collect();
    json!(normalized_rules(&rules))
}

fn permission(rule: &Rule) -> IpPermission {
    IpPermission::builder()
        .ip_protocol(&rule.protocol)
        .from_port(rule.from_port)
        .to_port(rule.to_port)
        .set_ip_ranges(Some(
            rule.cidr_blocks
                .iter()
                .map(|c| IpRange::builder().cidr_ip(c).build())
                .collect(),
        ))
        .set_user_id_group_pairs(Some(
            rule.security_groups
                .iter()
                .map(|g| UserIdGroupPair::builder().group_id(g).build())
                .collect(),
        ))
        .build()
}

/// Ingress or egress: the two directions of security group rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

impl Aws {
    /// Connects with the standard AWS configuration chain, in `region`.
    pub async fn connect(region: &str) -> Aws {
        // Throttling (`RequestLimitExceeded`), 5xx answers and dropped connections are retried
        // with exponential backoff and jitter; a permanent error stops at once.
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(8)
            .with_initial_backoff(Duration::from_millis(200))
            .with_max_backoff(Duration::from_secs(20));
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .retry_config(retry)
            .load()
            .await;
        let calls = CallCounter::default();
        let config = aws_sdk_ec2::config::Builder::from(&shared)
            .interceptor(calls.clone())
            .build();
        Aws {
            client: Client::from_conf(config),
            calls,
        }
    }

    /// Every resource carrying `environment`'s tag: one paginated Describe call per type.
    pub async fn discover(&self, environment: &str) -> Result<Vec<Actual>> {
        let scope = format!("environment {environment}");
        self.discover_by(&scope, &Self::env_filter(environment), &ResourceType::ALL)
            .await
    }

    /// Resources of the given types matching `by`, one paginated Describe call per type.
    async fn discover_by(
        &self,
        scope: &str,
        by: &Filter,
        types: &[ResourceType],
    ) -> Result<Vec<Actual>> {
        let wanted = |t| types.contains(&t);
        let none = || async { Ok(Vec::new()) };
        let (vpcs, subnets, groups, instances, gateways, tables) = tokio::try_join!(
            async {
                if wanted(ResourceType::Vpc) {
                    self.discover_vpcs(scope, by).await
                } else {
                    none().await
                }
            },
            async {
                if wanted(ResourceType::Subnet) {
                    self.discover_subnets(scope, by).await
                } else {
                    none().await
                }
            },
            async {
                if wanted(ResourceType::SecurityGroup) {
                    self.discover_security_groups(scope, by).await
                } else {
                    none().await
                }
            },
            async {
                if wanted(ResourceType::Instance) {
                    self.discover_instances(scope, by).await
                } else {
                    none().await
                }
            },
            async {
                if wanted(ResourceType::InternetGateway) {
                    self.discover_internet_gateways(scope, by).await
                } else {
                    none().await
                }
            },
            async {
                if wanted(ResourceType::RouteTable) {
                    self.discover_route_tables(scope, by).await
                } else {
                    none().await
                }
            },
        )?;
        Ok([vpcs, subnets, groups, instances, gateways, tables]
            .into_iter()
            .flatten()
            .collect())
    }

    /// Resources named like ones `environment` is about to create (`Name` = `<env>-<address>`)
    /// that do not carry its tag: conflicts, unless adopted. Only asks AWS when `creates` is not
    /// empty, one Describe per type involved.
    pub async fn find_unowned(
        &self,
        environment: &str,
        creates: &[(ResourceType, String)],
    ) -> Result<Vec<Actual>> {
        if creates.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = creates
            .iter()
            .map(|(_, a)| format!("{environment}-{a}"))
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let types: Vec<ResourceType> = creates.iter().map(|(t, _)| *t).collect();
        let scope = format!("resources named like environment {environment}'s");
        let found = self
            .discover_by(&scope, &filter("tag:Name", &name_refs), &types)
            .await?;
        let prefix = format!("{environment}-");
        Ok(found
            .into_iter()
            .filter(|a| a.owner.as_deref() != Some(environment))
            .map(|mut a| {
                if a.owner.is_none() {
                    a.address = a
                        .address
                        .strip_prefix(&prefix)
                        .unwrap_or(&a.address)
                        .to_string();
                }
                a
            })
            .filter(|a| {
                creates
                    .iter()
                    .any(|(t, addr)| *t == a.rtype && *addr == a.address)
            })
            .collect())
    }

    /// Takes over an unowned resource: tags it as `environment`'s resource `address`.
    pub async fn adopt(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        id: &str,
    ) -> Result<()> {
        self.client
            .create_tags()
            .resources(id)
            .tags(tag(TAG_ENVIRONMENT, environment))
            .tags(tag(TAG_ADDRESS, address))
            .tags(tag(TAG_REVISION, revision))
            .send()
            .await
            .map_err(call_failed(address, "CreateTags"))?;
        Ok(())
    }

    fn env_filter(environment: &str) -> Filter {
        filter(&format!("tag:{TAG_ENVIRONMENT}"), &[environment])
    }

    async fn discover_vpcs(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_vpcs()
            .filters(by.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeVpcs"))?;
            out.extend(page.vpcs().iter().filter_map(|v| {
                let cidr = v.cidr_block().unwrap_or_default();
                found(
                    ResourceType::Vpc,
                    v.vpc_id(),
                    v.tags(),
                    json!({"cidr_block": cidr}),
                    &[("cidr_block", cidr)],
                )
            }));
        }
        Ok(out)
    }

    async fn discover_subnets(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_subnets()
            .filters(by.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeSubnets"))?;
            out.extend(page.subnets().iter().filter_map(|s| {
                let (cidr, zone) = (
                    s.cidr_block().unwrap_or_default(),
                    s.availability_zone().unwrap_or_default(),
                );
                let fields = json!({
                    "vpc_id": s.vpc_id().unwrap_or_default(),
                    "cidr_block": cidr,
                    "availability_zone": zone,
                    "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false),
                });
                found(
                    ResourceType::Subnet,
                    s.subnet_id(),
                    s.tags(),
                    fields,
                    &[("cidr_block", cidr), ("availability_zone", zone)],
                )
            }));
        }
        Ok(out)
    }

    async fn discover_security_groups(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_security_groups()
            .filters(by.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeSecurityGroups"))?;
            out.extend(page.security_groups().iter().filter_map(|g| {
                let fields = json!({
                    "vpc_id": g.vpc_id().unwrap_or_default(),
                    "description": g.description().unwrap_or_default(),
                    "ingress": rules_from(g.ip_permissions()),
                    "egress": rules_from(g.ip_permissions_egress()),
                });
                found(
                    ResourceType::SecurityGroup,
                    g.group_id(),
                    g.tags(),
                    fields,
                    &[],
                )
            }));
        }
        Ok(out)
    }

    async fn discover_internet_gateways(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_internet_gateways()
            .filters(by.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeInternetGateways"))?;
            out.extend(page.internet_gateways().iter().filter_map(|g| {
                let vpc = g
                    .attachments()
                    .iter()
                    .find_map(|a| a.vpc_id())
                    .unwrap_or_default();
                found(
                    ResourceType::InternetGateway,
                    g.internet_gateway_id(),
                    g.tags(),
                    json!({"vpc_id": vpc}),
                    &[],
                )
            }));
        }
        Ok(out)
    }

    async fn discover_route_tables(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_route_tables()
            .filters(by.clone())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeRouteTables"))?;
            out.extend(page.route_tables().iter().filter_map(|t| {
                let mut routes: Vec<Route> = t
                    .routes()
                    .iter()
                    .filter(|r| r.gateway_id() != Some("local"))
                    .filter_map(|r| {
                        Some(Route {
                            cidr_block: r.destination_cidr_block()?.to_string(),
                            gateway_id: r.gateway_id()?.to_string(),
                        })
                    })
                    .collect();
                routes.sort();
                // Each association's id, to undo it on update or delete.
                let associations: Vec<(String, &str)> = t
                    .associations()
                    .iter()
                    .filter(|a| a.main() != Some(true))
                    .filter_map(|a| Some((format!("association:{}", a.subnet_id()?), a.route_table_association_id()?)))
                    .collect();
                let mut subnets: Vec<&str> =
                    associations.iter().filter_map(|(k, _)| k.strip_prefix("association:")).collect();
                subnets.sort_unstable();
                let fields = json!({"vpc_id": t.vpc_id().unwrap_or_default(), "routes": routes, "subnet_ids": subnets});
                let attributes: Vec<(&str, &str)> = associations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                found(ResourceType::RouteTable, t.route_table_id(), t.tags(), fields, &attributes)
            }));
        }
        Ok(out)
    }

    async fn discover_instances(&self, scope: &str, by: &Filter) -> Result<Vec<Actual>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(by.clone())
            .filters(filter(
                "instance-state-name",
                &["pending", "running", "stopping", "stopped"],
            ))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(call_failed(scope, "DescribeInstances"))?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| {
                let mut groups: Vec<&str> = i.security_groups().iter().filter_map(|g| g.group_id()).collect();
                groups.sort_unstable();
                let fields = json!({
                    "ami": i.image_id().unwrap_or_default(),
                    "instance_type": i.instance_type().map(|t| t.as_str()).unwrap_or_default(),
                    "subnet_id": i.subnet_id().unwrap_or_default(),
                    "vpc_security_group_ids": groups,
                    "user_data": tag_value(i.tags(), TAG_USER_DATA),
                });
                let private_ip = i.private_ip_address().unwrap_or_default();
                found(ResourceType::Instance, i.instance_id(), i.tags(), fields, &[("private_ip", private_ip)])
            }));
        }
        Ok(out)
    }

    fn tag_spec(
        kind: aws_sdk_ec2::types::ResourceType,
        environment: &str,
        address: &str,
        revision: &str,
        user: &BTreeMap<String, String>,
        extra: &[(&str, &str)],
    ) -> TagSpecification {
        let mut tags = vec![
            tag(TAG_ENVIRONMENT, environment),
            tag(TAG_ADDRESS, address),
            tag(TAG_REVISION, revision),
        ];
        if !user.contains_key("Name") {
            tags.push(tag("Name", &format!("{environment}-{address}")));
        }
        tags.extend(user.iter().map(|(k, v)| tag(k, v)));
        tags.extend(extra.iter().map(|(k, v)| tag(k, v)));
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags))
            .build()
    }

    /// Creates a resource whose references are resolved; returns its attributes.
    pub async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> Result<BTreeMap<String, String>> {
        use aws_sdk_ec2::types::ResourceType as Rt;
        let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        match spec {
            ResourceSpec::Vpc(Vpc { cidr_block, tags }) => {
                let out = self
                    .client
                    .create_vpc()
                    .cidr_block(cidr_block)
                    .tag_specifications(Self::tag_spec(
                        Rt::Vpc,
                        environment,
                        address,
                        revision,
                        tags,
                        &[],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateVpc"))?;
                let id = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .ok_or(Error::MissingInResponse {
                        resource: address.to_string(),
                        call: "CreateVpc",
                        what: "VpcId",
                    })?;
                Ok(attrs(&[("id", id), ("cidr_block", cidr_block)]))
            }
            ResourceSpec::Subnet(Subnet {
                vpc_id,
                cidr_block,
                availability_zone,
                map_public_ip_on_launch,
                tags,
            }) => {
                let out = self
                    .client
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block(cidr_block)
                    .availability_zone(availability_zone)
                    .tag_specifications(Self::tag_spec(
                        Rt::Subnet,
                        environment,
                        address,
                        revision,
                        tags,
                        &[],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateSubnet"))?;
                let id =
                    out.subnet()
                        .and_then(|s| s.subnet_id())
                        .ok_or(Error::MissingInResponse {
                            resource: address.to_string(),
                            call: "CreateSubnet",
                            what: "SubnetId",
                        })?;
                if *map_public_ip_on_launch {
                    self.set_public_ip(address, id, true).await?;
                }
                Ok(attrs(&[
                    ("id", id),
                    ("cidr_block", cidr_block),
                    ("availability_zone", availability_zone),
                ]))
            }
            ResourceSpec::SecurityGroup(SecurityGroup {
                vpc_id,
                description,
                ingress,
                egress,
                tags,
            }) => {
                let out = self
                    .client
                    .create_security_group()
                    .group_name(format!("{environment}-{address}"))
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(Self::tag_spec(
                        Rt::SecurityGroup,
                        environment,
                        address,
                        revision,
                        tags,
                        &[],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateSecurityGroup"))?;
                let id = out.group_id().ok_or(Error::MissingInResponse {
                    resource: address.to_string(),
                    call: "CreateSecurityGroup",
                    what: "GroupId",
                })?;
                self.authorize(Direction::Ingress, address, id, ingress)
                    .await?;
                if let Some(egress) = egress {
                    // Declared egress replaces AWS's default allow-all rule.
                    let default = Rule {
                        protocol: "-1".into(),
                        from_port: 0,
                        to_port: 0,
                        cidr_blocks: vec!["0.0.0.0/0".into()],
                        security_groups: Vec::new(),
                    };
                    let egress = normalized_rules(egress);
                    if !egress.contains(&default) {
                        self.revoke(
                            Direction::Egress,
                            address,
                            id,
                            std::slice::from_ref(&default),
                        )
                        .await?;
                    }
                    let added: Vec<Rule> = egress.into_iter().filter(|r| *r != default).collect();
                    self.authorize(Direction::Egress, address, id, &added)
                        .await?;
                }
                Ok(attrs(&[("id", id)]))
            }
            ResourceSpec::InternetGateway(InternetGateway { vpc_id, tags }) => {
                let out = self
                    .client
                    .create_internet_gateway()
                    .tag_specifications(Self::tag_spec(
                        Rt::InternetGateway,
                        environment,
                        address,
                        revision,
                        tags,
                        &[],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateInternetGateway"))?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .ok_or(Error::MissingInResponse {
                        resource: address.to_string(),
                        call: "CreateInternetGateway",
                        what: "InternetGatewayId",
                    })?;
                self.client
                    .attach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc_id)
                    .send()
                    .await
                    .map_err(call_failed(address, "AttachInternetGateway"))?;
                Ok(attrs(&[("id", id)]))
            }
            ResourceSpec::RouteTable(RouteTable {
                vpc_id,
                routes,
                subnet_ids,
                tags,
            }) => {
                let out = self
                    .client
                    .create_route_table()
                    .vpc_id(vpc_id)
                    .tag_specifications(Self::tag_spec(
                        Rt::RouteTable,
                        environment,
                        address,
                        revision,
                        tags,
                        &[],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateRouteTable"))?;
                let id = out.route_table().and_then(|t| t.route_table_id()).ok_or(
                    Error::MissingInResponse {
                        resource: address.to_string(),
                        call: "CreateRouteTable",
                        what: "RouteTableId",
                    },
                )?;
                for route in routes {
                    self.create_route(address, id, route).await?;
                }
                let mut attributes = attrs(&[("id", id)]);
                for subnet in subnet_ids {
                    let association = self.associate(address, id, subnet).await?;
                    attributes.insert(format!("association:{subnet}"), association);
                }
                Ok(attributes)
            }
            ResourceSpec::Instance(Instance {
                ami,
                instance_type,
                subnet_id,
                vpc_security_group_ids,
                user_data,
                tags,
            }) => {
                let user_data_hash = user_data.as_deref().map(diff::short_hash);
                let extra: Vec<(&str, &str)> = user_data_hash
                    .as_deref()
                    .map(|h| vec![(TAG_USER_DATA, h)])
                    .unwrap_or_default();
                let token_source = format!(
                    "{environment}/{address}/{}",
                    serde_json::to_string(spec).unwrap_or_default()
                );
                let token = diff::short_hash(&token_source).replace("sha256:", "envboot-");
                let out = self
                    .client
                    .run_instances()
                    .image_id(ami)
                    .instance_type(aws_sdk_ec2::types::InstanceType::from(
                        instance_type.as_str(),
                    ))
                    .subnet_id(subnet_id)
                    .set_security_group_ids(Some(vpc_security_group_ids.clone()))
                    .set_user_data(
                        user_data
                            .as_deref()
                            .map(|u| crate::render::template::base64(u.as_bytes())),
                    )
                    .min_count(1)
                    .max_count(1)
                    .client_token(token)
                    .tag_specifications(Self::tag_spec(
                        Rt::Instance,
                        environment,
                        address,
                        revision,
                        tags,
                        &extra,
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "RunInstances"))?;
                let instance = out.instances().first().ok_or(Error::MissingInResponse {
                    resource: address.to_string(),
                    call: "RunInstances",
                    what: "instance",
                })?;
                let id = instance.instance_id().unwrap_or_default();
                Ok(attrs(&[
                    ("id", id),
                    (
                        "private_ip",
                        instance.private_ip_address().unwrap_or_default(),
                    ),
                ]))
            }
        }
    }

    async fn create_route(&self, address: &str, table: &str, route: &Route) -> Result<()> {
        self.client
            .create_route()
            .route_table_id(table)
            .destination_cidr_block(&route.cidr_block)
            .gateway_id(&route.gateway_id)
            .send()
            .await
            .map_err(call_failed(address, "CreateRoute"))?;
        Ok(())
    }

    async fn associate(&self, address: &str, table: &str, subnet: &str) -> Result<String> {
        let out = self
            .client
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(call_failed(address, "AssociateRouteTable"))?;
        Ok(out.association_id().unwrap_or_default().to_string())
    }

    async fn disassociate(&self, address: &str, association: &str) -> Result<()> {
        match self
            .client
            .disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .map_err(call_failed(address, "DisassociateRouteTable"))
        {
            Err(Error::CallFailed {
                code: Some(code), ..
            }) if code.ends_with(".NotFound") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn set_public_ip(&self, address: &str, id: &str, on: bool) -> Result<()> {
        self.client
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
            .send()
            .await
            .map_err(call_failed(address, "ModifySubnetAttribute"))?;
        Ok(())
    }

    async fn authorize(
        &self,
        direction: Direction,
        address: &str,
        id: &str,
        rules: &[Rule],
    ) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let permissions = Some(rules.iter().map(permission).collect());
        match direction {
            Direction::Ingress => self
                .client
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "AuthorizeSecurityGroupIngress")),
            Direction::Egress => self
                .client
                .authorize_security_group_egress()
                .group_id(id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "AuthorizeSecurityGroupEgress")),
        }
    }

    async fn revoke(
        &self,
        direction: Direction,
        address: &str,
        id: &str,
        rules: &[Rule],
    ) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let permissions = Some(rules.iter().map(permission).collect());
        match direction {
            Direction::Ingress => self
                .client
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "RevokeSecurityGroupIngress")),
            Direction::Egress => self
                .client
                .revoke_security_group_egress()
                .group_id(id)
                .set_ip_permissions(permissions)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "RevokeSecurityGroupEgress")),
        }
    }

    /// Changes the rules of one direction, rule by rule.
    async fn update_rules(
        &self,
        direction: Direction,
        address: &str,
        id: &str,
        before: Option<&Value>,
        after: &[Rule],
    ) -> Result<()> {
        let before: Vec<Rule> = before
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let after = normalized_rules(after);
        let removed: Vec<Rule> = before
            .iter()
            .filter(|r| !after.contains(r))
            .cloned()
            .collect();
        let added: Vec<Rule> = after
            .iter()
            .filter(|r| !before.contains(r))
            .cloned()
            .collect();
        self.revoke(direction, address, id, &removed).await?;
        self.authorize(direction, address, id, &added).await
    }

    /// Changes what can change in place: tags, a subnet's public-IP mapping, security group rules.
    pub async fn update(
        &self,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> Result<()> {
        let address = change.change.address.as_str();
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        for field in &change.change.fields {
            match (field.path.as_str(), spec) {
                ("map_public_ip_on_launch", ResourceSpec::Subnet(s)) => {
                    self.set_public_ip(address, id, s.map_public_ip_on_launch)
                        .await?;
                }
                ("ingress", ResourceSpec::SecurityGroup(g)) => {
                    let before = change.actual.as_ref().and_then(|a| a.get("ingress"));
                    self.update_rules(Direction::Ingress, address, id, before, &g.ingress)
                        .await?;
                }
                ("routes", ResourceSpec::RouteTable(t)) => {
                    let before: Vec<Route> = change
                        .actual
                        .as_ref()
                        .and_then(|a| a.get("routes"))
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default();
                    for gone in before.iter().filter(|r| !t.routes.contains(r)) {
                        self.client
                            .delete_route()
                            .route_table_id(id)
                            .destination_cidr_block(&gone.cidr_block)
                            .send()
                            .await
                            .map_err(call_failed(address, "DeleteRoute"))?;
                    }
                    for new in t.routes.iter().filter(|r| !before.contains(r)) {
                        self.create_route(address, id, new).await?;
                    }
                }
                ("subnet_ids", ResourceSpec::RouteTable(t)) => {
                    let before: Vec<String> = change
                        .actual
                        .as_ref()
                        .and_then(|a| a.get("subnet_ids"))
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default();
                    for gone in before.iter().filter(|s| !t.subnet_ids.contains(s)) {
                        if let Some(association) =
                            change.attributes.get(&format!("association:{gone}"))
                        {
                            self.disassociate(address, association).await?;
                        }
                    }
                    for new in t.subnet_ids.iter().filter(|s| !before.contains(s)) {
                        self.associate(address, id, new).await?;
                    }
                }
                ("egress", ResourceSpec::SecurityGroup(g)) => {
                    let before = change.actual.as_ref().and_then(|a| a.get("egress"));
                    let after = g.egress.clone().unwrap_or_default();
                    self.update_rules(Direction::Egress, address, id, before, &after)
                        .await?;
                }
                ("tags", _) => {
                    let before: BTreeMap<String, String> = change
                        .actual
                        .as_ref()
                        .and_then(|a| a.get("tags"))
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default();
                    let after: BTreeMap<String, String> = field
                        .after
                        .as_deref()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default();
                    let gone: Vec<Tag> = before
                        .keys()
                        .filter(|k| !after.contains_key(*k))
                        .map(|k| Tag::builder().key(k).build())
                        .collect();
                    if !gone.is_empty() {
                        self.client
                            .delete_tags()
                            .resources(id)
                            .set_tags(Some(gone))
                            .send()
                            .await
                            .map_err(call_failed(address, "DeleteTags"))?;
                    }
                    let set: Vec<Tag> = after.iter().map(|(k, v)| tag(k, v)).collect();
                    self.client
                        .create_tags()
                        .resources(id)
                        .set_tags(Some(set))
                        .send()
                        .await
                        .map_err(call_failed(address, "CreateTags"))?;
                }
                _ => {}
            }
        }
        self.client
            .create_tags()
            .resources(id)
            .tags(tag(TAG_REVISION, revision))
            .send()
            .await
            .map_err(call_failed(address, "CreateTags"))?;
        Ok(())
    }

    /// Deletes an owned resource, waiting for instances to terminate and retrying
    /// `DependencyViolation` for a bounded time.
    pub async fn delete(&self, change: &AwsChange) -> Result<()> {
        let (rtype, address) = (change.rtype, change.change.address.as_str());
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        let started = Instant::now();
        // What must go first: a route table's associations, an internet gateway's attachment.
        match rtype {
            ResourceType::RouteTable => {
                for (key, association) in &change.attributes {
                    if key.starts_with("association:") {
                        self.disassociate(address, association).await?;
                    }
                }
            }
            ResourceType::InternetGateway => {
                let vpc = change
                    .actual
                    .as_ref()
                    .and_then(|a| a["vpc_id"].as_str())
                    .unwrap_or_default();
                if !vpc.is_empty() {
                    match self
                        .client
                        .detach_internet_gateway()
                        .internet_gateway_id(id)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(call_failed(address, "DetachInternetGateway"))
                    {
                        Ok(_) => {}
                        Err(Error::CallFailed {
                            code: Some(code), ..
                        }) if code.ends_with(".NotFound") || code == "Gateway.NotAttached" => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            _ => {}
        }
        loop {
            let result = match rtype {
                ResourceType::InternetGateway => self
                    .client
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteInternetGateway")),
                ResourceType::RouteTable => self
                    .client
                    .delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteRouteTable")),
                ResourceType::Instance => {
                    self.client
                        .terminate_instances()
                        .instance_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(call_failed(address, "TerminateInstances"))?;
                    return self.wait_terminated(address, id, started).await;
                }
                ResourceType::SecurityGroup => self
                    .client
                    .delete_security_group()
                    .group_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteSecurityGroup")),
                ResourceType::Subnet => self
                    .client
                    .delete_subnet()
                    .subnet_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteSubnet")),
                ResourceType::Vpc => self
                    .client
                    .delete_vpc()
                    .vpc_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteVpc")),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(Error::CallFailed {
                    code: Some(code), ..
                }) if code.ends_with(".NotFound") => return Ok(()),
                Err(Error::CallFailed {
                    code: Some(code), ..
                }) if code == "DependencyViolation" && started.elapsed() < DELETE_TIMEOUT => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn wait_terminated(&self, address: &str, id: &str, started: Instant) -> Result<()> {
        loop {
            let out = self
                .client
                .describe_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(call_failed(address, "DescribeInstances"))?;
            let state = out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find_map(|i| i.state().and_then(|s| s.name()).cloned());
            if matches!(state, None | Some(InstanceStateName::Terminated)) {
                return Ok(());
            }
            if started.elapsed() > DELETE_TIMEOUT {
                return Err(Error::WaitTimedOut {
                    resource: address.to_string(),
                    id: id.to_string(),
                    goal: "terminate",
                    seconds: DELETE_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
