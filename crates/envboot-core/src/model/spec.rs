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
    #[serde(default)]
    pub manifests: Vec<ManifestsSpec>,
}

/// A folder of plain Kubernetes manifests (YAML files, several documents each), applied,
/// pruned and drift-checked like a release's objects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ManifestsSpec {
    /// Relative to the environment's folder (`manifests/base`, `../../modules/base`).
    pub path: String,
    /// For namespaced objects that name none.
    pub namespace: String,
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
    /// `existing`: the kubeconfig context; the current one by default.
    #[serde(default)]
    pub context: Option<String>,
    /// The cluster's name in `kubernetes.io/cluster/<name>` tags (what destroy sweeps from the
    /// environment's VPCs); the environment's name by default.
    #[serde(default)]
    pub name: Option<String>,
    /// What charts see as `.Capabilities.KubeVersion` where the cluster is not asked (validate,
    /// render, a k3s cluster still to be created); plan and apply ask the cluster. A k3s
    /// cluster's default is its `version`; otherwise Helm's default.
    #[serde(default)]
    pub kube_version: Option<String>,
    /// API versions (`monitoring.coreos.com/v1`, `monitoring.coreos.com/v1/ServiceMonitor`)
    /// charts see in `.Capabilities.APIVersions` where the cluster is not asked, besides Helm's
    /// defaults (as `helm template --api-versions`).
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// `k3s`: the k3s release to install, pinned (`v1.33.5+k3s1`).
    #[serde(default)]
    pub version: Option<String>,
    /// `k3s`: the encrypted credentials, relative to the environment's folder (`cluster.age`).
    #[serde(default)]
    pub credentials: Option<String>,
    /// `k3s`: the address of k3s's install script.
    #[serde(default)]
    pub install_script: Option<String>,
    /// `k3s`: how long to wait for the API server to answer after the server starts (`10m`).
    #[serde(default)]
    pub api_timeout: Option<String>,
    /// `k3s`: the server instance.
    #[serde(default)]
    pub server: Option<NodeSpec>,
    /// `k3s`: the agent instances (`count` of them, all alike).
    #[serde(default)]
    pub agents: Option<NodeSpec>,
}

