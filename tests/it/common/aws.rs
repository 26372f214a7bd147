//! Reading AWS directly: an EC2 client for the sandbox, and [`owned_aws`], the one answer to
//! "what does this environment own in AWS", over every resource type envboot manages.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{Filter, Tag};
use envboot::model::ResourceType;

/// The sandbox's AWS settings as an SDK configuration (the same ones envboot reads from its
/// environment).
pub fn ec2_config(settings: &HashMap<String, String>) -> aws_sdk_ec2::config::Builder {
    let creds = aws_sdk_ec2::config::Credentials::new(
        &settings["AWS_ACCESS_KEY_ID"],
        &settings["AWS_SECRET_ACCESS_KEY"],
        None,
        None,
        "sandbox",
    );
    aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(
            settings["AWS_REGION"].clone(),
        ))
        .endpoint_url(&settings["AWS_ENDPOINT_URL"])
        .credentials_provider(creds)
}

/// An EC2 client for the sandbox.
pub async fn ec2(settings: &HashMap<String, String>) -> aws_sdk_ec2::Client {
    let config = ec2_config(settings).build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// Tags of a described resource as a map.
pub fn tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// The filter on the environment's tag.
pub fn env_filter(env: &str) -> Filter {
    Filter::builder()
        .name("tag:envboot:environment")
        .values(env)
        .build()
}

/// One resource the environment owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owned {
    /// envboot's name of its type: `aws_vpc`, `aws_eip_association`, ...
    pub rtype: &'static str,
    /// Its `envboot:address` tag (an Elastic IP association: its address's
    /// `envboot:association` tag), or `(no address)`.
    pub address: String,
    pub id: String,
    /// Its tags (an Elastic IP association: its address's).
    pub tags: BTreeMap<String, String>,
}

/// Everything in AWS that carries environment `env`'s tag, of every type envboot manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedAws {
    /// Sorted by type, address and id.
    pub resources: Vec<Owned>,
    /// The subnet associations of its route tables, as (table address, subnet id, association
    /// id), sorted: envboot makes and removes them with the table (`subnet_ids`), they are no
    /// type of their own.
    pub route_table_associations: Vec<(String, String, String)>,
}

impl OwnedAws {
    /// Nothing is left, not even a route table association.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.route_table_associations.is_empty()
    }

    /// The number of resources.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// The resources of type `rtype` (`aws_vpc`, ...).
    pub fn of<'a>(&'a self, rtype: &'a str) -> impl Iterator<Item = &'a Owned> + 'a {
        self.resources.iter().filter(move |o| o.rtype == rtype)
    }

    /// The ids of the resources of type `rtype`.
    pub fn ids(&self, rtype: &str) -> Vec<String> {
        self.of(rtype).map(|o| o.id.clone()).collect()
    }

    /// The id of the `rtype` at `address`; panics if there is none.
    pub fn id(&self, rtype: &str, address: &str) -> String {
        self.of(rtype)
            .find(|o| o.address == address)
            .unwrap_or_else(|| panic!("no {rtype} {address} in {self:#?}"))
            .id
            .clone()
    }

    /// Addresses by type, for the types it has resources of.
    pub fn addresses(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for o in &self.resources {
            out.entry(o.rtype).or_default().push(o.address.clone());
        }
        out
    }

    /// (address, id) by type, for the types it has resources of: what stays the same when
    /// resources are only changed in place (tags may change).
    pub fn ids_by_type(&self) -> BTreeMap<&'static str, Vec<(String, String)>> {
        let mut out: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
        for o in &self.resources {
            out.entry(o.rtype)
                .or_default()
                .push((o.address.clone(), o.id.clone()));
        }
        out
    }

    /// How many resources there are at each address.
    pub fn count_by_address(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for o in &self.resources {
            *out.entry(o.address.clone()).or_default() += 1;
        }
        out
    }
}

/// The resource, if its tags say it is environment `env`'s.
fn owned_one(
    env: &str,
    rtype: ResourceType,
    tags: BTreeMap<String, String>,
    id: &str,
) -> Option<Owned> {
    if tags.get("envboot:environment").map(String::as_str) != Some(env) {
        return None;
    }
    Some(Owned {
        rtype: rtype.name(),
        address: tags
            .get("envboot:address")
            .cloned()
            .unwrap_or_else(|| "(no address)".into()),
        id: id.to_string(),
        tags,
    })
}

