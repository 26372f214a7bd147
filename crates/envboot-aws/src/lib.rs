//! AWS provider: finds the environment's EC2 resources by tag and carries out AWS changes.
//!
//! # Guarantees
//! - Identity is the tags `envboot:environment` and `envboot:address`; there is no state file.
//!   Tags are set at creation (`TagSpecifications`), so a crash cannot leave an untagged resource.
//! - Discovery is one paginated Describe call per resource type for the whole environment
//!   (Elastic IP associations are read from the same `DescribeAddresses`), whatever the number
//!   of resources.
//! - Only resources carrying the environment's tag are ever modified or deleted. A resource with
//!   a desired name but without the tag is a conflict, taken over only with `--adopt`.
//! - Creates that take a `ClientToken` (`RunInstances`, `CreateNatGateway`,
//!   `CreateLaunchTemplate`, `CreateRouteTable`) carry one derived from the environment, address,
//!   revision and resolved arguments, so a retried create does not make a second resource.
//! - Throttling and 5xx answers are retried by the SDK (standard mode: exponential backoff with
//!   jitter); any other error stops with the resource, the API call and AWS's message.
//!
//! Credentials, region and endpoint come from the standard AWS chain (`AWS_ENDPOINT_URL` included).

mod common;
pub mod diff;
pub mod lock;
mod resources;

pub use resources::{delete_rank, needs_settling};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, Tag};
use aws_sdk_ec2::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::{Map, Value};

pub use diff::{Actual, AwsChange, Named};
use envboot_core::model::ResourceType;
use envboot_core::plan::Action;

/// Tag naming the environment that owns a resource.
pub const TAG_ENVIRONMENT: &str = "envboot:environment";
/// Tag holding the resource's address (`module.resource`).
pub const TAG_ADDRESS: &str = "envboot:address";
/// Tag holding the commit the resource was created or last changed from.
pub const TAG_REVISION: &str = "envboot:revision";
/// Tag holding the hash of an instance's user data (AWS does not return it in DescribeInstances).
pub const TAG_USER_DATA: &str = "envboot:user-data";
/// Tag holding an instance's declared root volume size (DescribeInstances does not return it).
pub const TAG_ROOT_VOLUME_SIZE: &str = "envboot:root-volume-size";
/// Tag holding the hash of a key pair's public key.
pub const TAG_PUBLIC_KEY: &str = "envboot:public-key";
/// Tag holding the hash of a launch template's data (its default version).
pub const TAG_DATA: &str = "envboot:data";
/// Tags holding a VPC's DNS attributes (DescribeVpcs does not return them); absent: AWS's
/// defaults (support on, host names off).
pub const TAG_DNS_SUPPORT: &str = "envboot:dns-support";
pub const TAG_DNS_HOSTNAMES: &str = "envboot:dns-hostnames";
/// Tag on an Elastic IP naming the `aws_eip_association` that associates it.
pub const TAG_ASSOCIATION: &str = "envboot:association";

/// How many AWS resources are created, updated or deleted at the same time.
pub const CONCURRENCY: usize = 8;

/// How long a deletion keeps retrying `DependencyViolation` and waits for instances to terminate.
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a create waits for an instance to run or a NAT gateway to become available.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause between two polls of a wait.
const POLL: Duration = Duration::from_secs(2);
/// How often a wait says it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

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
    #[error("{resource} ({id}) is {state} instead of becoming {goal}{reason}")]
    Failed {
        resource: String,
        id: String,
        state: String,
        goal: &'static str,
        reason: String,
    },
    #[error("nothing was changed: {} resource(s) with the desired name exist without the environment's tags:\n{}\nrerun with --adopt to take them over (envboot tags them), or remove or rename them", .0.len(), .0.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<String>),
    #[error("environment `{environment}` is locked by {holder} (its lock in AWS expires at Unix time {expires} unless renewed); it expires if that run died")]
    Locked {
        environment: String,
        holder: String,
        expires: u64,
    },
    /// A resource's arguments of another type than the resource (a bug, reported, not a panic).
    #[error("internal error: {resource} was given the arguments of another resource type")]
    WrongSpec { resource: String },
}