/// A k3s node's instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Only for `agents`: how many.
    #[serde(default)]
    pub count: Option<u32>,
    pub ami: String,
    pub instance_type: String,
    pub subnet_id: String,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub root_volume_size: Option<i32>,
    #[serde(default)]
    pub iam_instance_profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterKind {
    /// A cluster reached through a kubeconfig context.
    Existing,
    /// A k3s cluster envboot provisions on EC2 instances of the environment.
    K3s,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseSpec {
    pub name: String,
    pub chart: ChartSpec,
    pub namespace: String,
    /// Releases applied and ready before this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// How long to wait for this release to be ready (`90s`, `5m`, `1h`).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub values_files: Vec<String>,
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// A release's chart: a folder under `modules/` (its name), or a chart of a Helm repository or
/// OCI registry at an exact version, which the environment's lock pins by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSpec {
    Folder(String),
    Remote(RemoteChartSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteChartSpec {
    /// `https://...` (a Helm repository) or `oci://...` (a registry).
    pub repository: String,
    pub name: String,
    /// Exact: `4.11.3`, never a range.
    pub version: String,
}

impl<'de> Deserialize<'de> for ChartSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ChartSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a chart folder's name, or {repository, name, version}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ChartSpec, E> {
                Ok(ChartSpec::Folder(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ChartSpec, A::Error> {
                RemoteChartSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ChartSpec::Remote)
            }
        }
        d.deserialize_any(Visitor)
    }
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
    /// Folders (relative to the environment's folder): each file directly in one is a key.
    #[serde(default)]
    pub folders: Vec<String>,
    /// Env files (`KEY=VALUE` lines) whose entries become keys.
    #[serde(default)]
    pub env_files: Vec<String>,
    /// Name the ConfigMap `<name>-<hash of its content>` and rewrite references to it.
    #[serde(default)]
    pub hash_suffix: bool,
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
    InternetGateway(InternetGateway),
    Eip(Eip),
    NatGateway(NatGateway),
    RouteTable(RouteTable),
    SecurityGroup(SecurityGroup),
    KeyPair(KeyPair),
    LaunchTemplate(LaunchTemplate),
    Instance(Instance),
    EipAssociation(EipAssociation),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Vpc,
    Subnet,
    InternetGateway,
    Eip,
    NatGateway,
    RouteTable,
    SecurityGroup,
    KeyPair,
    LaunchTemplate,
    Instance,
    EipAssociation,
}

impl ResourceType {
    pub const ALL: [ResourceType; 11] = [
        ResourceType::Vpc,
        ResourceType::Subnet,
        ResourceType::InternetGateway,
        ResourceType::Eip,
        ResourceType::NatGateway,
        ResourceType::RouteTable,
        ResourceType::SecurityGroup,
        ResourceType::KeyPair,
        ResourceType::LaunchTemplate,
        ResourceType::Instance,
        ResourceType::EipAssociation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Vpc => "aws_vpc",
            ResourceType::Subnet => "aws_subnet",
            ResourceType::InternetGateway => "aws_internet_gateway",
            ResourceType::Eip => "aws_eip",
            ResourceType::NatGateway => "aws_nat_gateway",
            ResourceType::RouteTable => "aws_route_table",
            ResourceType::SecurityGroup => "aws_security_group",
            ResourceType::KeyPair => "aws_key_pair",
            ResourceType::LaunchTemplate => "aws_launch_template",
            ResourceType::Instance => "aws_instance",
            ResourceType::EipAssociation => "aws_eip_association",
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
            ResourceType::InternetGateway => &["id"],
            ResourceType::Eip => &["id", "public_ip"],
            ResourceType::NatGateway => &["id"],
            ResourceType::RouteTable => &["id"],
            ResourceType::SecurityGroup => &["id"],
            ResourceType::KeyPair => &["id", "key_name"],
            ResourceType::LaunchTemplate => &["id", "name"],
            ResourceType::Instance => &["id", "private_ip", "public_ip"],
            ResourceType::EipAssociation => &["id"],
        }
    }

    /// Whether the resource carries tags (every type but associations).
    pub fn taggable(self) -> bool {
        self != ResourceType::EipAssociation
    }
}

impl ResourceSpec {
    pub fn resource_type(&self) -> ResourceType {
        match self {
            ResourceSpec::Vpc(_) => ResourceType::Vpc,
            ResourceSpec::Subnet(_) => ResourceType::Subnet,
            ResourceSpec::InternetGateway(_) => ResourceType::InternetGateway,
            ResourceSpec::Eip(_) => ResourceType::Eip,
            ResourceSpec::NatGateway(_) => ResourceType::NatGateway,
            ResourceSpec::RouteTable(_) => ResourceType::RouteTable,
            ResourceSpec::SecurityGroup(_) => ResourceType::SecurityGroup,
            ResourceSpec::KeyPair(_) => ResourceType::KeyPair,
            ResourceSpec::LaunchTemplate(_) => ResourceType::LaunchTemplate,
            ResourceSpec::Instance(_) => ResourceType::Instance,
            ResourceSpec::EipAssociation(_) => ResourceType::EipAssociation,
        }
    }

