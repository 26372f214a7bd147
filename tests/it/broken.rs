//! The corpus of broken environments: each case breaks one thing in an otherwise valid
//! repository and must fail with its own readable message, at its location, with the documented
//! exit code, before any API call. AWS and Kubernetes point at a closed port, so an attempted
//! call would end in exit code 1 instead.

use std::collections::BTreeSet;

use crate::common::*;

const ENV: &str = "environments/t/environment.yaml";
const NETWORK: &str = "modules/network/module.yaml";
const WEB: &str = "modules/web-tier/module.yaml";
const CHART: &str = "modules/hello/templates/configmap.yaml";

/// One broken repository: edits to the valid one, and what envboot must say.
struct Case {
    name: &'static str,
    /// (file, text to find, replacement); an empty `find` replaces the whole file.
    edits: &'static [(&'static str, &'static str, &'static str)],
    /// Extra command-line arguments.
    args: &'static [&'static str],
    code: i32,
    /// The file the error must point into (`file:line:`), or "" when there is no file.
    at: &'static str,
    says: &'static str,
    /// Changes too large or too odd for `edits` (big files, symbolic links), made before them.
    make: Option<fn(&Repo)>,
}

/// A module of one subnet in a VPC given as an input.
const EXTRA_SUBNET: &str = "apiVersion: envboot.dev/v1alpha1
kind: Module
inputs:
  vpc_id: {type: string}
  cidr: {type: string}
resources:
  - name: s
    type: aws_subnet
    vpc_id: ${input.vpc_id}
    cidr_block: ${input.cidr}
    availability_zone: us-east-1a
";