impl Error {
    fn code(&self) -> Option<&str> {
        match self {
            Error::CallFailed { code, .. } => code.as_deref(),
            _ => None,
        }
    }
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

/// `Ok` for an error whose code says the thing is already gone or already as wanted.
fn tolerate(result: Result<()>, codes: &[&str]) -> Result<()> {
    match result {
        Err(e)
            if e.code()
                .is_some_and(|c| codes.contains(&c) || c.ends_with(".NotFound")) =>
        {
            Ok(())
        }
        other => other,
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
    /// The Kubernetes cluster whose `kubernetes.io/cluster/<name>` leftovers are swept from a
    /// VPC before it is deleted.
    cluster: Option<String>,
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

fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A progress line for a long wait.
fn progress(message: &str) {
    // Through the redaction every printed line goes through: a message may quote a server.
    eprintln!("envboot: {}", envboot_core::sensitive::redact(message));
}

/// The `ClientToken` of a create: the same for a retry of the same create, different for
/// anything else (another environment, address, revision or argument).
pub fn client_token(
    environment: &str,
    address: &str,
    revision: &str,
    spec: &impl serde::Serialize,
) -> String {
    let source = format!(
        "{environment}/{address}/{revision}/{}",
        serde_json::to_string(spec).unwrap_or_default()
    );
    diff::short_hash(&source).replace("sha256:", "envboot-")
}

/// A resource as read from AWS, before it is matched to an address.
#[derive(Debug, Clone)]
struct Described {
    rtype: ResourceType,
    id: String,
    tags: Vec<Tag>,
    /// The name it is known by (`Name` tag, or group, key pair or launch template name).
    name: Option<String>,
    fields: Map<String, Value>,
    attributes: BTreeMap<String, String>,
}

impl Described {
    fn into_actual(self, address: String) -> Actual {
        Actual {
            rtype: self.rtype,
            address,
            revision: tag_value(&self.tags, TAG_REVISION).map(str::to_string),
            id: self.id,
            fields: self.fields,
            attributes: self.attributes,
        }
    }
}

/// What deletions need to know about the rest of the plan.
#[derive(Debug, Clone, Default)]
pub struct DeleteContext {
    /// Security group id to the permissions of the environment's groups that refer to it:
    /// (group address, group id, egress?, permission). Revoked before the group is deleted.
    references: HashMap<String, Vec<(String, String, bool, diff::Permission)>>,
    /// VPC id to the internet gateways attached to it that are kept: detached before the VPC
    /// is deleted (they are attached to the new VPC by their update).
    gateways: HashMap<String, Vec<(String, String)>>,
}

impl DeleteContext {
    /// Reads the plan's security groups and internet gateways.
    pub fn new(changes: &[AwsChange]) -> DeleteContext {
        let mut ctx = DeleteContext::default();
        let deleted: HashSet<&str> = changes
            .iter()
            .filter(|c| matches!(c.change.action, Action::Delete | Action::Replace))
            .filter_map(|c| c.id.as_deref())
            .collect();
        for c in changes {
            let (Some(id), Some(actual)) = (&c.id, &c.actual) else {
                continue;
            };
            resources::kind(c.rtype).note_for_deletes(&mut ctx, c, id, actual, &deleted);
        }
        ctx
    }
}

/// Stops apply if the plan holds a conflict.
///
/// # Errors
/// [`Error::Conflicts`] naming each.
pub fn check_conflicts(changes: &[AwsChange]) -> Result<()> {
    let conflicts: Vec<String> = changes
        .iter()
        .filter_map(|c| {
            c.conflict
                .as_ref()
                .map(|m| format!("{} {}: {m}", c.change.kind, c.change.address))
        })
        .collect();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::Conflicts(conflicts))
    }
}

impl Aws {
    /// Connects with the standard AWS configuration chain, in `region`. Throttling
    /// (`RequestLimitExceeded`, ...) and 5xx answers are retried up to 10 attempts with
    /// exponential backoff and jitter.
    pub async fn connect(region: &str) -> Aws {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(20));
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .retry_config(retry)
            .load()
            .await;
        Aws::from_config(aws_sdk_ec2::config::Builder::from(&shared))
    }

    /// Connects with an explicit SDK configuration (credentials, region, endpoint), counting
    /// calls.
    pub fn from_config(config: aws_sdk_ec2::config::Builder) -> Aws {
        let calls = CallCounter::default();
        let config = config.interceptor(calls.clone()).build();
        Aws {
            client: Client::from_conf(config),
            calls,
            cluster: None,
        }
    }

    /// A client pointed at no endpoint, with no credentials: what a plan built from data holds
    /// (the engine's unit tests drive apply through another provider). Nothing is sent until a
    /// call is made, and a call fails.
    pub fn unconnected() -> Aws {
        Aws::from_config(
            aws_sdk_ec2::config::Builder::new()
                .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
                .region(aws_sdk_ec2::config::Region::new("us-east-1")),
        )
    }

    /// Sweeps what the Kubernetes cluster `name` leaves in a VPC before deleting the VPC.
    pub fn with_cluster(mut self, name: Option<String>) -> Aws {
        self.cluster = name;
        self
    }