    /// Parses the arguments of a resource of type `rtype`.
    ///
    /// # Errors
    /// serde's error, for a field that is unknown, missing or of the wrong type.
    pub fn from_value(
        rtype: ResourceType,
        value: serde_json::Value,
    ) -> Result<ResourceSpec, serde_json::Error> {
        use serde_json::from_value as v;
        Ok(match rtype {
            ResourceType::Vpc => ResourceSpec::Vpc(v(value)?),
            ResourceType::Subnet => ResourceSpec::Subnet(v(value)?),
            ResourceType::InternetGateway => ResourceSpec::InternetGateway(v(value)?),
            ResourceType::Eip => ResourceSpec::Eip(v(value)?),
            ResourceType::NatGateway => ResourceSpec::NatGateway(v(value)?),
            ResourceType::RouteTable => ResourceSpec::RouteTable(v(value)?),
            ResourceType::SecurityGroup => ResourceSpec::SecurityGroup(v(value)?),
            ResourceType::KeyPair => ResourceSpec::KeyPair(v(value)?),
            ResourceType::LaunchTemplate => ResourceSpec::LaunchTemplate(v(value)?),
            ResourceType::Instance => ResourceSpec::Instance(v(value)?),
            ResourceType::EipAssociation => ResourceSpec::EipAssociation(v(value)?),
        })
    }

    /// The user's tags (`None` for types without tags).
    pub fn tags(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            ResourceSpec::Vpc(r) => Some(&r.tags),
            ResourceSpec::Subnet(r) => Some(&r.tags),
            ResourceSpec::InternetGateway(r) => Some(&r.tags),
            ResourceSpec::Eip(r) => Some(&r.tags),
            ResourceSpec::NatGateway(r) => Some(&r.tags),
            ResourceSpec::RouteTable(r) => Some(&r.tags),
            ResourceSpec::SecurityGroup(r) => Some(&r.tags),
            ResourceSpec::KeyPair(r) => Some(&r.tags),
            ResourceSpec::LaunchTemplate(r) => Some(&r.tags),
            ResourceSpec::Instance(r) => Some(&r.tags),
            ResourceSpec::EipAssociation(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub cidr_block: String,
    /// The Amazon DNS server answers in the VPC (AWS's default: on).
    #[serde(default = "yes")]
    pub enable_dns_support: bool,
    /// Instances get public DNS host names (AWS's default: off).
    #[serde(default)]
    pub enable_dns_hostnames: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
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

/// An internet gateway, attached to `vpc_id`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGateway {
    pub vpc_id: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// An Elastic IP address in a VPC.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Eip {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A public NAT gateway in `subnet_id` with the Elastic IP `allocation_id`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatGateway {
    pub subnet_id: String,
    pub allocation_id: String,
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
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One route: a destination and exactly one target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub cidr_block: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub vpc_id: String,
    #[serde(default = "default_description")]
    pub description: String,
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// `None`: AWS's default, all traffic to anywhere.
    #[serde(default)]
    pub egress: Option<Vec<Rule>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_description() -> String {
    "Managed by envboot".to_string()
}

/// A security group rule: a protocol, a port range and its sources (ingress) or destinations
/// (egress), as CIDR blocks and/or other security groups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    #[serde(default)]
    pub cidr_blocks: Vec<String>,
    /// Ids of other security groups (`${other.id}`).
    #[serde(default)]
    pub security_groups: Vec<String>,
}

/// The former name of [`Rule`].
pub type IngressRule = Rule;

/// A key pair imported from a public key in the repository.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    /// The key pair's name in AWS; `<environment>-<address>` by default.
    #[serde(default)]
    pub key_name: Option<String>,
    /// Path of an OpenSSH public key, relative to the module's folder; the model reads it from
    /// the commit into `public_key`.
    #[serde(default)]
    pub public_key_file: Option<String>,
    /// The public key itself (OpenSSH format).
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A launch template; a change of its data makes a new version, the default one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplate {
    /// The launch template's name in AWS; `<environment>-<address>` by default.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub image_id: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub vpc_security_group_ids: Vec<String>,
    #[serde(default)]
    pub user_data: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
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
    /// Size of the root volume in GiB; the AMI's by default. Grows in place, shrinking replaces.
    #[serde(default)]
    pub root_volume_size: Option<i32>,
    /// Name of an IAM instance profile.
    #[serde(default)]
    pub iam_instance_profile: Option<String>,
    /// Name of a key pair.
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Associates an Elastic IP of the environment with an instance.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EipAssociation {
    /// `${eip.id}` of an `aws_eip` of the environment.
    pub allocation_id: String,
    pub instance_id: String,
}