const CASES: &[Case] = &[
    Case {
        name: "malformed YAML",
        edits: &[(ENV, "region: us-east-1", "region: [us-east-1")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid YAML",
        make: None,
    },
    Case {
        name: "tab indentation",
        edits: &[(ENV, "  provider: aws", "\tprovider: aws")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid YAML",
        make: None,
    },
    Case {
        name: "wrong apiVersion",
        edits: &[(ENV, "envboot.dev/v1alpha1", "envboot.dev/v9")],
        args: &[],
        code: 3,
        at: ENV,
        says: "unsupported apiVersion `envboot.dev/v9`",
        make: None,
    },
    Case {
        name: "environment name not a DNS label",
        edits: &[(ENV, "name: t\n", "name: Prod_1\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid environment name `Prod_1`: expected a DNS label",
        make: None,
    },
    Case {
        name: "reference without its closing brace",
        edits: &[(ENV, "${module.network.vpc_id}", "${module.network.vpc_id")],
        args: &[],
        code: 3,
        at: ENV,
        says: "`${module.network.vpc_id`: a reference `${` without its closing `}`",
        make: None,
    },
    Case {
        name: "module reference without its closing brace",
        edits: &[(WEB, "ami: ${input.ami}", "ami: ${input.ami")],
        args: &[],
        code: 3,
        at: WEB,
        says: "`${input.ami`: a reference `${` without its closing `}`",
        make: None,
    },
    Case {
        name: "duplicate key in the environment file",
        edits: &[(ENV, "region: us-east-1", "region: us-east-1\n  region: us-west-2")],
        args: &[],
        code: 3,
        at: ENV,
        says: "duplicate key `region` (first at line",
        make: None,
    },
    Case {
        name: "a YAML tag envboot does not read",
        edits: &[(ENV, "region: us-east-1", "region: !include region.yaml")],
        args: &[],
        code: 3,
        at: ENV,
        says: "unsupported tag `!include`",
        make: None,
    },
    Case {
        name: "CIDR with host bits set",
        edits: &[(ENV, "cidr: 10.42.0.0/16", "cidr: 10.42.0.1/16")],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "CIDR block `10.42.0.1/16` has host bits set: the network is 10.42.0.0/16",
        make: None,
    },
    Case {
        name: "availability zone outside the region",
        edits: &[(ENV, "zone_a: us-east-1a", "zone_a: eu-west-1a")],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "availability zone `eu-west-1a` is not in the environment's region us-east-1",
        make: None,
    },
    Case {
        name: "not a region",
        edits: &[(ENV, "region: us-east-1", "region: mars")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid AWS region `mars`",
        make: None,
    },
    Case {
        name: "port out of range",
        edits: &[(WEB, "from_port: 22, to_port: 22", "from_port: 22, to_port: 70000")],
        args: &[],
        code: 3,
        at: WEB,
        says: "to_port 70000 is not a port (0 to 65535, or -1 for all)",
        make: None,
    },
    Case {
        name: "wrong kind",
        edits: &[(ENV, "kind: Environment", "kind: Module")],
        args: &[],
        code: 3,
        at: ENV,
        says: "kind is `Module`: expected `Environment`",
        make: None,
    },
    Case {
        name: "name differs from folder",
        edits: &[(ENV, "name: t\n", "name: prod\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "does not match the folder",
        make: None,
    },
    Case {
        name: "unknown top-level field",
        edits: &[(ENV, "cloud:", "clowd: {}\ncloud:")],
        args: &[],
        code: 3,
        at: ENV,
        says: "unknown field `clowd`",
        make: None,
    },
    Case {
        name: "unknown field in a module instance",
        edits: &[(
            ENV,
            "    module: web-tier\n",
            "    module: web-tier\n    modul: x\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "unknown field `modul`",
        make: None,
    },
    Case {
        name: "unsupported provider",
        edits: &[(ENV, "provider: aws", "provider: gcp")],
        args: &[],
        code: 3,
        at: ENV,
        says: "unsupported provider `gcp`",
        make: None,
    },
    Case {
        name: "region of the wrong type",
        edits: &[(ENV, "region: us-east-1", "region: [a, b]")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid type: sequence, expected a string",
        make: None,
    },
    Case {
        name: "missing cloud",
        edits: &[(ENV, "cloud:\n  provider: aws\n  region: us-east-1\n", "")],
        args: &[],
        code: 3,
        at: ENV,
        says: "missing field `cloud`",
        make: None,
    },
    Case {
        name: "infrastructure is not a list",
        edits: &[(ENV, "infrastructure:\n", "infrastructure: 7\nx:\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid type: integer `7`, expected a sequence",
        make: None,
    },
    Case {
        name: "missing module",
        edits: &[(ENV, "module: web-tier", "module: web-teir")],
        args: &[],
        code: 3,
        at: ENV,
        says: "module `web-teir` not found",
        make: None,
    },
    Case {
        name: "duplicate module instance",
        edits: &[(ENV, "  - name: web\n", "  - name: network\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "duplicate module instance name `network`",
        make: None,
    },
    Case {
        name: "invalid instance name",
        edits: &[(ENV, "  - name: web\n", "  - name: 9web\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid module instance name `9web`",
        make: None,
    },
    Case {
        name: "unknown input",
        edits: &[(
            ENV,
            "      ami: ami-03cf127a\n",
            "      ami: ami-03cf127a\n      size: xl\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "module `web-tier` has no input `size`",
        make: None,
    },
    Case {
        name: "missing required input",
        edits: &[(ENV, "      ami: ami-03cf127a\n", "")],
        args: &[],
        code: 3,
        at: ENV,
        says: "module `web-tier` requires input `ami`",
        make: None,
    },
    Case {
        name: "input of the wrong type",
        edits: &[(
            ENV,
            "      ami: ami-03cf127a\n",
            "      ami: ami-03cf127a\n      http_port: eighty\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "input `http_port` of module `web-tier` expects a number, got a string",
        make: None,
    },
    Case {
        name: "reference to an undeclared instance",
        edits: &[(ENV, "${module.network.vpc_id}", "${module.netwrk.vpc_id}")],
        args: &[],
        code: 3,
        at: ENV,
        says: "refers to module instance `netwrk`, which is not declared",
        make: None,
    },
    Case {
        name: "reference to an unknown output",
        edits: &[(ENV, "${module.network.vpc_id}", "${module.network.vpcid}")],
        args: &[],
        code: 3,
        at: ENV,
        says: "module instance `network` has no output `vpcid`",
        make: None,
    },
    Case {
        name: "malformed reference",
        edits: &[(ENV, "${module.network.vpc_id}", "${network}")],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid reference `${network}`: expected `${module.INSTANCE.OUTPUT}`",
        make: None,
    },
    Case {
        name: "cyclic module references",
        edits: &[(
            ENV,
            "      cidr: 10.42.0.0/16\n",
            "      cidr: ${module.web.security_group_id}\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "module instances refer to each other in a cycle",
        make: None,
    },
    Case {
        name: "CIDR with a bad prefix",
        edits: &[(ENV, "cidr: 10.42.0.0/16", "cidr: 10.42.0.0/33")],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "invalid CIDR block `10.42.0.0/33`",
        make: None,
    },
    Case {
        name: "CIDR that is not an address",
        edits: &[(
            ENV,
            "subnet_b_cidr: 10.42.2.0/24",
            "subnet_b_cidr: ten-dot-two",
        )],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "invalid CIDR block `ten-dot-two`",
        make: None,
    },
    Case {
        name: "subnet outside its VPC",
        edits: &[(
            ENV,
            "subnet_a_cidr: 10.42.1.0/24",
            "subnet_a_cidr: 10.99.1.0/24",
        )],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "subnet 10.99.1.0/24 is not inside its VPC's 10.42.0.0/16",
        make: None,
    },
    Case {
        name: "overlapping subnets",
        edits: &[(
            ENV,
            "subnet_b_cidr: 10.42.2.0/24",
            "subnet_b_cidr: 10.42.1.0/25",
        )],
        args: &[],
        code: 3,
        at: NETWORK,
        says: "overlaps network.public_a",
        make: None,
    },
    Case {
        name: "bad protocol",
        edits: &[(
            WEB,
            "{protocol: tcp, from_port: 22",
            "{protocol: sctp, from_port: 22",
        )],
        args: &[],
        code: 3,
        at: WEB,
        says: "invalid protocol `sctp`",
        make: None,
    },
    Case {
        name: "port range upside down",
        edits: &[(
            WEB,
            "from_port: 22, to_port: 22",
            "from_port: 23, to_port: 22",
        )],
        args: &[],
        code: 3,
        at: WEB,
        says: "from_port 23 is above to_port 22",
        make: None,
    },
    Case {
        name: "unknown resource type",
        edits: &[(WEB, "type: aws_instance", "type: aws_instanse")],
        args: &[],
        code: 3,
        at: WEB,
        says: "unknown resource type `aws_instanse`",
        make: None,
    },
    Case {
        name: "resource without a name",
        edits: &[(WEB, "  - name: server\n", "  - nam: server\n")],
        args: &[],
        code: 3,
        at: WEB,
        says: "every resource needs a `name`",
        make: None,
    },
    Case {
        name: "duplicate resource name",
        edits: &[(WEB, "  - name: server\n", "  - name: web\n")],
        args: &[],
        code: 3,
        at: WEB,
        says: "duplicate resource name `web`",
        make: None,
    },
    Case {
        name: "unknown resource argument",
        edits: &[(
            WEB,
            "    instance_type: ${input.instance_type}\n",
            "    instance_size: ${input.instance_type}\n",
        )],
        args: &[],
        code: 3,
        at: WEB,
        says: "unknown field `instance_size`",
        make: None,
    },
    Case {
        name: "reference to an unknown resource",
        edits: &[(WEB, "[ \"${web.id}\" ]", "[ \"${firewall.id}\" ]")],
        args: &[],
        code: 3,
        at: WEB,
        says: "refers to `firewall`, which is not a resource of this module",
        make: None,
    },
    Case {
        name: "reference to an unknown attribute",
        edits: &[(WEB, "[ \"${web.id}\" ]", "[ \"${web.arn}\" ]")],
        args: &[],
        code: 3,
        at: WEB,
        says: "aws_security_group has no attribute `arn`",
        make: None,
    },
    Case {
        name: "reference to an undeclared input",
        edits: &[(WEB, "ami: ${input.ami}", "ami: ${input.image}")],
        args: &[],
        code: 3,
        at: WEB,
        says: "refers to input `image`, which the module does not declare",
        make: None,
    },
    Case {
        name: "output referring to nothing",
        edits: &[(
            WEB,
            "security_group_id: ${web.id}",
            "security_group_id: ${nothing.id}",
        )],
        args: &[],
        code: 3,
        at: WEB,
        says: "output `security_group_id` refers to `${nothing.id}`",
        make: None,
    },
    Case {
        name: "module with a wrong apiVersion",
        edits: &[(WEB, "apiVersion: envboot.dev/v1alpha1", "apiVersion: v1")],
        args: &[],
        code: 3,
        at: WEB,
        says: "unsupported apiVersion `v1`",
        make: None,
    },
    Case {
        name: "malformed module",
        edits: &[(WEB, "resources:", "resources: [")],
        args: &[],
        code: 3,
        at: WEB,
        says: "invalid YAML",
        make: None,
    },
    Case {
        name: "missing chart",
        edits: &[(ENV, "chart: hello", "chart: helo")],
        args: &[],
        code: 3,
        at: ENV,
        says: "chart `helo` not found",
        make: None,
    },
    Case {
        name: "missing values file",
        edits: &[(
            ENV,
            "    namespace: t-apps\n    values:",
            "    namespace: t-apps\n    valuesFiles: [values/nope.yaml]\n    values:",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "values file `values/nope.yaml` not found",
        make: None,
    },
    Case {
        name: "values file that is not a map",
        edits: &[(
            ENV,
            "    namespace: t-apps\n    values:",
            "    namespace: t-apps\n    valuesFiles: [config/app.properties]\n    values:",
        )],
        args: &[],
        code: 3,
        at: "environments/t/config/app.properties",
        says: "a values file must be a map of values",
        make: None,
    },
    Case {
        name: "missing ConfigMap file",
        edits: &[(ENV, "path: config/app.properties", "path: config/app.props")],
        args: &[],
        code: 3,
        at: ENV,
        says: "file `config/app.props` not found",
        make: None,
    },
    Case {
        name: "ConfigMap file outside the repository",
        edits: &[(
            ENV,
            "path: config/app.properties",
            "path: ../../../../etc/passwd",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "points outside the repository",
        make: None,
    },
    Case {
        name: "duplicate ConfigMap",
        edits: &[(
            ENV,
            "      - path: config/app.properties\n",
            "      - path: config/app.properties\n  - {name: app-settings, namespace: t-apps}\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "duplicate ConfigMap `t-apps/app-settings`",
        make: None,
    },
    Case {
        name: "invalid namespace",
        edits: &[(
            ENV,
            "    namespace: t-apps\n    data:",
            "    namespace: T_Apps\n    data:",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "invalid namespace `T_Apps`",
        make: None,
    },
    Case {
        name: "duplicate release",
        edits: &[(
            ENV,
            "configMaps:",
            "  - {name: hello, chart: hello, namespace: t-apps}\nconfigMaps:",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "duplicate release name `hello`",
        make: None,
    },
    Case {
        name: "releases without a cluster",
        edits: &[(
            ENV,
            "cluster:\n  type: existing\n  context: envboot-sandbox\n",
            "",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "releases and configMaps need a `cluster:`",
        make: None,
    },
    Case {
        name: "unknown cluster type",
        edits: &[(ENV, "type: existing", "type: eks")],
        args: &[],
        code: 3,
        at: ENV,
        says: "unknown variant `eks`",
        make: None,
    },
    Case {
        name: "template calls an unknown function",
        edits: &[(
            CHART,
            "{{ .Values.greeting | quote }}",
            "{{ .Values.greeting | shout }}",
        )],
        args: &[],
        code: 3,
        at: CHART,
        says: "function \"shout\" not defined",
        make: None,
    },
    Case {
        name: "template fails on purpose",
        edits: &[(
            CHART,
            "{{ .Values.greeting | quote }}",
            "{{ required \"greeting is required\" .Values.nothing }}",
        )],
        args: &[],
        code: 3,
        at: CHART,
        says: "greeting is required",
        make: None,
    },
    Case {
        name: "template block never closed",
        edits: &[(CHART, "{{- end }}", "")],
        args: &[],
        code: 3,
        at: CHART,
        says: "unexpected EOF",
        make: None,
    },
    Case {
        name: "template output is not YAML",
        edits: &[(CHART, "data:", "data: [")],
        args: &[],
        code: 3,
        at: CHART,
        says: "YAML parse error on modules/hello/templates/configmap.yaml",
        make: None,
    },
    Case {
        name: "template object without a name",
        edits: &[(CHART, "  name: {{ .Release.Name }}-config\n", "")],
        args: &[],
        code: 3,
        at: CHART,
        says: "has no metadata.name",
        make: None,
    },
    Case {
        name: "missing secret file",
        edits: &[(
            ENV,
            "configMaps:",
            "secrets:\n  - {name: db, namespace: t-apps, file: secrets/db.age}\nconfigMaps:",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "secret file `secrets/db.age` not found",
        make: None,
    },
    Case {
        name: "secret in plain text",
        edits: &[(
            ENV,
            "configMaps:",
            "secrets:\n  - {name: db, namespace: t-apps, file: config/app.properties}\nconfigMaps:",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "is not age-encrypted",
        make: None,
    },
    Case {
        name: "chart value from an undeclared secret",
        edits: &[(
            ENV,
            "      greeting: Hello from t",
            "      greeting: ${secret.db.password}",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "refers to secret `db`, which is not declared under `secrets`",
        make: None,
    },
    Case {
        name: "secret value in a ConfigMap",
        edits: &[(
            ENV,
            "      LOG_LEVEL: debug",
            "      LOG_LEVEL: ${secret.db.password}",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "secret values go only into release values and Secrets, never into a ConfigMap",
        make: None,
    },
    Case {
        name: "env file with a line that is not KEY=VALUE",
        edits: &[
            (
                ENV,
                "    files:\n",
                "    envFiles: [config/app.env]\n    files:\n",
            ),
            (
                "environments/t/config/app.env",
                "",
                "GOOD=1\nthis line has no equals sign\n",
            ),
        ],
        args: &[],
        code: 3,
        at: "environments/t/config/app.env:2",
        says: "expected KEY=VALUE, found `this line has no equals sign`",
        make: None,
    },
    Case {
        name: "ConfigMap folder that does not exist",
        edits: &[(
            ENV,
            "    files:\n",
            "    folders: [config/nothing]\n    files:\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "folder `config/nothing` not found or empty",
        make: None,
    },
    Case {
        name: "dependsOn names an undeclared release",
        edits: &[(ENV, "    chart: hello\n", "    chart: hello\n    dependsOn: [nothing]\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "`dependsOn` names release `nothing`, which is not declared under `releases`",
        make: None,
    },
    Case {
        name: "a release that depends on itself",
        edits: &[(ENV, "    chart: hello\n", "    chart: hello\n    dependsOn: [hello]\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "release `hello` cannot depend on itself",
        make: None,
    },
    Case {
        name: "releases that depend on each other",
        edits: &[(
            ENV,
            "releases:\n",
            "releases:\n  - {name: a, chart: hello, namespace: t-apps, dependsOn: [b]}\n  - {name: b, chart: hello, namespace: t-apps, dependsOn: [a]}\n",
        )],
        args: &[],
        code: 3,
        at: ENV,
        says: "releases depend on each other in a circle: a -> b -> a",
        make: None,
    },
    Case {
        name: "a release timeout that is not a duration",
        edits: &[(ENV, "    chart: hello\n", "    chart: hello\n    timeout: soon\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "`soon` is not a duration such as 90s, 5m or 1h",
        make: None,
    },
    Case {
        name: "SSH open to the internet with --deny-warnings",
        edits: &[(
            ENV,
            "      ami: ami-03cf127a\n",
            "      ami: ami-03cf127a\n      admin_cidr: 0.0.0.0/0\n",
        )],
        args: &["--deny-warnings"],
        code: 3,
        at: WEB,
        says: "opens SSH (port 22) to 0.0.0.0/0",
        make: None,
    },
    Case {
        name: "subnet overlapping a subnet of another module instance",
        edits: &[(ENV, "  - name: web\n", "  - name: extra\n    module: extra\n    inputs:\n      vpc_id: ${module.network.vpc_id}\n      cidr: 10.42.1.128/25\n  - name: web\n")],
        args: &[],
        code: 3,
        at: "modules/extra/module.yaml",
        says: "overlaps network.public_a (10.42.1.0/24) in the same VPC",
        make: Some(|r| r.write("modules/extra/module.yaml", EXTRA_SUBNET)),
    },
    Case {
        name: "subnet outside the VPC of another module instance",
        edits: &[(ENV, "  - name: web\n", "  - name: extra\n    module: extra\n    inputs:\n      vpc_id: ${module.network.vpc_id}\n      cidr: 10.99.1.0/24\n  - name: web\n")],
        args: &[],
        code: 3,
        at: "modules/extra/module.yaml",
        says: "is not inside its VPC's 10.42.0.0/16 (the VPC of module instance `network`)",
        make: Some(|r| r.write("modules/extra/module.yaml", EXTRA_SUBNET)),
    },
    Case {
        name: "two releases rendering the same object",
        edits: &[
            (CHART, "  name: {{ .Release.Name }}-config\n", "  name: shared-config\n"),
            (ENV, "configMaps:", "  - {name: hello2, chart: hello, namespace: t-apps}\nconfigMaps:"),
        ],
        args: &[],
        code: 3,
        at: "",
        says: "ConfigMap t-apps/shared-config is rendered twice, by modules/hello/templates/configmap.yaml and by modules/hello/templates/configmap.yaml",
        make: None,
    },
    Case {
        name: "a release and configMaps rendering the same object",
        edits: &[(ENV, "  - name: app-settings\n", "  - name: hello-config\n")],
        args: &[],
        code: 3,
        at: "",
        says: "ConfigMap t-apps/hello-config is rendered twice, by configMaps and by modules/hello/templates/configmap.yaml",
        make: None,
    },
    Case {
        name: "chart object name Kubernetes refuses",
        edits: &[(CHART, "  name: {{ .Release.Name }}-config\n", "  name: Hello_Config\n")],
        args: &[],
        code: 3,
        at: "",
        says: "modules/hello/templates/configmap.yaml: ConfigMap t-apps/Hello_Config: invalid name `Hello_Config`",
        make: None,
    },
    Case {
        name: "chart object namespace Kubernetes refuses",
        edits: &[(CHART, "metadata:\n", "metadata:\n  namespace: Apps_1\n")],
        args: &[],
        code: 3,
        at: "",
        says: "invalid namespace `Apps_1`: a namespace is a DNS label",
        make: None,
    },
    Case {
        name: "chart ConfigMap over 1 MiB",
        edits: &[(CHART, "\ndata:\n", "\ndata:\n  BIG: {{ repeat 1100000 \"x\" }}\n")],
        args: &[],
        code: 3,
        at: "",
        says: "ConfigMap t-apps/hello-config: its data is 1100",
        make: None,
    },
    Case {
        name: "ConfigMap key Kubernetes refuses",
        edits: &[(ENV, "      LOG_LEVEL: debug\n", "      log level: debug\n")],
        args: &[],
        code: 3,
        at: ENV,
        says: "`log level` is not a valid ConfigMap key",
        make: None,
    },
    Case {
        name: "EC2 user data over 16 KiB",
        edits: &[],
        args: &[],
        code: 3,
        at: WEB,
        says: "EC2 takes at most 16384 bytes of user data",
        make: Some(|r| {
            let script = format!("#!/bin/sh\\n{}", "echo hello\\n".repeat(2000));
            r.edit(
                ENV,
                "user_data: \"#!/bin/sh\\necho hello\\n\"",
                &format!("user_data: \"{script}\""),
            );
        }),
    },
    Case {
        name: "chart apiVersion Helm refuses",
        edits: &[("modules/hello/Chart.yaml", "apiVersion: v2", "apiVersion: v3")],
        args: &[],
        code: 3,
        at: "",
        says: "modules/hello: invalid chart apiVersion (release `hello`)",
        make: None,
    },
    Case {
        name: "chart version that is not SemVer",
        edits: &[("modules/hello/Chart.yaml", "version: 0.1.0", "version: 0.1.x")],
        args: &[],
        code: 3,
        at: "",
        says: "validation: chart.metadata.version \"0.1.x\" is invalid",
        make: None,
    },
    Case {
        name: "a library chart as a release",
        edits: &[("modules/hello/Chart.yaml", "type: application", "type: library")],
        args: &[],
        code: 3,
        at: "",
        says: "modules/hello: library charts are not installable",
        make: None,
    },
    Case {
        name: "a committed symbolic link as a ConfigMap file",
        edits: &[],
        args: &[],
        code: 3,
        at: "environments/t/config/app.properties",
        says: "a symbolic link (to `/etc/hostname`): envboot reads files as committed and does not follow links",
        make: Some(|r| {
            let p = r.path().join("environments/t/config/app.properties");
            std::fs::remove_file(&p).expect("remove the ConfigMap file");
            std::os::unix::fs::symlink("/etc/hostname", &p).expect("make a symbolic link");
        }),
    },
    Case {
        name: "template recursion without end",
        edits: &[(
            CHART,
            "\ndata:\n",
            "\ndata:\n  X: {{ include \"loop\" . }}\n{{- define \"loop\" }}{{ include \"loop\" . }}{{ end }}\n",
        )],
        args: &[],
        code: 3,
        at: "",
        says: "rendering template has a nested reference name: loop: unable to execute template",
        make: None,
    },
    Case {
        name: "a values file with excessive aliasing",
        edits: &[],
        args: &[],
        code: 3,
        at: "",
        says: "document contains excessive aliasing",
        make: Some(|r| {
            let mut v = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
            let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
            for w in names.windows(2) {
                let refs = vec![format!("*{}", w[0]); 9].join(",");
                v.push_str(&format!("{c}: &{c} [{refs}]\n", c = w[1]));
            }
            let old = r.read("modules/hello/values.yaml");
            r.write("modules/hello/values.yaml", &format!("{old}\n{v}"));
        }),
    },
    Case {
        name: "a render that never ends",
        edits: &[(
            CHART,
            "\ndata:\n",
            "\ndata:\n{{- range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}\n",
        )],
        args: &[],
        code: 3,
        at: "",
        says: "rendering stopped: the chart exceeds envboot's budget of 50000000 steps",
        make: None,
    },
    Case {
        name: "revision that does not exist",
        edits: &[],
        args: &["--revision", "no-such-branch"],
        code: 4,
        at: "",
        says: "revision `no-such-branch` does not exist",
        make: None,
    },
];

#[test]
fn every_broken_environment_fails_with_its_own_located_message_and_no_api_call() {
    let base = Repo::new("t", &sandbox_environment("t"));
    base.write("environments/t/config/app.properties", "server.port=8080\n");
    base.commit("valid");
    let settings = unreachable(base.path());
    let valid = envboot(&base, &settings, &["validate", "t"]);
    valid.assert_ok();

    let mut messages = BTreeSet::new();
    let mut failures = Vec::new();
    for case in CASES {
        let repo = Repo::new("t", &base.read(ENV));
        repo.write("environments/t/config/app.properties", "server.port=8080\n");
        if let Some(make) = case.make {
            make(&repo);
        }
        for (file, find, replace) in case.edits {
            if find.is_empty() {
                repo.write(file, replace);
            } else {
                repo.edit(file, find, replace);
            }
        }
        repo.commit(case.name);
        let mut args = vec!["plan", "t"];
        args.extend(case.args);
        let run = envboot(&repo, &settings, &args);
        let located = case.at.is_empty() || run.stderr.contains(&format!("{}:", case.at));
        if run.code != case.code || !run.stderr.contains(case.says) || !located {
            failures.push(format!(
                "{}: expected exit {} saying {:?} at {}, got exit {}:\n{}",
                case.name, case.code, case.says, case.at, run.code, run.stderr
            ));
        }
        let message: String = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error") || l.contains(": "))
            .collect();
        messages.insert(message);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert!(CASES.len() >= 40, "the corpus holds {} cases", CASES.len());
    assert_eq!(
        messages.len(),
        CASES.len(),
        "every case gives a distinct message"
    );
}

#[test]
fn a_tree_or_blob_given_as_revision_is_named_for_what_it_is() {
    let repo = sandbox_repo("t");
    let settings = unreachable(repo.path());
    let tree = repo.git(&["rev-parse", "HEAD^{tree}"]);
    let run = envboot(
        &repo,
        &settings,
        &["validate", "t", "--revision", tree.trim()],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a tree (a folder's listing)")
            && run.stderr.contains("not a commit"),
        "{}",
        run.stderr
    );
    let blob = repo.git(&["rev-parse", "HEAD:environments/t/environment.yaml"]);
    let run = envboot(
        &repo,
        &settings,
        &["validate", "t", "--revision", &blob.trim()[..12]],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a blob (a file's content)"),
        "{}",
        run.stderr
    );
}

/// What Helm accepts in the files it reads, envboot accepts: a tab after `key:`, and values
/// nested to go-yaml's limit of 10,000 levels.
#[test]
fn values_files_keep_helms_leniency() {
    let repo = sandbox_repo("t");
    let deep: String = (0..9_999)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .chain([format!("{}k: 1\n", " ".repeat(9_999))])
        .collect();
    repo.write("environments/t/deep.yaml", &deep);
    repo.write("environments/t/tab.yaml", "greeting:\tHello with a tab\n");
    repo.edit(
        ENV,
        "    chart: hello\n",
        "    chart: hello\n    valuesFiles: [deep.yaml, tab.yaml]\n",
    );
    repo.edit(ENV, "      greeting: Hello from t\n", "");
    repo.commit("lenient values");
    let settings = unreachable(repo.path());
    let run = envboot(&repo, &settings, &["render", "t"]);
    run.assert_ok();
    assert!(
        run.stdout.contains("GREETING: Hello with a tab"),
        "{}",
        run.stdout
    );
    // one level more is go-yaml's error, located
    repo.write(
        "environments/t/deep.yaml",
        &format!(
            "k:\n{}",
            deep.lines().map(|l| format!(" {l}\n")).collect::<String>()
        ),
    );
    repo.commit("too deep");
    let run = envboot(&repo, &settings, &["validate", "t"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("environments/t/deep.yaml:10001:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("exceeded max depth of 10000"),
        "{}",
        run.stderr
    );
}
