//! The file formats, exactly as written in the repository (`environment.yaml`, `module.yaml`).
//! Unknown fields are rejected everywhere. See docs/environment-format.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only `apiVersion` this version of envboot reads.
pub const API_VERSION: &str = "envboot.dev/v1alpha1";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentFile {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub cloud: CloudSpec,
    #[serde(default)]
    pub infrastructure: Vec<ModuleInstanceSpec>,
    #[serde(default)]
    pub cluster: Option<ClusterSpec>,
    #[serde(default)]
    pub releases: Vec<ReleaseSpec>,
    #[serde(default)]
    pub config_maps: Vec<ConfigMapSpec>,
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
}

/// A Kubernetes Secret whose data comes from an age-encrypted file in the repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretSpec {
    pub name: String,
    pub namespace: String,
    /// Path relative to the environment's folder of an age-encrypted YAML map of strings.
    pub file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CloudSpec {
    pub provider: String,
    pub region: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModuleInstanceSpec {
    pub name: String,
    pub module: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    #[serde(rename = "type")]
    pub kind: ClusterKind,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterKind {
    /// A cluster reached through a kubeconfig context.
    Existing,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseSpec {
    pub name: String,
    pub chart: String,
    pub namespace: String,
    #[serde(default)]
    pub values_files: Vec<String>,
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapSpec {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<ConfigMapFileSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapFileSpec {
    /// Path relative to the environment's folder.
    pub path: String,
    /// Key in the ConfigMap; the file's base name by default.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModuleFile {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// Each a map with `name`, `type` and the arguments of that type; typed later.
    #[serde(default)]
    pub resources: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub kind: InputKind,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InputKind {
    String,
    Number,
    Bool,
    List,
    Map,
}

impl InputKind {
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        matches!(
            (self, value),
            (InputKind::String, V::String(_))
                | (InputKind::Number, V::Number(_))
                | (InputKind::Bool, V::Bool(_))
                | (InputKind::List, V::Array(_))
                | (InputKind::Map, V::Object(_))
        )
    }
}

/// The AWS resource types and their arguments (named as in Terraform's AWS provider).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResourceSpec {
    Vpc(Vpc),
    Subnet(Subnet),
    SecurityGroup(SecurityGroup),
    Instance(Instance),
    InternetGateway(InternetGateway),
    RouteTable(RouteTable),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Vpc,
    Subnet,
    SecurityGroup,
    Instance,
    InternetGateway,
    RouteTable,
}

impl ResourceType {
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Vpc,
        ResourceType::Subnet,
        ResourceType::SecurityGroup,
        ResourceType::Instance,
        ResourceType::InternetGateway,
        ResourceType::RouteTable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Vpc => "aws_vpc",
            ResourceType::Subnet => "aws_subnet",
            ResourceType::SecurityGroup => "aws_security_group",
            ResourceType::Instance => "aws_instance",
            ResourceType::InternetGateway => "aws_internet_gateway",
            ResourceType::RouteTable => "aws_route_table",
        }
    }

    pub fn parse(name: &str) -> Option<ResourceType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Attributes other resources may refer to as `${resource.attribute}`.
    pub fn attributes(self) -> &'static [&'static str] {
        match self {
            ResourceType::Vpc => &["id", "cidr_block"],
            ResourceType::Subnet => &["id", "cidr_block", "availability_zone"],
            ResourceType::SecurityGroup => &["id"],
            ResourceType::Instance => &["id", "private_ip"],
            ResourceType::InternetGateway | ResourceType::RouteTable => &["id"],
        }
    }

    /// Arguments whose change forces the resource to be replaced.
    pub fn immutable(self) -> &'static [&'static str] {
        match self {
            ResourceType::Vpc => &["cidr_block"],
            ResourceType::Subnet => &["vpc_id", "cidr_block", "availability_zone"],
            ResourceType::SecurityGroup => &["vpc_id", "description"],
            ResourceType::Instance => &[
                "ami",
                "instance_type",
                "subnet_id",
                "vpc_security_group_ids",
                "user_data",
            ],
            ResourceType::InternetGateway | ResourceType::RouteTable => &["vpc_id"],
        }
    }

    /// Order of deletion, lower first, as AWS demands: instances (they hold addresses, groups
    /// and subnets), route tables (their associations), security groups, internet gateways
    /// (detached first), subnets, VPCs last.
    pub fn delete_rank(self) -> u8 {
        match self {
            ResourceType::Instance => 0,
            ResourceType::RouteTable => 1,
            ResourceType::SecurityGroup => 2,
            ResourceType::InternetGateway => 3,
            ResourceType::Subnet => 4,
            ResourceType::Vpc => 5,
        }
    }
}

impl ResourceSpec {
    pub fn resource_type(&self) -> ResourceType {
        match self {
            ResourceSpec::Vpc(_) => ResourceType::Vpc,
            ResourceSpec::Subnet(_) => ResourceType::Subnet,
            ResourceSpec::SecurityGroup(_) => ResourceType::SecurityGroup,
            ResourceSpec::Instance(_) => ResourceType::Instance,
            ResourceSpec::InternetGateway(_) => ResourceType::InternetGateway,
            ResourceSpec::RouteTable(_) => ResourceType::RouteTable,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub cidr_block: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    #[serde(default)]
    pub map_public_ip_on_launch: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub vpc_id: String,
    #[serde(default = "default_description")]
    pub description: String,
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// Outbound rules, managed exactly when given; when absent, AWS's default (all traffic
    /// allowed) is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<Rule>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_description() -> String {
    "Managed by envboot".to_string()
}

/// A security group rule: traffic of `protocol` on ports `from_port`..=`to_port`, from (ingress)
/// or to (egress) the `cidr_blocks` and the members of the `security_groups`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    #[serde(default)]
    pub cidr_blocks: Vec<String>,
    /// Ids of other security groups, usually `${other.id}`.
    #[serde(default)]
    pub security_groups: Vec<String>,
}

impl Rule {
    /// The same rule with its lists sorted, for comparison as sets.
    pub fn normalized(&self) -> Rule {
        let mut r = self.clone();
        r.cidr_blocks.sort();
        r.security_groups.sort();
        r
    }
}

/// Sorted, normalized rules: the form rules are compared in.
pub fn normalized_rules(rules: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = rules.iter().map(Rule::normalized).collect();
    out.sort();
    out
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub ami: String,
    pub instance_type: String,
    pub subnet_id: String,
    #[serde(default)]
    pub vpc_security_group_ids: Vec<String>,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An internet gateway attached to a VPC.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGateway {
    pub vpc_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A route table with its routes and the subnets associated with it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub vpc_id: String,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Subnets whose traffic this table routes.
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Traffic to `cidr_block` goes through the gateway `gateway_id` (an internet gateway).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub cidr_block: String,
    pub gateway_id: String,
}
