//! Infrastructure: module instances, the k3s cluster's nodes, typed AWS resources, CIDR
//! and rule checks, and the dependency order of resources.

use super::*;

impl Loader<'_> {
    /// Instantiates the modules, returning every resource in dependency order.
    pub(super) fn infrastructure(
        &mut self,
        env: &EnvironmentFile,
        file: &SourceFile,
    ) -> Vec<Resource> {
        // Module instances: unique names, existing modules, order by `${module.X.Y}` references.
        let mut by_name: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, inst) in env.infrastructure.iter().enumerate() {
            let at = idx("infrastructure", i);
            if !is_identifier(&inst.name) || inst.name == "module" || inst.name == "input" {
                self.report(file.at(
                    &key(&at, "name"),
                    format!(
                        "invalid module instance name `{}`: expected letters, digits, `_` or `-`, starting with a letter (`module` and `input` are reserved)",
                        inst.name
                    ),
                ));
            }
            if by_name.insert(&inst.name, i).is_some() {
                self.report(file.at(
                    &key(&at, "name"),
                    format!("duplicate module instance name `{}`", inst.name),
                ));
            }
        }
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (i, inst) in env.infrastructure.iter().enumerate() {
            let mut found = Vec::new();
            let mut cut = Vec::new();
            for (k, v) in &inst.inputs {
                let at = key(&key(&idx("infrastructure", i), "inputs"), k);
                refs::collect(v, &at, &mut found);
                refs::unterminated_in(v, &at, &mut cut);
            }
            for (path, text) in cut {
                self.report(file.at(&path, refs::unterminated_message(&text)));
            }
            let entry = deps.entry(i).or_default();
            for (path, expr) in found {
                match refs::Ref::parse(&expr) {
                    refs::Ref::ModuleOutput { instance: m, .. } => match by_name.get(m) {
                        Some(&j) => {
                            entry.insert(j);
                        }
                        None => self.report(file.at(
                            &path,
                            format!("`${{{expr}}}` refers to module instance `{m}`, which is not declared under `infrastructure`"),
                        )),
                    },
                    _ => self.report(file.at(
                        &path,
                        format!("invalid reference `${{{expr}}}`: expected `${{module.INSTANCE.OUTPUT}}`"),
                    )),
                }
            }
        }
        let order = match topo_sort(&deps) {
            Ok(order) => order,
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| env.infrastructure[i].name.as_str())
                    .collect();
                self.report(file.at(
                    &idx("infrastructure", cycle[0]),
                    format!(
                        "module instances refer to each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                ));
                return Vec::new();
            }
        };
        // Outputs of each processed instance, as canonical expressions.
        let mut outputs: HashMap<String, BTreeMap<String, Value>> = HashMap::new();
        let mut resources: Vec<Resource> = Vec::new();
        for i in order {
            let inst = &env.infrastructure[i];
            let at = idx("infrastructure", i);
            let Some((module, mfile)) = self.module(&inst.module) else {
                if !self
                    .diagnostics
                    .0
                    .iter()
                    .any(|d| d.file.starts_with(&format!("modules/{}/", inst.module)))
                {
                    self.report(file.at(
                        &key(&at, "module"),
                        format!(
                            "module `{}` not found: expected modules/{}/module.yaml in the commit",
                            inst.module, inst.module
                        ),
                    ));
                }
                continue;
            };
            // Inputs: known, typed, required ones present.
            let mut inputs: BTreeMap<String, Value> = BTreeMap::new();
            for (k, v) in &inst.inputs {
                let path = key(&key(&at, "inputs"), k);
                let Some(spec) = module.inputs.get(k) else {
                    let known: Vec<&str> = module.inputs.keys().map(String::as_str).collect();
                    self.report(file.at(
                        &path,
                        format!(
                            "module `{}` has no input `{k}` (inputs: {})",
                            inst.module,
                            known.join(", ")
                        ),
                    ));
                    continue;
                };
                let mut value = v.clone();
                refs::substitute(&mut value, &mut |expr| match refs::Ref::parse(expr) {
                    refs::Ref::ModuleOutput {
                        instance: m,
                        output: o,
                    } => outputs.get(m).and_then(|outs| outs.get(o)).cloned(),
                    _ => None,
                });
                for (_, expr) in collect_refs(&value) {
                    if let refs::Ref::ModuleOutput {
                        instance: m,
                        output: o,
                    } = refs::Ref::parse(&expr)
                    {
                        if outputs.contains_key(m) {
                            self.report(
                                file.at(
                                    &path,
                                    format!("module instance `{m}` has no output `{o}`"),
                                ),
                            );
                        }
                    }
                }
                let is_reference = v.as_str().and_then(refs::whole).is_some();
                if !is_reference && !spec.kind.accepts(&value) {
                    self.report(
                        file.at(
                            &path,
                            format!(
                                "input `{k}` of module `{}` expects a {:?}, got {}",
                                inst.module,
                                spec.kind,
                                kind_of(&value)
                            )
                            .to_lowercase(),
                        ),
                    );
                }
                inputs.insert(k.clone(), value);
            }
            for (k, spec) in &module.inputs {
                if !inputs.contains_key(k) {
                    match &spec.default {
                        Some(d) => {
                            inputs.insert(k.clone(), d.clone());
                        }
                        None => self.report(file.at(
                            &key(&at, "inputs"),
                            format!("module `{}` requires input `{k}`", inst.module),
                        )),
                    }
                }
            }
            let (mut instance_resources, instance_outputs) = self.instantiate(
                &inst.name,
                &module,
                &mfile,
                &inputs,
                &file.at(&at, "").to_string(),
            );
            resources.append(&mut instance_resources);
            outputs.insert(inst.name.clone(), instance_outputs);
        }
        self.outputs = outputs;
        self.check_networks_across_instances();
        if let Some(cluster) = &env.cluster {
            resources.extend(self.cluster_nodes(env, cluster, file));
        }
        self.order_resources(resources)
    }

    /// Checks the `cluster:` section; for `k3s`, returns its node instances and keeps the
    /// cluster's settings for [`Cluster::k3s`].
    pub(super) fn cluster_nodes(
        &mut self,
        env: &EnvironmentFile,
        c: &ClusterSpec,
        file: &SourceFile,
    ) -> Vec<Resource> {
        let k3s_only = [
            ("version", c.version.is_some()),
            ("credentials", c.credentials.is_some()),
            ("installScript", c.install_script.is_some()),
            ("apiTimeout", c.api_timeout.is_some()),
            ("server", c.server.is_some()),
            ("agents", c.agents.is_some()),
        ];
        if c.kind == ClusterKind::Existing {
            for (field, set) in k3s_only {
                if set {
                    self.report(file.at(
                        &key("cluster", field),
                        format!("`{field}` is only for `type: k3s`; an existing cluster is reached through `context`"),
                    ));
                }
            }
            return Vec::new();
        }
        if c.context.is_some() {
            self.report(file.at(
                "cluster.context",
                "`context` is only for `type: existing`: envboot writes a k3s cluster's kubeconfig itself (`envboot kubeconfig`)",
            ));
        }
        if env
            .infrastructure
            .iter()
            .any(|i| i.name == CLUSTER_INSTANCE)
        {
            self.report(file.at(
                "infrastructure",
                format!("the module instance name `{CLUSTER_INSTANCE}` is reserved for the k3s cluster's instances"),
            ));
        }
        let version = match &c.version {
            Some(v) if v.starts_with('v') && !v.contains(char::is_whitespace) => v.clone(),
            Some(v) => {
                self.report(file.at(
                    "cluster.version",
                    format!("invalid k3s version `{v}`: expected a release such as `v1.33.5+k3s1`"),
                ));
                String::new()
            }
            None => {
                self.report(file.at(
                    "cluster",
                    "a k3s cluster needs a pinned `version` (e.g. `version: v1.33.5+k3s1`), so that a rebuild installs what Git says",
                ));
                String::new()
            }
        };
        let api_timeout = match &c.api_timeout {
            None => DEFAULT_API_TIMEOUT,
            Some(t) => parse_duration(t).unwrap_or_else(|e| {
                self.report(file.at("cluster.apiTimeout", e));
                DEFAULT_API_TIMEOUT
            }),
        };
        let env_dir = format!("environments/{}", env.name);
        let rel = c
            .credentials
            .as_deref()
            .unwrap_or(crate::k3s::DEFAULT_CREDENTIALS);
        let at_credentials = if c.credentials.is_some() {
            "cluster.credentials"
        } else {
            "cluster"
        };
        let ciphertext = match join(&env_dir, rel) {
            None => {
                self.report(file.at(
                    at_credentials,
                    format!("file `{rel}` points outside the repository"),
                ));
                None
            }
            Some(path) => match self.snapshot.file(&path) {
                None => {
                    self.report(file.at(
                        at_credentials,
                        format!("the cluster's credentials are not in the commit: expected {path} (create them with `envboot cluster init {}`, then commit)", env.name),
                    ));
                    None
                }
                Some(bytes) if !is_age_encrypted(bytes) => {
                    self.report(file.at(
                        at_credentials,
                        format!("{path} is not age-encrypted: the cluster's keys must never sit in Git in plain text"),
                    ));
                    None
                }
                Some(bytes) => Some((path, bytes.to_vec())),
            },
        };
        let mut out = Vec::new();
        let Some(server) = &c.server else {
            self.report(file.at(
                "cluster",
                "a k3s cluster needs a `server:` (ami, instanceType, subnetId, securityGroupIds)",
            ));
            return out;
        };
        if server.count.is_some() {
            self.report(file.at(
                "cluster.server.count",
                "a k3s cluster has one server; `count` is for `agents`",
            ));
        }
        let server_address = format!("{CLUSTER_INSTANCE}.server");
        out.extend(self.node(server, &server_address, "cluster.server", file, None));
        let mut agents = Vec::new();
        if let Some(a) = &c.agents {
            let mut count = a.count.unwrap_or(1);
            if count > MAX_AGENTS {
                self.report(file.at(
                    "cluster.agents.count",
                    format!("{count} agents: a k3s cluster here has at most {MAX_AGENTS} (one instance each)"),
                ));
                count = 0;
            }
            for n in 1..=count {
                let address = format!("{CLUSTER_INSTANCE}.agent-{n}");
                out.extend(self.node(a, &address, "cluster.agents", file, Some(&server_address)));
                agents.push(address);
            }
        }
        if let Some((credentials_file, ciphertext)) = ciphertext {
            self.k3s = Some(K3s {
                version,
                install_script: c
                    .install_script
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INSTALL_SCRIPT.to_string()),
                api_timeout,
                credentials_file,
                origin: file
                    .at(at_credentials, "")
                    .to_string()
                    .trim_end_matches(": ")
                    .to_string(),
                ciphertext,
                server: server_address,
                agents,
            });
        }
        out
    }

    /// One node's `aws_instance`; its user-data is written after the credentials are decrypted.
    pub(super) fn node(
        &mut self,
        spec: &NodeSpec,
        address: &str,
        at: &str,
        file: &SourceFile,
        server: Option<&str>,
    ) -> Option<Resource> {
        let mut args = serde_json::json!({
            "ami": spec.ami,
            "instance_type": spec.instance_type,
            "subnet_id": spec.subnet_id,
            "vpc_security_group_ids": spec.security_group_ids,
            "key_name": spec.key_name,
            "root_volume_size": spec.root_volume_size,
            "iam_instance_profile": spec.iam_instance_profile,
        });
        self.cross_layer(&mut args, file, at, None);
        let mut found = Vec::new();
        refs::collect(&args, "", &mut found);
        let mut depends_on: BTreeSet<String> = found
            .iter()
            .filter_map(|(_, expr)| refs::Ref::parse(expr).address().map(str::to_string))
            .collect();
        if let Some(s) = server {
            depends_on.insert(s.to_string());
        }
        let spec = ResourceSpec::from_value(ResourceType::Instance, args)
            .map_err(|e| self.report(file.at(at, e.to_string())))
            .ok()?;
        Some(Resource {
            address: address.to_string(),
            spec,
            depends_on,
            late: BTreeSet::new(),
            origin: file
                .at(at, "")
                .to_string()
                .trim_end_matches(": ")
                .to_string(),
        })
    }

    /// Creates the resources of one module instance; returns them and the instance's outputs.
    pub(super) fn instantiate(
        &mut self,
        instance: &str,
        module: &ModuleFile,
        mfile: &SourceFile,
        inputs: &BTreeMap<String, Value>,
        used_at: &str,
    ) -> (Vec<Resource>, BTreeMap<String, Value>) {
        let used_at = used_at.trim_end_matches(": ");
        let note = format!(" (module instance `{instance}` at {used_at})");
        let mut names: BTreeMap<String, ResourceType> = BTreeMap::new();
        let mut typed = Vec::new();
        for (j, raw) in module.resources.iter().enumerate() {
            let at = idx("resources", j);
            let name = raw
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let type_name = raw
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !is_identifier(&name) {
                self.report(mfile.at(&key(&at, "name"), "every resource needs a `name`: letters, digits, `_` or `-`, starting with a letter"));
                continue;
            }
            let Some(ty) = ResourceType::parse(&type_name) else {
                let known: Vec<&str> = ResourceType::ALL.iter().map(|t| t.name()).collect();
                self.report(mfile.at(
                    &key(&at, "type"),
                    format!(
                        "unknown resource type `{type_name}`: expected one of {}",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            if names.insert(name.clone(), ty).is_some() {
                self.report(mfile.at(
                    &key(&at, "name"),
                    format!("duplicate resource name `{name}`"),
                ));
                continue;
            }
            typed.push((j, name, ty));
        }
        let mut out = Vec::new();
        for (j, name, ty) in typed {
            let at = idx("resources", j);
            let mut args = Value::Object(module.resources[j].clone());
            if let Value::Object(map) = &mut args {
                map.remove("name");
                map.remove("type");
            }
            let mut problems = Vec::new();
            let mut depends_on = BTreeSet::new();
            let mut raw_refs = Vec::new();
            refs::collect(&args, &at, &mut raw_refs);
            let mut cut = Vec::new();
            refs::unterminated_in(&args, &at, &mut cut);
            for (path, text) in cut {
                self.report(mfile.at(
                    &path,
                    format!("{}{note}", refs::unterminated_message(&text)),
                ));
            }
            refs::substitute(&mut args, &mut |expr| match refs::Ref::parse(expr) {
                refs::Ref::Input { name: k } => {
                    let v = inputs.get(k).cloned();
                    if v.is_none() && !module.inputs.contains_key(k) {
                        problems.push(format!("`${{{expr}}}` refers to input `{k}`, which the module does not declare"));
                    }
                    v
                }
                _ => None,
            });
            refs::substitute(&mut args, &mut |expr| {
                match refs::Ref::parse(expr) {
                    refs::Ref::Input { .. } => None,
                    refs::Ref::Local {
                        resource: r,
                        attribute: attr,
                    } => match names.get(r) {
                        Some(t) if t.attributes().contains(&attr) => {
                            depends_on.insert(format!("{instance}.{r}"));
                            Some(Value::String(format!("${{{instance}.{r}.{attr}}}")))
                        }
                        Some(t) => {
                            problems.push(format!(
                                "`${{{expr}}}`: {} has no attribute `{attr}` (attributes: {})",
                                t.name(),
                                t.attributes().join(", ")
                            ));
                            None
                        }
                        None => {
                            problems.push(format!("`${{{expr}}}` refers to `{r}`, which is not a resource of this module"));
                            None
                        }
                    },
                    // Canonical: a reference to another instance's resource that came in through an input.
                    refs::Ref::Attribute { address, .. } => {
                        depends_on.insert(address.to_string());
                        None
                    }
                    _ => {
                        problems.push(format!(
                            "invalid reference `${{{expr}}}`: expected `${{input.NAME}}` or `${{RESOURCE.ATTRIBUTE}}`"
                        ));
                        None
                    }
                }
            });
            let first_ref_path = raw_refs
                .first()
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| at.clone());
            for p in problems {
                self.report(mfile.at(&first_ref_path, format!("{p}{note}")));
            }
            let spec = self.typed_spec(ty, mfile, &at, args, &note);
            match spec {
                Ok(spec) => {
                    let (line, _) = mfile.position(&at);
                    out.push((
                        at,
                        Resource {
                            address: format!("{instance}.{name}"),
                            spec,
                            depends_on,
                            late: BTreeSet::new(),
                            origin: format!("{}:{line}", mfile.path),
                        },
                    ));
                }
                Err(mut d) => {
                    d.message.push_str(&note);
                    self.report(d);
                }
            }
        }
        self.check_cidrs(instance, &out, mfile, &note);
        let mut outputs = BTreeMap::new();
        for (k, expr) in &module.outputs {
            let mut v = Value::String(expr.clone());
            let mut bad = None;
            refs::substitute(&mut v, &mut |e| match refs::Ref::parse(e) {
                refs::Ref::Input { name: k } => inputs.get(k).cloned(),
                refs::Ref::Local {
                    resource: r,
                    attribute: attr,
                } if names.get(r).is_some_and(|t| t.attributes().contains(&attr)) => {
                    Some(Value::String(format!("${{{instance}.{r}.{attr}}}")))
                }
                _ => {
                    bad = Some(e.to_string());
                    None
                }
            });
            if let Some(e) = bad {
                self.report(mfile.at(
                    &key("outputs", k),
                    format!("output `{k}` refers to `${{{e}}}`, which is not an input or a resource attribute of this module"),
                ));
            }
            outputs.insert(k.clone(), v);
        }
        (out.into_iter().map(|(_, r)| r).collect(), outputs)
    }

    /// Parses a resource's arguments as its type; reads a key pair's `public_key_file`.
    pub(super) fn typed_spec(
        &mut self,
        ty: ResourceType,
        mfile: &SourceFile,
        at: &str,
        args: Value,
        note: &str,
    ) -> std::result::Result<ResourceSpec, Diagnostic> {
        let f = |args| -> std::result::Result<ResourceSpec, Diagnostic> {
            Ok(match ty {
                ResourceType::Vpc => ResourceSpec::Vpc(diag::from_value(mfile, at, args)?),
                ResourceType::Subnet => ResourceSpec::Subnet(diag::from_value(mfile, at, args)?),
                ResourceType::InternetGateway => {
                    ResourceSpec::InternetGateway(diag::from_value(mfile, at, args)?)
                }
                ResourceType::Eip => ResourceSpec::Eip(diag::from_value(mfile, at, args)?),
                ResourceType::NatGateway => {
                    ResourceSpec::NatGateway(diag::from_value(mfile, at, args)?)
                }
                ResourceType::RouteTable => {
                    ResourceSpec::RouteTable(diag::from_value(mfile, at, args)?)
                }
                ResourceType::SecurityGroup => {
                    ResourceSpec::SecurityGroup(diag::from_value(mfile, at, args)?)
                }
                ResourceType::KeyPair => ResourceSpec::KeyPair(diag::from_value(mfile, at, args)?),
                ResourceType::LaunchTemplate => {
                    ResourceSpec::LaunchTemplate(diag::from_value(mfile, at, args)?)
                }
                ResourceType::Instance => {
                    ResourceSpec::Instance(diag::from_value(mfile, at, args)?)
                }
                ResourceType::EipAssociation => {
                    ResourceSpec::EipAssociation(diag::from_value(mfile, at, args)?)
                }
            })
        };
        let mut spec = f(args)?;
        match &mut spec {
            ResourceSpec::KeyPair(k) => match (&k.public_key_file, &k.public_key) {
                (Some(rel), None) => {
                    let dir = mfile.path.rsplit_once('/').map_or("", |(d, _)| d);
                    let read = join(dir, rel)
                        .ok_or_else(|| format!("public_key_file `{rel}` points outside the repository"))
                        .and_then(|path| {
                            self.snapshot.file(&path).ok_or_else(|| {
                                format!("public_key_file `{rel}` not found: expected {path} in the commit")
                            })
                        })
                        .and_then(|bytes| {
                            std::str::from_utf8(bytes)
                                .map(|t| t.trim().to_string())
                                .map_err(|_| format!("public_key_file `{rel}` is not a text file"))
                        });
                    match read {
                        Ok(text) if text.starts_with("ssh-") || text.starts_with("ecdsa-") => {
                            k.public_key = Some(text)
                        }
                        Ok(_) => {
                            return Err(mfile.at(
                                &key(at, "public_key_file"),
                                format!("public_key_file `{rel}` is not an OpenSSH public key (ssh-ed25519, ssh-rsa, ecdsa-...){note}"),
                            ))
                        }
                        Err(m) => return Err(mfile.at(&key(at, "public_key_file"), format!("{m}{note}"))),
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(mfile.at(
                        at,
                        format!("an aws_key_pair needs exactly one of `public_key_file` and `public_key`{note}"),
                    ))
                }
            },
            ResourceSpec::RouteTable(t) => {
                for (i, r) in t.routes.iter().enumerate() {
                    if r.gateway_id.is_some() == r.nat_gateway_id.is_some() {
                        return Err(mfile.at(
                            &idx(&key(at, "routes"), i),
                            format!("a route needs exactly one of `gateway_id` and `nat_gateway_id`{note}"),
                        ));
                    }
                }
            }
            ResourceSpec::EipAssociation(a) if refs::whole(&a.allocation_id).is_none() => {
                return Err(mfile.at(
                    &key(at, "allocation_id"),
                    format!("allocation_id must refer to an aws_eip of the environment (`${{eip.id}}`), so that envboot owns the address{note}"),
                ));
            }
            ResourceSpec::Instance(i)
                if i.user_data.as_deref().is_some_and(|u| literal_len(u) > MAX_USER_DATA) =>
            {
                let len = i.user_data.as_deref().map(literal_len).unwrap_or_default();
                return Err(mfile.at(
                    &key(at, "user_data"),
                    format!(
                        "user_data is {len} bytes{}; EC2 takes at most {MAX_USER_DATA} bytes of user data",
                        if i.user_data.as_deref().is_some_and(|u| u.contains("${")) {
                            " before its references are filled in"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            ResourceSpec::Instance(i) if i.root_volume_size.is_some_and(|s| !(1..=16384).contains(&s)) => {
                return Err(mfile.at(
                    &key(at, "root_volume_size"),
                    format!("root_volume_size must be between 1 and 16384 GiB{note}"),
                ));
            }
            _ => {}
        }
        Ok(spec)
    }

    /// Subnets declared in one module instance for a VPC of another (through an output) lie
    /// inside it and overlap no other subnet of that VPC; within one instance, [`Self::check_cidrs`]
    /// has checked them.
    fn check_networks_across_instances(&mut self) {
        let nets = std::mem::take(&mut self.networks);
        for (i, s) in nets.subnets.iter().enumerate() {
            let Some((vpc_instance, vpc)) = nets.vpcs.get(&s.vpc_id) else {
                continue;
            };
            if *vpc_instance != s.instance && !vpc.contains(&s.net) {
                let mut d = s.at.clone();
                d.message = format!(
                    "subnet {} is not inside its VPC's {vpc} (the VPC of module instance `{vpc_instance}`){}",
                    s.net, s.note
                );
                self.report(d);
            }
            for other in &nets.subnets[..i] {
                if other.instance != s.instance
                    && other.vpc_id == s.vpc_id
                    && (other.net.contains(&s.net) || s.net.contains(&other.net))
                {
                    let mut d = s.at.clone();
                    d.message = format!(
                        "subnet {} overlaps {} ({}) in the same VPC{}",
                        s.net, other.address, other.net, s.note
                    );
                    self.report(d);
                }
            }
        }
    }

    /// CIDRs parse; subnets lie inside their VPC and do not overlap each other.
    pub(super) fn check_cidrs(
        &mut self,
        instance: &str,
        resources: &[(String, Resource)],
        mfile: &SourceFile,
        note: &str,
    ) {
        let literal = |s: &str| -> Option<std::result::Result<Ipv4Net, String>> {
            if s.contains("${") {
                return None;
            }
            Some(cidr(s))
        };
        let mut vpcs: HashMap<String, Ipv4Net> = HashMap::new();
        for (at, r) in resources {
            if let ResourceSpec::Vpc(v) = &r.spec {
                match literal(&v.cidr_block) {
                    Some(Ok(net)) => {
                        vpcs.insert(format!("${{{}.id}}", r.address), net);
                        self.networks.vpcs.insert(
                            format!("${{{}.id}}", r.address),
                            (instance.to_string(), net),
                        );
                    }
                    Some(Err(m)) => {
                        self.report(mfile.at(&key(at, "cidr_block"), format!("{m}{note}")))
                    }
                    None => {}
                }
            }
        }
        let mut subnets: Vec<(String, String, Ipv4Net, String)> = Vec::new();
        for (at, r) in resources {
            match &r.spec {
                ResourceSpec::Subnet(s) => match literal(&s.cidr_block) {
                    Some(Ok(net)) => {
                        if let Some(vpc) = vpcs.get(&s.vpc_id) {
                            if !vpc.contains(&net) {
                                self.report(mfile.at(
                                    &key(at, "cidr_block"),
                                    format!("subnet {net} is not inside its VPC's {vpc}{note}"),
                                ));
                            }
                        }
                        for (other_at, other_vpc, other, other_addr) in &subnets {
                            if *other_vpc == s.vpc_id
                                && (other.contains(&net) || net.contains(other))
                            {
                                let _ = other_at;
                                self.report(mfile.at(
                                    &key(at, "cidr_block"),
                                    format!("subnet {net} overlaps {other_addr} ({other}) in the same VPC{note}"),
                                ));
                            }
                        }
                        subnets.push((at.clone(), s.vpc_id.clone(), net, r.address.clone()));
                        self.networks.subnets.push(SubnetFact {
                            instance: instance.to_string(),
                            at: mfile.at(&key(at, "cidr_block"), String::new()),
                            vpc_id: s.vpc_id.clone(),
                            net,
                            address: r.address.clone(),
                            note: note.to_string(),
                        });
                    }
                    Some(Err(m)) => {
                        self.report(mfile.at(&key(at, "cidr_block"), format!("{m}{note}")))
                    }
                    None => {}
                },
                ResourceSpec::SecurityGroup(g) => {
                    let lists = [("ingress", g.ingress.as_slice())]
                        .into_iter()
                        .chain(g.egress.as_deref().map(|e| ("egress", e)));
                    for (field, rules) in lists {
                        for (i, rule) in rules.iter().enumerate() {
                            let rule_at = idx(&key(at, field), i);
                            self.check_rule(rule, field, &rule_at, &r.address, mfile, note);
                        }
                    }
                }
                ResourceSpec::RouteTable(t) => {
                    for (i, route) in t.routes.iter().enumerate() {
                        if let Some(Err(m)) = literal(&route.cidr_block) {
                            self.report(mfile.at(
                                &key(&idx(&key(at, "routes"), i), "cidr_block"),
                                format!("{m}{note}"),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A security group rule: valid CIDRs and protocol, a port range, at least one source, and a
    /// warning for SSH or all ports open to the internet.
    pub(super) fn check_rule(
        &mut self,
        rule: &spec::Rule,
        field: &str,
        rule_at: &str,
        address: &str,
        mfile: &SourceFile,
        note: &str,
    ) {
        for (c, block) in rule.cidr_blocks.iter().enumerate() {
            if let (false, Err(m)) = (block.contains("${"), cidr(block)) {
                self.report(mfile.at(&idx(&key(rule_at, "cidr_blocks"), c), format!("{m}{note}")));
            }
        }
        if rule.cidr_blocks.is_empty() && rule.security_groups.is_empty() {
            self.report(mfile.at(
                rule_at,
                format!("a rule needs `cidr_blocks` or `security_groups`{note}"),
            ));
        }
        if !matches!(rule.protocol.as_str(), "tcp" | "udp" | "icmp" | "-1") {
            self.report(mfile.at(
                &key(rule_at, "protocol"),
                format!(
                    "invalid protocol `{}`: expected tcp, udp, icmp or -1{note}",
                    rule.protocol
                ),
            ));
        }
        let open_to_all = rule.cidr_blocks.iter().any(|c| c == "0.0.0.0/0");
        let covers = |port: i32| rule.from_port <= port && port <= rule.to_port;
        let all_ports = rule.protocol == "-1" || (rule.from_port <= 0 && rule.to_port >= 65535);
        if field == "ingress"
            && open_to_all
            && (all_ports || (covers(22) && rule.protocol == "tcp"))
        {
            let what = if all_ports {
                "all ports"
            } else {
                "SSH (port 22)"
            };
            self.warnings.push(mfile.at(
                rule_at,
                format!("security group {address} opens {what} to 0.0.0.0/0{note}"),
            ));
        }
        let (range, what) = match rule.protocol.as_str() {
            "icmp" => (-1..=255, "an ICMP type or code (-1 to 255)"),
            _ => (-1..=65535, "a port (0 to 65535, or -1 for all)"),
        };
        for (field, port) in [("from_port", rule.from_port), ("to_port", rule.to_port)] {
            if !range.contains(&port) {
                self.report(mfile.at(
                    &key(rule_at, field),
                    format!("{field} {port} is not {what}{note}"),
                ));
            }
        }
        if rule.from_port > rule.to_port {
            self.report(mfile.at(
                &key(rule_at, "from_port"),
                format!(
                    "from_port {} is above to_port {}{note}",
                    rule.from_port, rule.to_port
                ),
            ));
        }
    }

    /// Checks cross-module references and sorts resources so dependencies come first.
    pub(super) fn order_resources(&mut self, mut resources: Vec<Resource>) -> Vec<Resource> {
        let index: HashMap<&str, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.address.as_str(), i))
            .collect();
        let mut deps: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        let mut missing = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            let entry = deps.entry(i).or_default();
            for d in &r.depends_on {
                match index.get(d.as_str()) {
                    Some(&j) => {
                        entry.insert(j);
                    }
                    None => missing.push((r.origin.clone(), r.address.clone(), d.clone())),
                }
            }
        }
        for (origin, address, d) in missing {
            self.report(Diagnostic::at_origin(
                &origin,
                format!("{address} refers to `{d}`, which does not exist"),
            ));
        }
        // Security groups whose rules refer to each other (web admits db, db admits web) are
        // a cycle only through their rules: such groups are created first, and those rules are
        // added once both exist.
        let sorted = match topo_sort(&deps) {
            Err(_) => {
                let rule_edges = security_group_rule_edges(&resources, &index);
                let mut relaxed = deps.clone();
                for (i, targets) in &rule_edges {
                    if let Some(entry) = relaxed.get_mut(i) {
                        for j in targets {
                            entry.remove(j);
                        }
                    }
                }
                match topo_sort(&relaxed) {
                    Ok(order) => {
                        for (i, targets) in rule_edges {
                            for j in targets {
                                let target = resources[j].address.clone();
                                resources[i].depends_on.remove(&target);
                                resources[i].late.insert(target);
                            }
                        }
                        Ok(order)
                    }
                    // Still a cycle: report the one as declared.
                    Err(_) => topo_sort(&deps),
                }
            }
            ok => ok,
        };
        match sorted {
            Ok(order) => {
                let mut slots: Vec<Option<Resource>> = resources.into_iter().map(Some).collect();
                order.into_iter().filter_map(|i| slots[i].take()).collect()
            }
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| resources[i].address.as_str())
                    .collect();
                let first = &resources[cycle[0]].origin;
                self.report(Diagnostic::at_origin(
                    first,
                    format!(
                        "resources refer to each other in a cycle: {}",
                        names.join(" -> ")
                    ),
                ));
                Vec::new()
            }
        }
    }
}

/// For each security group, the other security groups it refers to only inside its rules
/// (`ingress`/`egress` `security_groups`), by position (`index`: address to position).
pub(super) fn security_group_rule_edges(
    resources: &[Resource],
    index: &HashMap<&str, usize>,
) -> BTreeMap<usize, BTreeSet<usize>> {
    let is_group = |i: usize| matches!(resources[i].spec, ResourceSpec::SecurityGroup(_));
    let mut out: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, r) in resources.iter().enumerate().filter(|(i, _)| is_group(*i)) {
        let mut found = Vec::new();
        refs::collect(
            &serde_json::to_value(&r.spec).unwrap_or(Value::Null),
            "",
            &mut found,
        );
        let target = |expr: &str| {
            refs::Ref::parse(expr)
                .address()
                .and_then(|a| index.get(a).copied())
        };
        let in_rules: BTreeSet<usize> = found
            .iter()
            .filter(|(path, _)| path.starts_with("ingress") || path.starts_with("egress"))
            .filter_map(|(_, e)| target(e))
            .filter(|&j| j != i && is_group(j))
            .collect();
        let elsewhere: BTreeSet<usize> = found
            .iter()
            .filter(|(path, _)| !(path.starts_with("ingress") || path.starts_with("egress")))
            .filter_map(|(_, e)| target(e))
            .collect();
        let only_rules: BTreeSet<usize> = in_rules.difference(&elsewhere).copied().collect();
        if !only_rules.is_empty() {
            out.insert(i, only_rules);
        }
    }
    out
}

/// Orders nodes so that each comes after its dependencies; on a cycle, returns the cycle.
pub(super) fn topo_sort(
    deps: &BTreeMap<usize, BTreeSet<usize>>,
) -> std::result::Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    pub(super) fn visit(
        n: usize,
        deps: &BTreeMap<usize, BTreeSet<usize>>,
        marks: &mut BTreeMap<usize, Mark>,
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> std::result::Result<(), Vec<usize>> {
        match marks.get(&n).copied().unwrap_or(Mark::New) {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|&s| s == n).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(n);
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks.insert(n, Mark::Active);
        stack.push(n);
        for &d in deps.get(&n).into_iter().flatten() {
            visit(d, deps, marks, stack, out)?;
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        out.push(n);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for &n in deps.keys() {
        visit(n, deps, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// The most agents a k3s cluster may declare: each is an EC2 instance, planned and described
/// one by one (and AWS's default quota is far lower).
pub const MAX_AGENTS: u32 = 500;

/// An IPv4 network as AWS takes it: no host bits set (AWS refuses `10.0.0.1/16`).
fn cidr(s: &str) -> std::result::Result<Ipv4Net, String> {
    let net = s.parse::<Ipv4Net>().map_err(|_| {
        format!("invalid CIDR block `{s}`: expected an IPv4 network such as 10.0.0.0/16")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "CIDR block `{s}` has host bits set: the network is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// What the checks across module instances need to know of the networks declared.
#[derive(Default)]
pub(super) struct Networks {
    /// `${ADDRESS.id}` of each VPC with a literal CIDR: its instance and CIDR.
    vpcs: HashMap<String, (String, Ipv4Net)>,
    subnets: Vec<SubnetFact>,
}

pub(super) struct SubnetFact {
    instance: String,
    /// Where its `cidr_block` is (the message is filled in when there is something to say).
    at: Diagnostic,
    vpc_id: String,
    net: Ipv4Net,
    address: String,
    note: String,
}

/// EC2's limit on an instance's user data (before base64).
const MAX_USER_DATA: usize = 16 * 1024;

/// The length of `text` without its `${...}` references (what it is at least once resolved).
fn literal_len(text: &str) -> usize {
    let mut len = 0;
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        len += i;
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => return len + rest.len() - i,
        }
    }
    len + rest.len()
}
