//! Writing resources: create (tagged at creation, with a `ClientToken` where the API takes
//! one), in-place update, and deletion in the order and with the preparations AWS demands.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, BlockDeviceMapping, DomainType, EbsBlockDevice,
    IamInstanceProfileSpecification, InstanceStateName, IpPermission, IpRange,
    LaunchTemplateBlockDeviceMappingRequest, NatGatewayState, RequestLaunchTemplateData, Tag,
    TagSpecification, UserIdGroupPair,
};

use super::diff::{self, Permission};
use super::{
    call_failed, client_token, filter, progress, read, tag, tolerate, Aws, AwsChange,
    DeleteContext, Error, Result, DELETE_TIMEOUT, POLL, READY_TIMEOUT, TAG_ADDRESS,
    TAG_ASSOCIATION, TAG_DATA, TAG_DNS_HOSTNAMES, TAG_DNS_SUPPORT, TAG_ENVIRONMENT, TAG_PUBLIC_KEY,
    TAG_REVISION, TAG_ROOT_VOLUME_SIZE, TAG_USER_DATA,
};
use envboot_core::model::spec::{
    Eip, EipAssociation, Instance, InternetGateway, KeyPair, LaunchTemplate, NatGateway,
    RouteTable, SecurityGroup, Subnet, Vpc,
};
use envboot_core::model::{ResourceSpec, ResourceType};

type Attributes = BTreeMap<String, String>;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn missing(address: &str, call: &'static str, what: &'static str) -> Error {
    Error::MissingInResponse {
        resource: address.to_string(),
        call,
        what,
    }
}

fn ip_permission(p: &Permission) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol(&p.protocol)
        .from_port(p.from_port)
        .to_port(p.to_port);
    let b = match &p.cidr_block {
        Some(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        None => b,
    };
    let b = match &p.security_group {
        Some(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        None => b,
    };
    b.build()
}

fn base64(s: &str) -> String {
    envboot_core::render::base64(s.as_bytes())
}

/// The value of a field as read (`actual`) of a change.
fn actual_field<T: serde::de::DeserializeOwned + Default>(change: &AwsChange, field: &str) -> T {
    change
        .actual
        .as_ref()
        .and_then(|a| a.get(field))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

struct Tags<'a> {
    environment: &'a str,
    address: &'a str,
    revision: &'a str,
}

impl Tags<'_> {
    /// envboot's tags, `Name`, the user's tags and `extra`, for `TagSpecifications`.
    fn spec(
        &self,
        kind: aws_sdk_ec2::types::ResourceType,
        user: &BTreeMap<String, String>,
        extra: &[(&str, &str)],
    ) -> TagSpecification {
        let mut tags = vec![
            tag(TAG_ENVIRONMENT, self.environment),
            tag(TAG_ADDRESS, self.address),
            tag(TAG_REVISION, self.revision),
        ];
        if !user.contains_key("Name") {
            tags.push(tag(
                "Name",
                &format!("{}-{}", self.environment, self.address),
            ));
        }
        tags.extend(user.iter().map(|(k, v)| tag(k, v)));
        tags.extend(extra.iter().map(|(k, v)| tag(k, v)));
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags))
            .build()
    }
}

impl Aws {
    /// Adds the rules of a security group that `partial` (what it was created or updated
    /// with) left out and `full` has: sources known only once other groups exist.
    pub async fn add_missing_rules(
        &self,
        address: &str,
        group: &str,
        partial: &SecurityGroup,
        full: &SecurityGroup,
    ) -> Result<()> {
        let default = diff::default_egress();
        for (egress, before, after) in [
            (false, &partial.ingress, &full.ingress),
            (
                true,
                partial.egress.as_ref().unwrap_or(&default),
                full.egress.as_ref().unwrap_or(&default),
            ),
        ] {
            let (before, after) = (diff::permissions(before), diff::permissions(after));
            self.change_rules(address, group, egress, &before, &after)
                .await?;
        }
        Ok(())
    }

    /// Takes a group's ingress or egress rules from `before` to `after`: revokes what goes,
    /// then authorizes what comes.
    async fn change_rules(
        &self,
        address: &str,
        group: &str,
        egress: bool,
        before: &[Permission],
        after: &[Permission],
    ) -> Result<()> {
        let missing_from = |a: &[Permission], b: &[Permission]| -> Vec<Permission> {
            a.iter().filter(|p| !b.contains(p)).cloned().collect()
        };
        self.rules(address, group, egress, false, &missing_from(before, after))
            .await?;
        self.rules(address, group, egress, true, &missing_from(after, before))
            .await
    }