    /// Every resource carrying `environment`'s tag: one paginated Describe call per type.
    pub async fn discover(&self, environment: &str) -> Result<Vec<Actual>> {
        let scope = format!("environment {environment}");
        let env_filter = || vec![filter(&format!("tag:{TAG_ENVIRONMENT}"), &[environment])];
        let reads = ResourceType::ALL
            .into_iter()
            .map(|t| resources::kind(t).describe(self, env_filter(), &scope));
        let found = futures::future::try_join_all(reads).await?;
        let mut out = Vec::new();
        for d in found.into_iter().flatten() {
            // Checked again here: not every implementation of the API honours every filter.
            if tag_value(&d.tags, TAG_ENVIRONMENT) != Some(environment) {
                continue;
            }
            let Some(address) = tag_value(&d.tags, TAG_ADDRESS).map(str::to_string) else {
                continue;
            };
            resources::kind(d.rtype).discovered(d, address, &mut out);
        }
        Ok(out)
    }

    /// Resources named as the resources `changes` create, as (desired address, resource): one
    /// Describe call per type with something to create.
    pub async fn find_named(&self, environment: &str, changes: &[AwsChange]) -> Result<Vec<Named>> {
        // Type -> (name -> (address, the VPC it must be in, if known)).
        type Wanted = BTreeMap<String, (String, Option<String>)>;
        let mut wanted: BTreeMap<ResourceType, Wanted> = BTreeMap::new();
        for c in changes {
            let Some(r) = &c.desired else { continue };
            if c.change.action != Action::Create || !c.rtype.taggable() {
                continue;
            }
            let name = diff::aws_name(&r.spec, environment, &r.address);
            let vpc = c
                .change
                .fields
                .iter()
                .find(|f| f.path == "vpc_id")
                .and_then(|f| f.after.as_ref()?.known())
                .and_then(|v| serde_json::from_str::<String>(v).ok());
            if resources::kind(c.rtype).named_within_vpc() && vpc.is_none() {
                // A group is named within its VPC, which does not exist yet.
                continue;
            }
            wanted
                .entry(c.rtype)
                .or_default()
                .insert(name, (r.address.clone(), vpc));
        }
        let scope = format!("environment {environment}");
        let reads = wanted.iter().map(|(t, names)| {
            let names: Vec<&str> = names.keys().map(String::as_str).collect();
            let k = resources::kind(*t);
            k.describe(self, vec![filter(k.name_filter(), &names)], &scope)
        });
        let found = futures::future::try_join_all(reads).await?;
        let mut out = Vec::new();
        for d in found.into_iter().flatten() {
            let Some((address, vpc)) = d
                .name
                .as_ref()
                .and_then(|n| wanted.get(&d.rtype).and_then(|w| w.get(n)))
            else {
                continue;
            };
            let same_vpc = match (vpc, d.fields.get("vpc_id").and_then(Value::as_str)) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            };
            if same_vpc {
                let name = d.name.clone().unwrap_or_default();
                let what = format!("{} `{name}` ({}) exists", d.rtype.name(), d.id);
                let owner = tag_value(&d.tags, TAG_ENVIRONMENT).map(str::to_string);
                out.push(Named {
                    what,
                    owner,
                    actual: d.into_actual(address.clone()),
                });
            }
        }
        Ok(out)
    }

    /// Waits, polling `check` (which says whether the goal is reached, and the current state),
    /// printing progress, until `timeout`.
    async fn wait_for<F, Fut>(
        &self,
        address: &str,
        id: &str,
        goal: &'static str,
        timeout: Duration,
        mut check: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(bool, String)>>,
    {
        let started = std::time::Instant::now();
        let mut last_note = started;
        loop {
            let (done, state) = check().await?;
            if done {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(Error::WaitTimedOut {
                    resource: address.to_string(),
                    id: id.to_string(),
                    goal,
                    seconds: timeout.as_secs(),
                });
            }
            if last_note.elapsed() >= PROGRESS_EVERY {
                last_note = std::time::Instant::now();
                progress(&format!(
                    "still waiting for {address} ({id}) to {goal}: {state} after {}s",
                    started.elapsed().as_secs()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_differ_by_environment_address_revision_and_spec() {
        let a = client_token("e", "m.r", "abc", &"spec");
        assert_eq!(a, client_token("e", "m.r", "abc", &"spec"));
        assert!(a.starts_with("envboot-") && a.len() <= 64, "{a}");
        for other in [
            client_token("f", "m.r", "abc", &"spec"),
            client_token("e", "m.s", "abc", &"spec"),
            client_token("e", "m.r", "abd", &"spec"),
            client_token("e", "m.r", "abc", &"spec2"),
        ] {
            assert_ne!(a, other);
        }
    }
}