/// The instance states in which an instance still exists (as envboot reads them).
const LIVE_INSTANCE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// Everything in AWS carrying environment `env`'s tag, read with one Describe call per type,
/// over every type envboot manages ([`ResourceType::ALL`]: a new type does not compile here
/// until it is read). Resources are kept only if their tag says `env` exactly (moto ignores the
/// tag filter of `DescribeNatGateways`).
pub async fn owned_aws(ec2: &aws_sdk_ec2::Client, env: &str) -> OwnedAws {
    let mut resources = Vec::new();
    let mut route_table_associations = Vec::new();
    let f = || env_filter(env);
    let add = |resources: &mut Vec<Owned>, rtype: ResourceType, t: &[Tag], id: Option<&str>| {
        let owned = owned_one(env, rtype, tags(t), id.unwrap_or_default())?;
        let address = owned.address.clone();
        resources.push(owned);
        Some(address)
    };
    for rtype in ResourceType::ALL {
        match rtype {
            ResourceType::Vpc => {
                let out = ec2.describe_vpcs().filters(f()).send().await;
                for v in out.expect("DescribeVpcs").vpcs() {
                    add(&mut resources, rtype, v.tags(), v.vpc_id());
                }
            }
            ResourceType::Subnet => {
                let out = ec2.describe_subnets().filters(f()).send().await;
                for s in out.expect("DescribeSubnets").subnets() {
                    add(&mut resources, rtype, s.tags(), s.subnet_id());
                }
            }
            ResourceType::InternetGateway => {
                let out = ec2.describe_internet_gateways().filters(f()).send().await;
                for g in out.expect("DescribeInternetGateways").internet_gateways() {
                    add(&mut resources, rtype, g.tags(), g.internet_gateway_id());
                }
            }
            ResourceType::Eip => {
                let out = ec2.describe_addresses().filters(f()).send().await;
                for a in out.expect("DescribeAddresses").addresses() {
                    add(&mut resources, rtype, a.tags(), a.allocation_id());
                }
            }
            ResourceType::EipAssociation => {
                // An association carries no tags: its Elastic IP names it
                // (`envboot:association`), and is associated.
                let out = ec2.describe_addresses().filters(f()).send().await;
                for a in out.expect("DescribeAddresses").addresses() {
                    let t = tags(a.tags());
                    let (Some(address), Some(association)) = (
                        t.get("envboot:association"),
                        a.association_id().filter(|id| !id.is_empty()),
                    ) else {
                        continue;
                    };
                    let address = address.clone();
                    if let Some(mut owned) = owned_one(env, rtype, t, association) {
                        owned.address = address;
                        resources.push(owned);
                    }
                }
            }
            ResourceType::NatGateway => {
                let state = Filter::builder()
                    .name("state")
                    .values("pending")
                    .values("available")
                    .build();
                let out = ec2
                    .describe_nat_gateways()
                    .filter(f())
                    .filter(state)
                    .send()
                    .await;
                for n in out.expect("DescribeNatGateways").nat_gateways() {
                    add(&mut resources, rtype, n.tags(), n.nat_gateway_id());
                }
            }
            ResourceType::RouteTable => {
                let out = ec2.describe_route_tables().filters(f()).send().await;
                for r in out.expect("DescribeRouteTables").route_tables() {
                    let Some(table) = add(&mut resources, rtype, r.tags(), r.route_table_id())
                    else {
                        continue;
                    };
                    for a in r.associations() {
                        let state = a.association_state().and_then(|s| s.state());
                        let gone = matches!(
                            state.map(|s| s.as_str()),
                            Some("disassociating" | "disassociated" | "failed")
                        );
                        if let (false, false, Some(subnet), Some(id)) = (
                            a.main() == Some(true),
                            gone,
                            a.subnet_id(),
                            a.route_table_association_id(),
                        ) {
                            route_table_associations.push((
                                table.clone(),
                                subnet.to_string(),
                                id.to_string(),
                            ));
                        }
                    }
                }
            }
            ResourceType::SecurityGroup => {
                let out = ec2.describe_security_groups().filters(f()).send().await;
                for g in out.expect("DescribeSecurityGroups").security_groups() {
                    add(&mut resources, rtype, g.tags(), g.group_id());
                }
            }
            ResourceType::KeyPair => {
                let out = ec2.describe_key_pairs().filters(f()).send().await;
                for k in out.expect("DescribeKeyPairs").key_pairs() {
                    add(&mut resources, rtype, k.tags(), k.key_pair_id());
                }
            }
            ResourceType::LaunchTemplate => {
                let out = ec2.describe_launch_templates().filters(f()).send().await;
                for t in out.expect("DescribeLaunchTemplates").launch_templates() {
                    add(&mut resources, rtype, t.tags(), t.launch_template_id());
                }
            }
            ResourceType::Instance => {
                let live = Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        LIVE_INSTANCE_STATES.iter().map(|s| s.to_string()).collect(),
                    ))
                    .build();
                let out = ec2
                    .describe_instances()
                    .filters(f())
                    .filters(live)
                    .send()
                    .await;
                let out = out.expect("DescribeInstances");
                for i in out.reservations().iter().flat_map(|r| r.instances()) {
                    add(&mut resources, rtype, i.tags(), i.instance_id());
                }
            }
        }
    }
    resources.sort();
    route_table_associations.sort();
    OwnedAws {
        resources,
        route_table_associations,
    }
}