    /// Creates a resource whose references are resolved; returns its attributes.
    pub async fn create(
        &self,
        environment: &str,
        revision: &str,
        address: &str,
        spec: &ResourceSpec,
    ) -> Result<Attributes> {
        use aws_sdk_ec2::types::ResourceType as Rt;
        let t = Tags {
            environment,
            address,
            revision,
        };
        let token = client_token(environment, address, revision, spec);
        match spec {
            ResourceSpec::Vpc(Vpc {
                cidr_block,
                enable_dns_support,
                enable_dns_hostnames,
                tags,
            }) => {
                let (support, hostnames) = (
                    enable_dns_support.to_string(),
                    enable_dns_hostnames.to_string(),
                );
                let out = self
                    .client
                    .create_vpc()
                    .cidr_block(cidr_block)
                    .tag_specifications(t.spec(
                        Rt::Vpc,
                        tags,
                        &[(TAG_DNS_SUPPORT, &support), (TAG_DNS_HOSTNAMES, &hostnames)],
                    ))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateVpc"))?;
                let id = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .ok_or_else(|| missing(address, "CreateVpc", "VpcId"))?;
                if !enable_dns_support {
                    self.set_dns(address, id, "enable_dns_support", false)
                        .await?;
                }
                if *enable_dns_hostnames {
                    self.set_dns(address, id, "enable_dns_hostnames", true)
                        .await?;
                }
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
                    .tag_specifications(t.spec(Rt::Subnet, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateSubnet"))?;
                let id = out
                    .subnet()
                    .and_then(|s| s.subnet_id())
                    .ok_or_else(|| missing(address, "CreateSubnet", "SubnetId"))?;
                if *map_public_ip_on_launch {
                    self.set_public_ip(address, id, true).await?;
                }
                Ok(attrs(&[
                    ("id", id),
                    ("cidr_block", cidr_block),
                    ("availability_zone", availability_zone),
                ]))
            }
            ResourceSpec::InternetGateway(InternetGateway { vpc_id, tags }) => {
                let out = self
                    .client
                    .create_internet_gateway()
                    .tag_specifications(t.spec(Rt::InternetGateway, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateInternetGateway"))?;
                let id = out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .ok_or_else(|| {
                        missing(address, "CreateInternetGateway", "InternetGatewayId")
                    })?;
                self.attach_gateway(address, id, vpc_id).await?;
                Ok(attrs(&[("id", id)]))
            }
            ResourceSpec::Eip(Eip { tags }) => {
                let out = self
                    .client
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(t.spec(Rt::ElasticIp, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "AllocateAddress"))?;
                let id = out
                    .allocation_id()
                    .ok_or_else(|| missing(address, "AllocateAddress", "AllocationId"))?;
                Ok(attrs(&[
                    ("id", id),
                    ("public_ip", out.public_ip().unwrap_or_default()),
                ]))
            }
            ResourceSpec::NatGateway(NatGateway {
                subnet_id,
                allocation_id,
                tags,
            }) => {
                let out = self
                    .client
                    .create_nat_gateway()
                    .subnet_id(subnet_id)
                    .allocation_id(allocation_id)
                    .client_token(token)
                    .tag_specifications(t.spec(Rt::Natgateway, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateNatGateway"))?;
                let id = out
                    .nat_gateway()
                    .and_then(|n| n.nat_gateway_id())
                    .ok_or_else(|| missing(address, "CreateNatGateway", "NatGatewayId"))?;
                self.wait_nat(address, id, NatGatewayState::Available)
                    .await?;
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
                    .client_token(token)
                    .tag_specifications(t.spec(Rt::RouteTable, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateRouteTable"))?;
                let id = out
                    .route_table()
                    .and_then(|r| r.route_table_id())
                    .ok_or_else(|| missing(address, "CreateRouteTable", "RouteTableId"))?;
                for r in routes {
                    self.route(address, id, r, false).await?;
                }
                for s in subnet_ids {
                    self.associate_subnet(address, id, s).await?;
                }
                Ok(attrs(&[("id", id)]))
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
                    .group_name(diff::aws_name(spec, environment, address))
                    .description(description)
                    .vpc_id(vpc_id)
                    .tag_specifications(t.spec(Rt::SecurityGroup, tags, &[]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateSecurityGroup"))?;
                let id = out
                    .group_id()
                    .ok_or_else(|| missing(address, "CreateSecurityGroup", "GroupId"))?;
                let default = diff::permissions(&diff::default_egress());
                if let Some(egress) = egress {
                    self.change_rules(address, id, true, &default, &diff::permissions(egress))
                        .await?;
                }
                self.rules(address, id, false, true, &diff::permissions(ingress))
                    .await?;
                Ok(attrs(&[("id", id)]))
            }
            ResourceSpec::KeyPair(KeyPair {
                public_key, tags, ..
            }) => {
                let key = public_key.as_deref().unwrap_or_default().trim();
                let hash = diff::short_hash(key);
                let name = diff::aws_name(spec, environment, address);
                let out = self
                    .client
                    .import_key_pair()
                    .key_name(&name)
                    .public_key_material(aws_smithy_types::Blob::new(key.as_bytes()))
                    .tag_specifications(t.spec(Rt::KeyPair, tags, &[(TAG_PUBLIC_KEY, &hash)]))
                    .send()
                    .await
                    .map_err(call_failed(address, "ImportKeyPair"))?;
                let id = out
                    .key_pair_id()
                    .ok_or_else(|| missing(address, "ImportKeyPair", "KeyPairId"))?;
                Ok(attrs(&[("id", id), ("key_name", &name)]))
            }
            ResourceSpec::LaunchTemplate(lt) => {
                let name = diff::aws_name(spec, environment, address);
                let hash = diff::launch_template_hash(lt);
                let out = self
                    .client
                    .create_launch_template()
                    .launch_template_name(&name)
                    .client_token(token)
                    .launch_template_data(template_data(lt))
                    .tag_specifications(t.spec(Rt::LaunchTemplate, &lt.tags, &[(TAG_DATA, &hash)]))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateLaunchTemplate"))?;
                let id = out
                    .launch_template()
                    .and_then(|l| l.launch_template_id())
                    .ok_or_else(|| missing(address, "CreateLaunchTemplate", "LaunchTemplateId"))?;
                Ok(attrs(&[("id", id), ("name", &name)]))
            }
            ResourceSpec::Instance(i) => self.run_instance(&t, &token, i).await,
            ResourceSpec::EipAssociation(EipAssociation {
                allocation_id,
                instance_id,
            }) => {
                // Tag first: an association that exists is then always found.
                self.client
                    .create_tags()
                    .resources(allocation_id)
                    .tags(tag(TAG_ASSOCIATION, address))
                    .send()
                    .await
                    .map_err(call_failed(address, "CreateTags"))?;
                let out = self
                    .client
                    .associate_address()
                    .allocation_id(allocation_id)
                    .instance_id(instance_id)
                    .send()
                    .await
                    .map_err(call_failed(address, "AssociateAddress"))?;
                let id = out
                    .association_id()
                    .ok_or_else(|| missing(address, "AssociateAddress", "AssociationId"))?;
                Ok(attrs(&[("id", id)]))
            }
        }
    }

    async fn run_instance(&self, t: &Tags<'_>, token: &str, i: &Instance) -> Result<Attributes> {
        use aws_sdk_ec2::types::ResourceType as Rt;
        let address = t.address;
        let user_data_hash = i.user_data.as_deref().map(diff::short_hash);
        let size = i.root_volume_size.map(|s| s.to_string());
        let mut extra: Vec<(&str, &str)> = Vec::new();
        if let Some(h) = &user_data_hash {
            extra.push((TAG_USER_DATA, h));
        }
        if let Some(s) = &size {
            extra.push((TAG_ROOT_VOLUME_SIZE, s));
        }
        let mapping = match i.root_volume_size {
            None => None,
            Some(size) => {
                let images = self
                    .client
                    .describe_images()
                    .image_ids(&i.ami)
                    .send()
                    .await
                    .map_err(call_failed(address, "DescribeImages"))?;
                let device = images
                    .images()
                    .first()
                    .and_then(|im| im.root_device_name())
                    .unwrap_or("/dev/xvda")
                    .to_string();
                Some(
                    BlockDeviceMapping::builder()
                        .device_name(device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(size)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
            }
        };
        let out = self
            .client
            .run_instances()
            .image_id(&i.ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(
                i.instance_type.as_str(),
            ))
            .subnet_id(&i.subnet_id)
            .set_security_group_ids(Some(i.vpc_security_group_ids.clone()))
            .set_user_data(i.user_data.as_deref().map(base64))
            .set_key_name(i.key_name.clone())
            .set_iam_instance_profile(
                i.iam_instance_profile
                    .as_ref()
                    .map(|n| IamInstanceProfileSpecification::builder().name(n).build()),
            )
            .set_block_device_mappings(mapping.map(|m| vec![m]))
            .min_count(1)
            .max_count(1)
            .client_token(token)
            .tag_specifications(t.spec(Rt::Instance, &i.tags, &extra))
            .send()
            .await
            .map_err(call_failed(address, "RunInstances"))?;
        let instance = out
            .instances()
            .first()
            .ok_or_else(|| missing(address, "RunInstances", "instance"))?;
        let id = instance
            .instance_id()
            .ok_or_else(|| missing(address, "RunInstances", "InstanceId"))?;
        let public_ip = self
            .wait_instance(address, id, InstanceStateName::Running)
            .await?;
        Ok(attrs(&[
            ("id", id),
            (
                "private_ip",
                instance.private_ip_address().unwrap_or_default(),
            ),
            ("public_ip", &public_ip),
        ]))
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

    async fn set_dns(&self, address: &str, id: &str, attribute: &str, on: bool) -> Result<()> {
        let value = AttributeBooleanValue::builder().value(on).build();
        let call = self.client.modify_vpc_attribute().vpc_id(id);
        let call = if attribute == "enable_dns_support" {
            call.enable_dns_support(value)
        } else {
            call.enable_dns_hostnames(value)
        };
        call.send()
            .await
            .map_err(call_failed(address, "ModifyVpcAttribute"))?;
        Ok(())
    }

    async fn attach_gateway(&self, address: &str, id: &str, vpc: &str) -> Result<()> {
        self.client
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .map_err(call_failed(address, "AttachInternetGateway"))?;
        Ok(())
    }

    async fn detach_gateway(&self, address: &str, id: &str, vpc: &str) -> Result<()> {
        let result = self
            .client
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "DetachInternetGateway"));
        tolerate(result, &["Gateway.NotAttached"])
    }

    /// Creates (or, with `replace`, replaces) one route.
    async fn route(
        &self,
        address: &str,
        table: &str,
        r: &envboot_core::model::spec::Route,
        replace: bool,
    ) -> Result<()> {
        if replace {
            self.client
                .replace_route()
                .route_table_id(table)
                .destination_cidr_block(&r.cidr_block)
                .set_gateway_id(r.gateway_id.clone())
                .set_nat_gateway_id(r.nat_gateway_id.clone())
                .send()
                .await
                .map_err(call_failed(address, "ReplaceRoute"))?;
        } else {
            self.client
                .create_route()
                .route_table_id(table)
                .destination_cidr_block(&r.cidr_block)
                .set_gateway_id(r.gateway_id.clone())
                .set_nat_gateway_id(r.nat_gateway_id.clone())
                .send()
                .await
                .map_err(call_failed(address, "CreateRoute"))?;
        }
        Ok(())
    }

    async fn associate_subnet(&self, address: &str, table: &str, subnet: &str) -> Result<()> {
        self.client
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .map_err(call_failed(address, "AssociateRouteTable"))?;
        Ok(())
    }

    async fn disassociate(&self, address: &str, association: &str) -> Result<()> {
        let result = self
            .client
            .disassociate_route_table()
            .association_id(association)
            .send()
            .await
            .map(|_| ())
            .map_err(call_failed(address, "DisassociateRouteTable"));
        tolerate(result, &[])
    }

    /// Authorizes (`add`) or revokes security group permissions, ingress or egress. Revoking a
    /// permission that is already gone is not an error.
    async fn rules(
        &self,
        address: &str,
        group: &str,
        egress: bool,
        add: bool,
        perms: &[Permission],
    ) -> Result<()> {
        if perms.is_empty() {
            return Ok(());
        }
        let list: Vec<IpPermission> = perms.iter().map(ip_permission).collect();
        let result = match (egress, add) {
            (false, true) => self
                .client
                .authorize_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(Some(list))
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "AuthorizeSecurityGroupIngress")),
            (true, true) => self
                .client
                .authorize_security_group_egress()
                .group_id(group)
                .set_ip_permissions(Some(list))
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "AuthorizeSecurityGroupEgress")),
            (false, false) => self
                .client
                .revoke_security_group_ingress()
                .group_id(group)
                .set_ip_permissions(Some(list))
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "RevokeSecurityGroupIngress")),
            (true, false) => self
                .client
                .revoke_security_group_egress()
                .group_id(group)
                .set_ip_permissions(Some(list))
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "RevokeSecurityGroupEgress")),
        };
        if add {
            tolerate(result, &["InvalidPermission.Duplicate"])
        } else {
            tolerate(result, &["InvalidPermission.NotFound"])
        }
    }

    /// Changes what can change in place: tags, a subnet's public-IP mapping, an internet
    /// gateway's VPC, routes and subnet associations, security group rules (permission by
    /// permission), a launch template's data (a new default version), an instance's root volume
    /// size (growing) and instance profile. With `adopt`, first tags the resource as the
    /// environment's.
    pub async fn update(
        &self,
        environment: &str,
        revision: &str,
        change: &AwsChange,
        spec: &ResourceSpec,
    ) -> Result<()> {
        let address = change.change.address.as_str();
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        if change.adopt {
            self.client
                .create_tags()
                .resources(id)
                .tags(tag(TAG_ENVIRONMENT, environment))
                .tags(tag(TAG_ADDRESS, address))
                .send()
                .await
                .map_err(call_failed(address, "CreateTags"))?;
        }
        let mut extra_tags: Vec<Tag> = Vec::new();
        for field in &change.change.fields {
            match (field.path.as_str(), spec) {
                (
                    attribute @ ("enable_dns_support" | "enable_dns_hostnames"),
                    ResourceSpec::Vpc(v),
                ) => {
                    let (on, key) = if attribute == "enable_dns_support" {
                        (v.enable_dns_support, TAG_DNS_SUPPORT)
                    } else {
                        (v.enable_dns_hostnames, TAG_DNS_HOSTNAMES)
                    };
                    self.set_dns(address, id, attribute, on).await?;
                    extra_tags.push(tag(key, &on.to_string()));
                }
                ("map_public_ip_on_launch", ResourceSpec::Subnet(s)) => {
                    self.set_public_ip(address, id, s.map_public_ip_on_launch)
                        .await?;
                }
                ("vpc_id", ResourceSpec::InternetGateway(g)) => {
                    let before: Option<String> = actual_field(change, "vpc_id");
                    if let Some(old) = before.filter(|v| !v.is_empty()) {
                        self.detach_gateway(address, id, &old).await?;
                    }
                    self.attach_gateway(address, id, &g.vpc_id).await?;
                }
                ("routes", ResourceSpec::RouteTable(t)) => {
                    let before: Vec<envboot_core::model::spec::Route> =
                        actual_field(change, "routes");
                    let by_cidr: HashMap<&str, &envboot_core::model::spec::Route> =
                        before.iter().map(|r| (r.cidr_block.as_str(), r)).collect();
                    let wanted: HashMap<&str, &envboot_core::model::spec::Route> = t
                        .routes
                        .iter()
                        .map(|r| (r.cidr_block.as_str(), r))
                        .collect();
                    for r in &before {
                        if !wanted.contains_key(r.cidr_block.as_str()) {
                            let result = self
                                .client
                                .delete_route()
                                .route_table_id(id)
                                .destination_cidr_block(&r.cidr_block)
                                .send()
                                .await
                                .map(|_| ())
                                .map_err(call_failed(address, "DeleteRoute"));
                            tolerate(result, &[])?;
                        }
                    }
                    for r in &t.routes {
                        match by_cidr.get(r.cidr_block.as_str()) {
                            Some(old) if *old == r => {}
                            Some(_) => self.route(address, id, r, true).await?,
                            None => self.route(address, id, r, false).await?,
                        }
                    }
                }
                ("subnet_ids", ResourceSpec::RouteTable(t)) => {
                    let associations: BTreeMap<String, String> =
                        actual_field(change, "association_ids");
                    for (subnet, association) in &associations {
                        if !t.subnet_ids.contains(subnet) {
                            self.disassociate(address, association).await?;
                        }
                    }
                    for subnet in &t.subnet_ids {
                        if !associations.contains_key(subnet) {
                            self.associate_subnet(address, id, subnet).await?;
                        }
                    }
                }
                (rules @ ("ingress" | "egress"), ResourceSpec::SecurityGroup(g)) => {
                    let egress = rules == "egress";
                    let before: Vec<Permission> = actual_field(change, rules);
                    let after = if egress {
                        diff::permissions(&g.egress.clone().unwrap_or_else(diff::default_egress))
                    } else {
                        diff::permissions(&g.ingress)
                    };
                    self.change_rules(address, id, egress, &before, &after)
                        .await?;
                }
                ("data", ResourceSpec::LaunchTemplate(t)) => {
                    let out = self
                        .client
                        .create_launch_template_version()
                        .launch_template_id(id)
                        .launch_template_data(template_data(t))
                        .send()
                        .await
                        .map_err(call_failed(address, "CreateLaunchTemplateVersion"))?;
                    let version = out
                        .launch_template_version()
                        .and_then(|v| v.version_number())
                        .ok_or_else(|| {
                            missing(address, "CreateLaunchTemplateVersion", "VersionNumber")
                        })?;
                    self.client
                        .modify_launch_template()
                        .launch_template_id(id)
                        .default_version(version.to_string())
                        .send()
                        .await
                        .map_err(call_failed(address, "ModifyLaunchTemplate"))?;
                    extra_tags.push(tag(TAG_DATA, &diff::launch_template_hash(t)));
                }
                ("root_volume_size", ResourceSpec::Instance(i)) => {
                    if let Some(size) = i.root_volume_size {
                        self.grow_root_volume(address, id, size).await?;
                        extra_tags.push(tag(TAG_ROOT_VOLUME_SIZE, &size.to_string()));
                    }
                }
                ("vpc_security_group_ids", ResourceSpec::Instance(i)) => {
                    self.client
                        .modify_instance_attribute()
                        .instance_id(id)
                        .set_groups(Some(i.vpc_security_group_ids.clone()))
                        .send()
                        .await
                        .map_err(call_failed(address, "ModifyInstanceAttribute"))?;
                }
                ("iam_instance_profile", ResourceSpec::Instance(i)) => {
                    self.set_instance_profile(address, id, i.iam_instance_profile.as_deref())
                        .await?;
                }
                ("tags", _) => {
                    let before: BTreeMap<String, String> = actual_field(change, "tags");
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
                    extra_tags.extend(after.iter().map(|(k, v)| tag(k, v)));
                }
                _ => {}
            }
        }
        if spec.resource_type().taggable() {
            extra_tags.push(tag(TAG_REVISION, revision));
            self.client
                .create_tags()
                .resources(id)
                .set_tags(Some(extra_tags))
                .send()
                .await
                .map_err(call_failed(address, "CreateTags"))?;
        }
        Ok(())
    }

    /// Waits for a kept resource that an earlier, interrupted run left on its way to ready (an
    /// instance pending, a NAT gateway pending), so that what depends on it finds it ready.
    pub async fn settle(&self, change: &AwsChange) -> Result<()> {
        let (Some(id), true) = (change.id.as_deref(), needs_settling(change)) else {
            return Ok(());
        };
        let address = change.change.address.as_str();
        match change.rtype {
            ResourceType::NatGateway => {
                self.wait_nat(address, id, NatGatewayState::Available).await
            }
            ResourceType::Instance => self
                .wait_instance(address, id, InstanceStateName::Running)
                .await
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    async fn grow_root_volume(&self, address: &str, id: &str, size: i32) -> Result<()> {
        let out = self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(call_failed(address, "DescribeInstances"))?;
        let volume = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find_map(read::root_volume)
            .ok_or_else(|| missing(address, "DescribeInstances", "root volume"))?;
        self.client
            .modify_volume()
            .volume_id(volume)
            .size(size)
            .send()
            .await
            .map_err(call_failed(address, "ModifyVolume"))?;
        Ok(())
    }

    async fn set_instance_profile(
        &self,
        address: &str,
        id: &str,
        name: Option<&str>,
    ) -> Result<()> {
        let out = self
            .client
            .describe_iam_instance_profile_associations()
            .filters(filter("instance-id", &[id]))
            .filters(filter("state", &["associating", "associated"]))
            .send()
            .await
            .map_err(call_failed(
                address,
                "DescribeIamInstanceProfileAssociations",
            ))?;
        let current = out
            .iam_instance_profile_associations()
            .iter()
            .find_map(|a| a.association_id());
        let profile = |n: &str| IamInstanceProfileSpecification::builder().name(n).build();
        match (current, name) {
            (Some(a), Some(n)) => {
                self.client
                    .replace_iam_instance_profile_association()
                    .association_id(a)
                    .iam_instance_profile(profile(n))
                    .send()
                    .await
                    .map_err(call_failed(address, "ReplaceIamInstanceProfileAssociation"))?;
            }
            (Some(a), None) => {
                self.client
                    .disassociate_iam_instance_profile()
                    .association_id(a)
                    .send()
                    .await
                    .map_err(call_failed(address, "DisassociateIamInstanceProfile"))?;
            }
            (None, Some(n)) => {
                self.client
                    .associate_iam_instance_profile()
                    .instance_id(id)
                    .iam_instance_profile(profile(n))
                    .send()
                    .await
                    .map_err(call_failed(address, "AssociateIamInstanceProfile"))?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// Deletes an owned resource, after what AWS needs first (detaching, disassociating,
    /// revoking references), waiting where AWS deletes asynchronously, and retrying
    /// `DependencyViolation` for a bounded time.
    pub async fn delete(&self, change: &AwsChange, ctx: &DeleteContext) -> Result<()> {
        let address = change.change.address.as_str();
        let Some(id) = change.id.as_deref() else {
            return Ok(());
        };
        let started = Instant::now();
        // Preparations, once.
        match change.rtype {
            ResourceType::SecurityGroup => {
                for (group_address, group, egress, p) in
                    ctx.references.get(id).into_iter().flatten()
                {
                    self.rules(
                        group_address,
                        group,
                        *egress,
                        false,
                        std::slice::from_ref(p),
                    )
                    .await?;
                }
                // Its own references to other groups.
                for egress in [false, true] {
                    let perms: Vec<Permission> =
                        actual_field(change, if egress { "egress" } else { "ingress" });
                    let refs: Vec<Permission> = perms
                        .into_iter()
                        .filter(|p| p.security_group.is_some())
                        .collect();
                    self.rules(address, id, egress, false, &refs).await?;
                }
            }
            ResourceType::RouteTable => {
                let associations: BTreeMap<String, String> =
                    actual_field(change, "association_ids");
                for association in associations.values() {
                    self.disassociate(address, association).await?;
                }
            }
            ResourceType::InternetGateway => {
                let vpc: Option<String> = actual_field(change, "vpc_id");
                if let Some(vpc) = vpc.filter(|v| !v.is_empty()) {
                    self.retry_dependency(started, || self.detach_gateway(address, id, &vpc))
                        .await?;
                }
            }
            ResourceType::Vpc => {
                for (gateway_address, gateway) in ctx.gateways.get(id).into_iter().flatten() {
                    self.detach_gateway(gateway_address, gateway, id).await?;
                }
                if let Some(cluster) = &self.cluster {
                    self.sweep_cluster(address, id, cluster).await?;
                }
            }
            _ => {}
        }
        let delete = || async {
            let result = match change.rtype {
                ResourceType::EipAssociation => {
                    let result = self
                        .client
                        .disassociate_address()
                        .association_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(call_failed(address, "DisassociateAddress"));
                    tolerate(result, &[])?;
                    let allocation: Option<String> = actual_field(change, "allocation_id");
                    match allocation {
                        Some(a) => self
                            .client
                            .delete_tags()
                            .resources(a)
                            .tags(Tag::builder().key(TAG_ASSOCIATION).build())
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(call_failed(address, "DeleteTags")),
                        None => Ok(()),
                    }
                }
                ResourceType::Instance => {
                    self.client
                        .terminate_instances()
                        .instance_ids(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(call_failed(address, "TerminateInstances"))?;
                    self.wait_instance(address, id, InstanceStateName::Terminated)
                        .await
                        .map(|_| ())
                }
                ResourceType::LaunchTemplate => self
                    .client
                    .delete_launch_template()
                    .launch_template_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteLaunchTemplate")),
                ResourceType::KeyPair => self
                    .client
                    .delete_key_pair()
                    .set_key_name(change.attributes.get("key_name").cloned())
                    .set_key_pair_id(
                        (!change.attributes.contains_key("key_name")).then(|| id.to_string()),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteKeyPair")),
                ResourceType::RouteTable => self
                    .client
                    .delete_route_table()
                    .route_table_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteRouteTable")),
                ResourceType::NatGateway => {
                    self.client
                        .delete_nat_gateway()
                        .nat_gateway_id(id)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(call_failed(address, "DeleteNatGateway"))?;
                    self.wait_nat(address, id, NatGatewayState::Deleted).await
                }
                ResourceType::Eip => self
                    .client
                    .release_address()
                    .allocation_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "ReleaseAddress")),
                ResourceType::InternetGateway => self
                    .client
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteInternetGateway")),
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
            tolerate(result, &[])
        };
        self.retry_dependency(started, delete).await
    }

    /// Runs `f` until it does not fail with `DependencyViolation` (or AWS's other "still in
    /// use" answers), for at most [`DELETE_TIMEOUT`] since `started`.
    async fn retry_dependency<F, Fut>(&self, started: Instant, mut f: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        loop {
            match f().await {
                Err(e)
                    if matches!(
                        e.code(),
                        Some("DependencyViolation" | "InvalidIPAddress.InUse")
                    ) && started.elapsed() < DELETE_TIMEOUT =>
                {
                    tokio::time::sleep(POLL).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until the instance reaches `goal`; returns the public IP the last look saw (it is
    /// assigned on the way to running, after RunInstances answered), empty without one.
    async fn wait_instance(
        &self,
        address: &str,
        id: &str,
        goal: InstanceStateName,
    ) -> Result<String> {
        let (label, timeout) = match goal {
            InstanceStateName::Terminated => ("terminate", DELETE_TIMEOUT),
            _ => ("run", READY_TIMEOUT),
        };
        let public_ip = std::sync::Mutex::new(String::new());
        self.wait_for(address, id, label, timeout, || async {
            let out = self
                .client
                .describe_instances()
                .instance_ids(id)
                .send()
                .await
                .map_err(call_failed(address, "DescribeInstances"));
            let out = match out {
                // Eventual consistency: a new instance may not be visible yet.
                Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {
                    return Ok((
                        goal == InstanceStateName::Terminated,
                        "not found".to_string(),
                    ))
                }
                other => other?,
            };
            let instance = out.reservations().iter().flat_map(|r| r.instances()).next();
            if let (Some(ip), Ok(mut seen)) = (
                instance.and_then(|i| i.public_ip_address()),
                public_ip.lock(),
            ) {
                *seen = ip.to_string();
            }
            let state = instance.and_then(|i| i.state().and_then(|s| s.name()).cloned());
            match state {
                None => Ok((goal == InstanceStateName::Terminated, "gone".to_string())),
                Some(s) if s == goal => Ok((true, s.as_str().to_string())),
                Some(s)
                    if goal == InstanceStateName::Running
                        && matches!(
                            s,
                            InstanceStateName::Terminated | InstanceStateName::ShuttingDown
                        ) =>
                {
                    Err(Error::Failed {
                        resource: address.to_string(),
                        id: id.to_string(),
                        state: s.as_str().to_string(),
                        goal: "running",
                        reason: String::new(),
                    })
                }
                Some(s) => Ok((false, s.as_str().to_string())),
            }
        })
        .await?;
        Ok(public_ip.into_inner().unwrap_or_default())
    }

    async fn wait_nat(&self, address: &str, id: &str, goal: NatGatewayState) -> Result<()> {
        let (label, timeout) = match goal {
            NatGatewayState::Deleted => ("be deleted", DELETE_TIMEOUT),
            _ => ("become available", READY_TIMEOUT),
        };
        self.wait_for(address, id, label, timeout, || async {
            let out = self
                .client
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .map_err(call_failed(address, "DescribeNatGateways"));
            let out = match out {
                Err(e) if e.code().is_some_and(|c| c.contains("NotFound")) => {
                    return Ok((goal == NatGatewayState::Deleted, "not found".to_string()))
                }
                other => other?,
            };
            let Some(n) = out.nat_gateways().first() else {
                return Ok((goal == NatGatewayState::Deleted, "gone".to_string()));
            };
            let state = n.state().cloned().unwrap_or(NatGatewayState::Pending);
            if state == goal {
                return Ok((true, state.as_str().to_string()));
            }
            if goal == NatGatewayState::Available
                && matches!(state, NatGatewayState::Failed | NatGatewayState::Deleted)
            {
                return Err(Error::Failed {
                    resource: address.to_string(),
                    id: id.to_string(),
                    state: state.as_str().to_string(),
                    goal: "available",
                    reason: n
                        .failure_message()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default(),
                });
            }
            Ok((false, state.as_str().to_string()))
        })
        .await
    }

    /// Deletes what a Kubernetes cluster created on its own in VPC `vpc` and tagged
    /// `kubernetes.io/cluster/<cluster>`: detached network interfaces and security groups in the
    /// VPC, and detached volumes. Nothing without that tag is touched.
    async fn sweep_cluster(&self, address: &str, vpc: &str, cluster: &str) -> Result<()> {
        let key = format!("kubernetes.io/cluster/{cluster}");
        let tagged = || filter("tag-key", &[&key]);
        let in_vpc = || filter("vpc-id", &[vpc]);
        let mut enis = self
            .client
            .describe_network_interfaces()
            .filters(tagged())
            .filters(in_vpc())
            .filters(filter("status", &["available"]))
            .into_paginator()
            .send();
        let mut eni_ids = Vec::new();
        while let Some(page) = enis.next().await {
            let page = page.map_err(call_failed(address, "DescribeNetworkInterfaces"))?;
            eni_ids.extend(
                page.network_interfaces()
                    .iter()
                    .filter_map(|n| n.network_interface_id().map(str::to_string)),
            );
        }
        for eni in eni_ids {
            progress(&format!(
                "deleting {eni}, left by cluster {cluster} in {vpc}"
            ));
            let result = self
                .client
                .delete_network_interface()
                .network_interface_id(&eni)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "DeleteNetworkInterface"));
            tolerate(result, &[])?;
        }
        let mut groups = self
            .client
            .describe_security_groups()
            .filters(tagged())
            .filters(in_vpc())
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = groups.next().await {
            let page = page.map_err(call_failed(address, "DescribeSecurityGroups"))?;
            found.extend(page.security_groups().iter().cloned());
        }
        // Rules first: groups of a cluster refer to each other.
        for g in &found {
            let Some(id) = g.group_id() else { continue };
            let ingress: Vec<Permission> =
                serde_json::from_value(read::permissions_from(g.ip_permissions()))
                    .unwrap_or_default();
            let egress: Vec<Permission> =
                serde_json::from_value(read::permissions_from(g.ip_permissions_egress()))
                    .unwrap_or_default();
            self.rules(address, id, false, false, &ingress).await?;
            self.rules(address, id, true, false, &egress).await?;
        }
        let started = Instant::now();
        for g in &found {
            let Some(id) = g.group_id() else { continue };
            progress(&format!(
                "deleting {id}, left by cluster {cluster} in {vpc}"
            ));
            self.retry_dependency(started, || async {
                let result = self
                    .client
                    .delete_security_group()
                    .group_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(call_failed(address, "DeleteSecurityGroup"));
                tolerate(result, &[])
            })
            .await?;
        }
        let mut volumes = self
            .client
            .describe_volumes()
            .filters(tagged())
            .filters(filter("status", &["available"]))
            .into_paginator()
            .send();
        let mut volume_ids = Vec::new();
        while let Some(page) = volumes.next().await {
            let page = page.map_err(call_failed(address, "DescribeVolumes"))?;
            volume_ids.extend(
                page.volumes()
                    .iter()
                    .filter_map(|v| v.volume_id().map(str::to_string)),
            );
        }
        for v in volume_ids {
            progress(&format!("deleting {v}, left by cluster {cluster}"));
            let result = self
                .client
                .delete_volume()
                .volume_id(&v)
                .send()
                .await
                .map(|_| ())
                .map_err(call_failed(address, "DeleteVolume"));
            tolerate(result, &[])?;
        }
        Ok(())
    }
}

/// The request data of a launch template.
fn template_data(t: &LaunchTemplate) -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .set_image_id(t.image_id.clone())
        .set_instance_type(
            t.instance_type
                .as_deref()
                .map(aws_sdk_ec2::types::InstanceType::from),
        )
        .set_key_name(t.key_name.clone())
        .set_security_group_ids(
            (!t.vpc_security_group_ids.is_empty()).then(|| t.vpc_security_group_ids.clone()),
        )
        .set_user_data(t.user_data.as_deref().map(base64))
        .set_block_device_mappings(None::<Vec<LaunchTemplateBlockDeviceMappingRequest>>)
        .build()
}

/// Whether a kept resource was found on its way to ready (see [`Aws::settle`]).
pub fn needs_settling(change: &AwsChange) -> bool {
    let state: Option<String> = actual_field(change, "state");
    matches!(
        (change.rtype, state.as_deref()),
        (
            ResourceType::NatGateway | ResourceType::Instance,
            Some("pending")
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use envboot_core::plan::{Action, Change};

    fn kept(rtype: ResourceType, state: &str) -> AwsChange {
        AwsChange {
            change: Change {
                kind: rtype.name().into(),
                address: "m.r".into(),
                action: Action::NoOp,
                fields: Vec::new(),
                reason: None,
            },
            rtype,
            id: Some("x-1".into()),
            desired: None,
            actual: serde_json::json!({"state": state}).as_object().cloned(),
            attributes: BTreeMap::new(),
            revision: None,
            conflict: None,
            adopt: false,
        }
    }

    #[test]
    fn only_pending_nat_gateways_and_instances_are_waited_for() {
        assert!(needs_settling(&kept(ResourceType::NatGateway, "pending")));
        assert!(needs_settling(&kept(ResourceType::Instance, "pending")));
        assert!(!needs_settling(&kept(
            ResourceType::NatGateway,
            "available"
        )));
        assert!(!needs_settling(&kept(ResourceType::Instance, "running")));
        assert!(!needs_settling(&kept(ResourceType::Vpc, "pending")));
    }

    #[test]
    fn a_permission_becomes_one_ip_permission_with_its_one_source() {
        let p = ip_permission(&Permission {
            protocol: "tcp".into(),
            from_port: 80,
            to_port: 80,
            cidr_block: None,
            security_group: Some("sg-1".into()),
        });
        assert_eq!(p.ip_protocol(), Some("tcp"));
        assert!(p.ip_ranges().is_empty());
        assert_eq!(p.user_id_group_pairs()[0].group_id(), Some("sg-1"));
    }
}
