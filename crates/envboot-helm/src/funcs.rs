//! Template functions: Go's builtins, Sprig, and Helm's own (`include`, `tpl`, `toYaml`, ...).

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest;

use super::exec::{Engine, FnError, FnResult, State};
use super::gofmt;
use super::parse::{self, Source};
use super::semver;
use super::value::{deep_equal, go_quote, strval, to_v, MapRef, Obj, Value};
use super::yaml;

const NAMES: &[&str] = &[
    // Go builtins
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "call",
    // Helm
    "include",
    "tpl",
    "required",
    "fail",
    "toYaml",
    "mustToYaml",
    "toYamlPretty",
    "fromYaml",
    "fromYamlArray",
    "toJson",
    "mustToJson",
    "fromJson",
    "fromJsonArray",
    "toToml",
    "lookup",
    // Sprig strings
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "title",
    "untitle",
    "repeat",
    "substr",
    "nospace",
    "trunc",
    "abbrev",
    "abbrevboth",
    "initials",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "snakecase",
    "camelcase",
    "kebabcase",
    "swapcase",
    "shuffle",
    "wrap",
    "wrapWith",
    "toString",
    "toStrings",
    "split",
    "splitList",
    "splitn",
    "join",
    "sortAlpha",
    "regexMatch",
    "mustRegexMatch",
    "regexFind",
    "mustRegexFind",
    "regexFindAll",
    "mustRegexFindAll",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    "b64enc",
    "b64dec",
    "sha256sum",
    "sha1sum",
    "adler32sum",
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "uuidv4",
    "htpasswd",
    "toPrettyJson",
    "mustToPrettyJson",
    "toRawJson",
    "mustToRawJson",
    "atoi",
    "int",
    "int64",
    "float64",
    "toDecimal",
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "addf",
    "add1f",
    "subf",
    "mulf",
    "divf",
    "maxf",
    "minf",
    "floor",
    "ceil",
    "round",
    "until",
    "untilStep",
    "seq",
    "list",
    "tuple",
    "first",
    "mustFirst",
    "last",
    "mustLast",
    "rest",
    "mustRest",
    "initial",
    "mustInitial",
    "append",
    "mustAppend",
    "push",
    "mustPush",
    "prepend",
    "mustPrepend",
    "concat",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "compact",
    "mustCompact",
    "mustSlice",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "values",
    "pick",
    "omit",
    "merge",
    "mustMerge",
    "mergeOverwrite",
    "mustMergeOverwrite",
    "deepCopy",
    "mustDeepCopy",
    "dig",
    "empty",
    "coalesce",
    "ternary",
    "default",
    "all",
    "any",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    "semver",
    "semverCompare",
    "now",
    "date",
    "dateInZone",
    "unixEpoch",
    "toDate",
    "mustToDate",
    "dateModify",
    "htmlDate",
    "htmlDateInZone",
    "ago",
    "duration",
    "base",
    "dir",
    "ext",
    "clean",
    "isAbs",
    "osBase",
    "osDir",
    "osExt",
    "osClean",
    "osIsAbs",
    "urlParse",
    "urlJoin",
    "genCA",
    "genSelfSignedCert",
    "genSignedCert",
    "genPrivateKey",
    "derivePassword",
    "encryptAES",
    "decryptAES",
    "bcrypt",
    "getHostByName",
    "b32enc",
    "b32dec",
    "sha512sum",
    "fromYamlArray",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

struct Args<'a> {
    name: &'a str,
    v: Vec<Value>,
}

fn wrong_type(expected: &str, v: &Value) -> FnError {
    match v {
        Value::Nil => FnError::Plain(format!("invalid value; expected {expected}")),
        v => FnError::Plain(format!(
            "wrong type for value; expected {expected}; got {}",
            v.type_name()
        )),
    }
}

impl Args<'_> {
    fn want(&self, n: usize) -> Result<(), FnError> {
        if self.v.len() != n {
            return Err(FnError::Plain(format!(
                "wrong number of args for {}: want {} got {}",
                self.name,
                n,
                self.v.len()
            )));
        }
        Ok(())
    }
    fn at_least(&self, n: usize) -> Result<(), FnError> {
        if self.v.len() < n {
            return Err(FnError::Plain(format!(
                "wrong number of args for {}: want at least {} got {}",
                self.name,
                n,
                self.v.len()
            )));
        }
        Ok(())
    }
    fn v(&self, i: usize) -> Value {
        self.v.get(i).cloned().unwrap_or(Value::Nil)
    }
    fn s(&self, i: usize) -> Result<String, FnError> {
        match self.v.get(i) {
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(v) => Err(wrong_type("string", v)),
            None => Err(wrong_type("string", &Value::Nil)),
        }
    }
    fn i(&self, i: usize) -> Result<i64, FnError> {
        match self.v.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(v) => Err(wrong_type("int", v)),
            None => Err(wrong_type("int", &Value::Nil)),
        }
    }
    fn b(&self, i: usize) -> Result<bool, FnError> {
        match self.v.get(i) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(wrong_type("bool", v)),
            None => Err(wrong_type("bool", &Value::Nil)),
        }
    }
    fn m(&self, i: usize) -> Result<MapRef, FnError> {
        match self.v.get(i) {
            Some(Value::Map(m)) => Ok(m.clone()),
            Some(v) => Err(wrong_type("map[string]interface {}", v)),
            None => Err(wrong_type("map[string]interface {}", &Value::Nil)),
        }
    }
}

fn call_err(m: impl Into<String>) -> FnError {
    FnError::Call(m.into())
}

/// `cast.ToInt64`: numbers truncate, strings parse (0 on failure), bools are 0/1.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        Value::Str(s) => {
            let t = trim_zero_decimal(s);
            yaml::go_parse_int(&t).unwrap_or(0)
        }
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> String {
    if let Some((a, b)) = s.split_once('.') {
        if !a.is_empty() && b.chars().all(|c| c == '0') {
            return a.to_string();
        }
    }
    s.to_string()
}

pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `strslice`.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().filter(|x| !x.is_nil()).map(strval).collect(),
        Value::Nil => Vec::new(),
        Value::Obj(o) => match &**o {
            Obj::ApiVersions(l) => l.clone(),
            _ => vec![strval(v)],
        },
        v => vec![strval(v)],
    }
}

fn as_list(name: &str, v: &Value) -> Result<Vec<Value>, FnError> {
    match v {
        Value::List(l) => Ok(l.to_vec()),
        Value::Obj(o) => match &**o {
            Obj::ApiVersions(l) => Ok(l.iter().map(|s| Value::str(s)).collect()),
            _ => Err(call_err(format!("Cannot {name} on type {}", v.type_name()))),
        },
        Value::Nil => Err(call_err(format!("Cannot {name} on type <nil>"))),
        v => Err(call_err(format!("Cannot {name} on type {}", v.type_name()))),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn regex(re: &str) -> Result<regex::Regex, FnError> {
    regex::Regex::new(re).map_err(|e| call_err(format!("error parsing regexp: {e}")))
}

/// go's `strings.Title` (deprecated but what sprig uses).
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, FnError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (Value::Nil, _) | (_, Value::Nil) => Err(call_err("invalid type for comparison")),
        (
            Value::Int(_) | Value::Float(_) | Value::Str(_),
            Value::Int(_) | Value::Float(_) | Value::Str(_),
        ) => Err(call_err("incompatible types for comparison")),
        _ => Err(call_err("invalid type for comparison")),
    }
}

fn basic(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(_) => Some(1),
        Value::Int(_) => Some(2),
        Value::Float(_) => Some(3),
        Value::Str(_) => Some(4),
        _ => None,
    }
}

/// Go's `eq` for two values.
fn go_eq(a: &Value, b: &Value) -> Result<bool, FnError> {
    let (ka, kb) = (basic(a), basic(b));
    if ka != kb {
        if !a.is_nil() && !b.is_nil() {
            if ka.is_some() && kb.is_some() {
                return Err(call_err("incompatible types for comparison"));
            }
            return Err(call_err("incompatible types for comparison"));
        }
        return Ok(false);
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::Nil, Value::Nil) => Ok(true),
        _ => Err(call_err(format!(
            "non-comparable type {}: {}",
            to_v(b),
            b.type_name()
        ))),
    }
}

/// mergo's `Merge` (and `WithOverride`) on template maps.
fn merge_into(dst: &MapRef, src: &MapRef, overwrite: bool) {
    if Rc::ptr_eq(dst, src) {
        return;
    }
    let entries: Vec<(String, Value)> = src
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, sv) in entries {
        let dv = dst.borrow().get(&k).cloned();
        match (&sv, &dv) {
            (Value::Nil, _) => {
                if overwrite {
                    dst.borrow_mut().insert(k, Value::Nil);
                }
                continue;
            }
            (Value::Map(s), Some(Value::Map(d))) => {
                merge_into(d, s, overwrite);
                if !d.borrow().is_empty() {
                    continue;
                }
            }
            (Value::List(_), Some(d)) if !d.is_empty() => {
                if overwrite {
                    dst.borrow_mut().insert(k, sv);
                }
                continue;
            }
            _ => {}
        }
        let set = match &dv {
            None => true,
            Some(d) => overwrite || d.is_empty(),
        };
        if set {
            dst.borrow_mut().insert(k, sv);
        }
    }
}

fn rand_next(e: &mut Engine) -> u64 {
    let mut x = e.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    e.rng = x;
    x
}

fn rand_string(e: &mut Engine, n: i64, alphabet: &[u8]) -> String {
    (0..n.max(0))
        .map(|_| alphabet[(rand_next(e) % alphabet.len() as u64) as usize] as char)
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bitlen = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bitlen.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | ((!b) & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// A `/`-separated glob as gobwas/glob matches it (`*` within a segment, `**` across).
pub fn glob_match(pat: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        if p.is_empty() {
            return s.is_empty();
        }
        match p[0] {
            '*' => {
                let double = p.get(1) == Some(&'*');
                let rest = if double { &p[2..] } else { &p[1..] };
                for i in 0..=s.len() {
                    if m(rest, &s[i..]) {
                        return true;
                    }
                    if i < s.len() && !double && s[i] == '/' {
                        return false;
                    }
                }
                false
            }
            '?' => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..]),
            '{' => {
                let Some(close) = p.iter().position(|&c| c == '}') else {
                    return !s.is_empty() && s[0] == '{' && m(&p[1..], &s[1..]);
                };
                let inner: String = p[1..close].iter().collect();
                inner.split(',').any(|alt| {
                    let mut np: Vec<char> = alt.chars().collect();
                    np.extend_from_slice(&p[close + 1..]);
                    m(&np, s)
                })
            }
            '[' => {
                let Some(close) = p.iter().position(|&c| c == ']') else {
                    return false;
                };
                if s.is_empty() {
                    return false;
                }
                let set = &p[1..close];
                let (neg, set) = if set.first() == Some(&'!') || set.first() == Some(&'^') {
                    (true, &set[1..])
                } else {
                    (false, set)
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        if set[i] <= s[0] && s[0] <= set[i + 2] {
                            hit = true;
                        }
                        i += 3;
                    } else {
                        if set[i] == s[0] {
                            hit = true;
                        }
                        i += 1;
                    }
                }
                hit != neg && m(&p[close + 1..], &s[1..])
            }
            '\\' if p.len() > 1 => !s.is_empty() && s[0] == p[1] && m(&p[2..], &s[1..]),
            c => !s.is_empty() && s[0] == c && m(&p[1..], &s[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Fields and methods of the struct-like objects.
pub fn obj_field(o: &Rc<Obj>, name: &str, args: Vec<Value>) -> Result<Value, String> {
    let arg_s = |i: usize| -> Result<String, String> {
        match args.get(i) {
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(v) => Err(format!(
                "wrong type for value; expected string; got {}",
                v.type_name()
            )),
            None => Err(format!(
                "wrong number of args for {name}: want 1 got {}",
                args.len()
            )),
        }
    };
    match &**o {
        Obj::Files(files) => match name {
            "Get" => {
                let p = arg_s(0)?;
                Ok(Value::string(
                    files
                        .get(&p)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default(),
                ))
            }
            "GetBytes" => {
                let p = arg_s(0)?;
                Ok(Value::list(
                    files
                        .get(&p)
                        .map(|b| b.iter().map(|x| Value::Int(*x as i64)).collect())
                        .unwrap_or_default(),
                ))
            }
            "Glob" => {
                let p = arg_s(0)?;
                let sel: BTreeMap<String, Vec<u8>> = files
                    .iter()
                    .filter(|(k, _)| glob_match(&p, k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(Value::Obj(Rc::new(Obj::Files(sel))))
            }
            "AsConfig" | "AsSecrets" => {
                if files.is_empty() {
                    return Ok(Value::str(""));
                }
                let m: BTreeMap<String, Value> = files
                    .iter()
                    .map(|(k, v)| {
                        let s = if name == "AsConfig" {
                            String::from_utf8_lossy(v).into_owned()
                        } else {
                            b64().encode(v)
                        };
                        (path_base(k), Value::string(s))
                    })
                    .collect();
                let y = yaml::to_yaml(&Value::map(m));
                Ok(Value::string(
                    y.strip_suffix('\n').unwrap_or(&y).to_string(),
                ))
            }
            "Lines" => {
                let p = arg_s(0)?;
                match files.get(&p) {
                    None => Ok(Value::list(Vec::new())),
                    Some(b) => {
                        let s = String::from_utf8_lossy(b);
                        let s = s.strip_suffix('\n').unwrap_or(&s);
                        Ok(Value::list(s.split('\n').map(Value::str).collect()))
                    }
                }
            }
            _ => Err(format!("can't evaluate field {name} in type common.Files")),
        },
        Obj::ApiVersions(v) => match name {
            "Has" => {
                let p = arg_s(0)?;
                Ok(Value::Bool(v.contains(&p)))
            }
            _ => Err(format!(
                "can't evaluate field {name} in type common.VersionSet"
            )),
        },
        Obj::KubeVersion {
            version,
            major,
            minor,
        } => match name {
            "Version" | "GitVersion" | "String" => Ok(Value::str(version)),
            "Major" => Ok(Value::str(major)),
            "Minor" => Ok(Value::str(minor)),
            _ => Err(format!(
                "can't evaluate field {name} in type *common.KubeVersion"
            )),
        },
        Obj::Semver(v) => match name {
            "Major" => Ok(Value::Int(v.major as i64)),
            "Minor" => Ok(Value::Int(v.minor as i64)),
            "Patch" => Ok(Value::Int(v.patch as i64)),
            "Prerelease" => Ok(Value::str(&v.pre)),
            "Metadata" => Ok(Value::str(&v.metadata)),
            "Original" | "String" => Ok(Value::str(&v.original)),
            _ => Err(format!(
                "can't evaluate field {name} in type *semver.Version"
            )),
        },
    }
}

fn now_string() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d, h, mi, s) = civil(secs as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.000000000 +0000 UTC")
}

fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = t.div_euclid(86400);
    let rem = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 { y + 1 } else { y },
        m,
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

fn to_toml(v: &Value) -> String {
    // A small TOML encoder (tables after plain keys), enough for flat configuration.
    fn scalar(v: &Value) -> String {
        match v {
            Value::Str(s) => go_quote(s),
            Value::List(l) => format!("[{}]", l.iter().map(scalar).collect::<Vec<_>>().join(", ")),
            Value::Float(f) if f.fract() == 0.0 => format!("{f:.1}"),
            v => to_v(v),
        }
    }
    fn table(m: &BTreeMap<String, Value>, prefix: &str, out: &mut String) {
        for (k, v) in m {
            if !matches!(v, Value::Map(_)) {
                out.push_str(&format!("{k} = {}\n", scalar(v)));
            }
        }
        for (k, v) in m {
            if let Value::Map(sub) = v {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push_str(&format!("\n[{name}]\n"));
                table(&sub.borrow(), &name, out);
            }
        }
    }
    let mut out = String::new();
    if let Value::Map(m) = v {
        table(&m.borrow(), "", &mut out);
    }
    out
}

impl Engine {
    pub fn call(&mut self, st: &State, name: &str, args: Vec<Value>, _dot: &Value) -> FnResult {
        let a = Args { name, v: args };
        let n = a.v.len();
        Ok(match name {
            // ---- Go builtins ----
            "not" => {
                a.want(1)?;
                Value::Bool(!a.v(0).truthy())
            }
            "len" => {
                a.want(1)?;
                match a.v(0) {
                    Value::Str(s) => Value::Int(s.len() as i64),
                    Value::List(l) => Value::Int(l.len() as i64),
                    Value::Map(m) => Value::Int(m.borrow().len() as i64),
                    Value::Nil => return Err(call_err("len of nil pointer")),
                    Value::Obj(o) => match &*o {
                        Obj::Files(f) => Value::Int(f.len() as i64),
                        Obj::ApiVersions(v) => Value::Int(v.len() as i64),
                        _ => return Err(call_err("len of type *common.KubeVersion")),
                    },
                    v => return Err(call_err(format!("len of type {}", v.type_name()))),
                }
            }
            "index" => {
                a.at_least(1)?;
                let mut cur = a.v(0);
                for idx in &a.v[1..] {
                    cur = match (&cur, idx) {
                        (Value::Nil, _) => return Err(call_err("index of untyped nil")),
                        (Value::Map(m), Value::Str(k)) => {
                            m.borrow().get(&**k).cloned().unwrap_or(Value::Nil)
                        }
                        (Value::Map(_), Value::Nil) => Value::Nil,
                        (Value::Map(_), k) => {
                            return Err(call_err(format!(
                                "value has type {}; should be string",
                                k.type_name()
                            )))
                        }
                        (Value::List(l), Value::Int(i)) => {
                            if *i < 0 || *i as usize >= l.len() {
                                return Err(call_err(format!("index out of range: {i}")));
                            }
                            l[*i as usize].clone()
                        }
                        (Value::Str(s), Value::Int(i)) => {
                            if *i < 0 || *i as usize >= s.len() {
                                return Err(call_err(format!("index out of range: {i}")));
                            }
                            Value::Int(s.as_bytes()[*i as usize] as i64)
                        }
                        (Value::List(_) | Value::Str(_), k) => {
                            return Err(call_err(format!(
                                "cannot index slice/array with type {}",
                                k.type_name()
                            )))
                        }
                        (c, _) => {
                            return Err(call_err(format!(
                                "can't index item of type {}",
                                c.type_name()
                            )))
                        }
                    };
                }
                cur
            }
            "slice" | "mustSlice" => {
                a.at_least(1)?;
                let idx: Vec<i64> = a.v[1..].iter().map(to_i64).collect();
                match a.v(0) {
                    Value::Str(s) => {
                        let start = idx.first().copied().unwrap_or(0).max(0) as usize;
                        let end = idx.get(1).copied().map(|e| e as usize).unwrap_or(s.len());
                        if start > end || end > s.len() {
                            return Err(call_err(format!("index out of range: {end}")));
                        }
                        Value::str(s.get(start..end).unwrap_or(""))
                    }
                    Value::List(l) => {
                        let start = idx.first().copied().unwrap_or(0).max(0) as usize;
                        let end = idx.get(1).copied().map(|e| e as usize).unwrap_or(l.len());
                        if start > end || end > l.len() {
                            return Err(call_err(format!("index out of range: {end}")));
                        }
                        Value::list(l[start..end].to_vec())
                    }
                    Value::Nil => return Err(call_err("slice of untyped nil")),
                    v => {
                        return Err(call_err(format!(
                            "can't slice item of type {}",
                            v.type_name()
                        )))
                    }
                }
            }
            "print" => Value::string(gofmt::sprint(&a.v)),
            "println" => Value::string(gofmt::sprintln(&a.v)),
            "printf" => {
                a.at_least(1)?;
                let f = a.s(0)?;
                Value::string(gofmt::sprintf(&f, &a.v[1..]))
            }
            "html" => Value::string(html_escape(&eval_args_string(&a.v))),
            "js" => Value::string(js_escape(&eval_args_string(&a.v))),
            "urlquery" => Value::string(query_escape(&eval_args_string(&a.v))),
            "eq" => {
                a.at_least(1)?;
                if n < 2 {
                    return Err(call_err("missing argument for comparison"));
                }
                let first = a.v(0);
                let mut r = false;
                for b in &a.v[1..] {
                    if go_eq(&first, b)? {
                        r = true;
                        break;
                    }
                }
                Value::Bool(r)
            }
            "ne" => {
                a.want(2)?;
                Value::Bool(!go_eq(&a.v(0), &a.v(1))?)
            }
            "lt" => {
                a.want(2)?;
                Value::Bool(go_lt(&a.v(0), &a.v(1))?)
            }
            "le" => {
                a.want(2)?;
                Value::Bool(go_lt(&a.v(0), &a.v(1))? || go_eq(&a.v(0), &a.v(1))?)
            }
            "gt" => {
                a.want(2)?;
                Value::Bool(!(go_lt(&a.v(0), &a.v(1))? || go_eq(&a.v(0), &a.v(1))?))
            }
            "ge" => {
                a.want(2)?;
                Value::Bool(!go_lt(&a.v(0), &a.v(1))?)
            }
            "call" => return Err(call_err("call of non-function")),

            // ---- Helm ----
            "include" => {
                a.want(2)?;
                let tname = a.s(0)?;
                let data = a.v(1);
                let count = self.include_stack.iter().filter(|x| **x == tname).count();
                if count > 1000 {
                    return Err(call_err(format!(
                        "rendering template has a nested reference name: {tname}: unable to execute template"
                    )));
                }
                if !self.templates.contains_key(&tname) {
                    return Err(call_err(format!(
                        "template: no template {tname:?} associated with template \"gotpl\""
                    )));
                }
                self.include_stack.push(tname.clone());
                let r = self.execute(&tname, &data);
                self.include_stack.pop();
                match r {
                    Ok(s) => Value::string(s),
                    Err(e) => return Err(FnError::Nested(e, String::new())),
                }
            }
            "tpl" => {
                a.want(2)?;
                let text = a.s(0)?;
                let data = a.v(1);
                let src = Rc::new(Source {
                    name: "gotpl".to_string(),
                    text: text.clone(),
                });
                let parsed = parse::parse(&src).map_err(|e| {
                    call_err(format!(
                        "cannot parse template {text:?}: template: {}: {}",
                        e.location, e.message
                    ))
                })?;
                // defines inside the text are visible while it runs
                let mut saved = Vec::new();
                for (k, body) in parsed.defines {
                    let old = self.templates.insert(
                        k.clone(),
                        super::exec::Tmpl {
                            body,
                            src: src.clone(),
                        },
                    );
                    saved.push((k, old));
                }
                let r = self.execute_body("gotpl", src, &parsed.body, &data, st.depth + 1);
                for (k, old) in saved.into_iter().rev() {
                    match old {
                        Some(t) => {
                            self.templates.insert(k, t);
                        }
                        None => {
                            self.templates.remove(&k);
                        }
                    }
                }
                match r {
                    Ok(s) => Value::string(s.replace("<no value>", "")),
                    Err(e) => {
                        return Err(FnError::Nested(
                            e,
                            format!("error during tpl function execution for {text:?}: "),
                        ))
                    }
                }
            }
            "required" => {
                a.want(2)?;
                let msg = a.s(0)?;
                let v = a.v(1);
                match &v {
                    Value::Nil => return Err(FnError::User(msg)),
                    Value::Str(s) if s.is_empty() => return Err(FnError::User(msg)),
                    _ => v,
                }
            }
            "fail" => {
                a.want(1)?;
                return Err(FnError::User(a.s(0)?));
            }
            "toYaml" | "mustToYaml" | "toYamlPretty" => {
                a.want(1)?;
                let y = yaml::to_yaml(&a.v(0));
                Value::string(y.strip_suffix('\n').unwrap_or(&y).to_string())
            }
            "fromYaml" => {
                a.want(1)?;
                let s = a.s(0)?;
                match yaml::parse(&s) {
                    Ok(Value::Map(m)) => yaml::jsonify(Value::Map(m)),
                    Ok(Value::Nil) => Value::empty_map(),
                    Ok(v) => {
                        let mut m = BTreeMap::new();
                        m.insert(
                            "Error".to_string(),
                            Value::string(format!(
                                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                                json_kind(&v)
                            )),
                        );
                        Value::map(m)
                    }
                    Err(e) => {
                        let mut m = BTreeMap::new();
                        m.insert(
                            "Error".to_string(),
                            Value::string(format!("error converting YAML to JSON: {e}")),
                        );
                        Value::map(m)
                    }
                }
            }
            "fromYamlArray" => {
                a.want(1)?;
                let s = a.s(0)?;
                match yaml::parse(&s) {
                    Ok(Value::List(l)) => yaml::jsonify(Value::List(l)),
                    Ok(Value::Nil) => Value::list(Vec::new()),
                    Ok(v) => Value::list(vec![Value::string(format!(
                        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
                        json_kind(&v)
                    ))]),
                    Err(e) => Value::list(vec![Value::string(format!("error converting YAML to JSON: {e}"))]),
                }
            }
            "toJson" | "mustToJson" => {
                a.want(1)?;
                Value::string(yaml::to_json(&a.v(0), None))
            }
            "toPrettyJson" | "mustToPrettyJson" => {
                a.want(1)?;
                Value::string(yaml::to_json(&a.v(0), Some("  ")))
            }
            "toRawJson" | "mustToRawJson" => {
                a.want(1)?;
                Value::string(
                    yaml::to_json(&a.v(0), None)
                        .replace("\\u003c", "<")
                        .replace("\\u003e", ">")
                        .replace("\\u0026", "&"),
                )
            }
            "fromJson" => {
                a.want(1)?;
                let s = a.s(0)?;
                match yaml::from_json(&s) {
                    Ok(v @ Value::Map(_)) => v,
                    Ok(_) => Value::empty_map(),
                    Err(e) => {
                        let mut m = BTreeMap::new();
                        m.insert("Error".to_string(), Value::string(e));
                        Value::map(m)
                    }
                }
            }
            "fromJsonArray" => {
                a.want(1)?;
                let s = a.s(0)?;
                match yaml::from_json(&s) {
                    Ok(v @ Value::List(_)) => v,
                    Ok(_) => Value::list(Vec::new()),
                    Err(e) => Value::list(vec![Value::string(e)]),
                }
            }
            "toToml" => {
                a.want(1)?;
                Value::string(to_toml(&a.v(0)))
            }
            "lookup" => {
                a.want(4)?;
                Value::empty_map()
            }

            // ---- strings ----
            "trim" => {
                a.want(1)?;
                Value::string(
                    a.s(0)?
                        .trim_matches(|c: char| c.is_whitespace())
                        .to_string(),
                )
            }
            "trimAll" => {
                a.want(2)?;
                let cut = a.s(0)?;
                Value::string(a.s(1)?.trim_matches(|c| cut.contains(c)).to_string())
            }
            "trimPrefix" => {
                a.want(2)?;
                let p = a.s(0)?;
                let s = a.s(1)?;
                Value::string(s.strip_prefix(p.as_str()).unwrap_or(&s).to_string())
            }
            "trimSuffix" => {
                a.want(2)?;
                let p = a.s(0)?;
                let s = a.s(1)?;
                Value::string(s.strip_suffix(p.as_str()).unwrap_or(&s).to_string())
            }
            "upper" => {
                a.want(1)?;
                Value::string(a.s(0)?.to_uppercase())
            }
            "lower" => {
                a.want(1)?;
                Value::string(a.s(0)?.to_lowercase())
            }
            "title" => {
                a.want(1)?;
                Value::string(title(&a.s(0)?))
            }
            "untitle" => {
                a.want(1)?;
                let s = a.s(0)?;
                let mut out = String::new();
                let mut prev_sep = true;
                for c in s.chars() {
                    if prev_sep && c.is_alphabetic() {
                        out.extend(c.to_lowercase());
                    } else {
                        out.push(c);
                    }
                    prev_sep = c.is_whitespace();
                }
                Value::string(out)
            }
            "repeat" => {
                a.want(2)?;
                Value::string(a.s(1)?.repeat(a.i(0)?.max(0) as usize))
            }
            "substr" => {
                a.want(3)?;
                let (st_, en) = (a.i(0)?, a.i(1)?);
                let s = a.s(2)?;
                let b = s.as_bytes();
                let r: &[u8] = if st_ < 0 {
                    b.get(..en.max(0) as usize).unwrap_or(b)
                } else if en < 0 || en as usize > b.len() {
                    b.get(st_ as usize..).unwrap_or(&[])
                } else {
                    b.get(st_ as usize..en as usize).unwrap_or(&[])
                };
                Value::string(String::from_utf8_lossy(r).into_owned())
            }
            "nospace" => {
                a.want(1)?;
                Value::string(a.s(0)?.chars().filter(|c| !c.is_whitespace()).collect())
            }
            "trunc" => {
                a.want(2)?;
                let c = a.i(0)?;
                let s = a.s(1)?;
                let l = s.len() as i64;
                let r = if c < 0 && l + c > 0 {
                    s.get((l + c) as usize..).unwrap_or(&s).to_string()
                } else if c >= 0 && l > c {
                    String::from_utf8_lossy(&s.as_bytes()[..c as usize]).into_owned()
                } else {
                    s
                };
                Value::string(r)
            }
            "abbrev" => {
                a.want(2)?;
                let w = a.i(0)?;
                let s = a.s(1)?;
                if w < 4 || s.chars().count() as i64 <= w {
                    Value::string(s)
                } else {
                    Value::string(format!(
                        "{}...",
                        s.chars().take((w - 3) as usize).collect::<String>()
                    ))
                }
            }
            "initials" => {
                a.want(1)?;
                Value::string(
                    a.s(0)?
                        .split_whitespace()
                        .filter_map(|w| w.chars().next())
                        .collect(),
                )
            }
            "contains" => {
                a.want(2)?;
                Value::Bool(a.s(1)?.contains(a.s(0)?.as_str()))
            }
            "hasPrefix" => {
                a.want(2)?;
                Value::Bool(a.s(1)?.starts_with(a.s(0)?.as_str()))
            }
            "hasSuffix" => {
                a.want(2)?;
                Value::Bool(a.s(1)?.ends_with(a.s(0)?.as_str()))
            }
            "quote" => Value::string(
                a.v.iter()
                    .filter(|x| !x.is_nil())
                    .map(|x| go_quote(&strval(x)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "squote" => Value::string(
                a.v.iter()
                    .filter(|x| !x.is_nil())
                    .map(|x| format!("'{}'", strval(x)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "cat" => Value::string(
                a.v.iter()
                    .filter(|x| !x.is_nil())
                    .map(to_v)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "indent" | "nindent" => {
                a.want(2)?;
                let pad = " ".repeat(a.i(0)?.max(0) as usize);
                let s = a.s(1)?;
                let body = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
                Value::string(if name == "nindent" {
                    format!("\n{body}")
                } else {
                    body
                })
            }
            "replace" => {
                a.want(3)?;
                let (old, new, s) = (a.s(0)?, a.s(1)?, a.s(2)?);
                Value::string(go_replace(&s, &old, &new))
            }
            "plural" => {
                a.want(3)?;
                let c = a.i(2)?;
                if c == 1 {
                    Value::string(a.s(0)?)
                } else {
                    Value::string(a.s(1)?)
                }
            }
            "snakecase" | "kebabcase" => {
                a.want(1)?;
                let sep = if name == "snakecase" { '_' } else { '-' };
                Value::string(case_words(&a.s(0)?, sep))
            }
            "camelcase" => {
                a.want(1)?;
                let s = a.s(0)?;
                Value::string(
                    s.split(['_', ' ', '-', '.'])
                        .filter(|w| !w.is_empty())
                        .map(|w| {
                            let mut c = w.chars();
                            match c.next() {
                                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                                None => String::new(),
                            }
                        })
                        .collect(),
                )
            }
            "swapcase" => {
                a.want(1)?;
                Value::string(
                    a.s(0)?
                        .chars()
                        .flat_map(|c| {
                            if c.is_uppercase() {
                                c.to_lowercase().collect::<Vec<_>>()
                            } else {
                                c.to_uppercase().collect::<Vec<_>>()
                            }
                        })
                        .collect(),
                )
            }
            "shuffle" => {
                a.want(1)?;
                let mut c: Vec<char> = a.s(0)?.chars().collect();
                for i in (1..c.len()).rev() {
                    let j = (rand_next(self) % (i as u64 + 1)) as usize;
                    c.swap(i, j);
                }
                Value::string(c.into_iter().collect())
            }
            "wrap" | "wrapWith" => {
                let (w, sep, s) = if name == "wrap" {
                    a.want(2)?;
                    (a.i(0)?, "\n".to_string(), a.s(1)?)
                } else {
                    a.want(3)?;
                    (a.i(0)?, a.s(1)?, a.s(2)?)
                };
                Value::string(wrap(&s, w.max(1) as usize, &sep))
            }
            "toString" => {
                a.want(1)?;
                Value::string(strval(&a.v(0)))
            }
            "toStrings" => {
                a.want(1)?;
                Value::list(strslice(&a.v(0)).into_iter().map(Value::string).collect())
            }
            "split" => {
                a.want(2)?;
                let (sep, s) = (a.s(0)?, a.s(1)?);
                let m: BTreeMap<String, Value> = go_split(&s, &sep)
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), Value::string(p)))
                    .collect();
                Value::map(m)
            }
            "splitList" => {
                a.want(2)?;
                let (sep, s) = (a.s(0)?, a.s(1)?);
                Value::list(go_split(&s, &sep).into_iter().map(Value::string).collect())
            }
            "splitn" => {
                a.want(3)?;
                let sep = a.s(0)?;
                let cnt = a.i(1)?;
                let s = a.s(2)?;
                let parts: Vec<String> = if cnt < 0 {
                    go_split(&s, &sep)
                } else {
                    s.splitn(cnt as usize, sep.as_str())
                        .map(String::from)
                        .collect()
                };
                Value::map(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("_{i}"), Value::string(p)))
                        .collect(),
                )
            }
            "join" => {
                a.want(2)?;
                let sep = a.s(0)?;
                Value::string(strslice(&a.v(1)).join(&sep))
            }
            "sortAlpha" => {
                a.want(1)?;
                let mut l = strslice(&a.v(0));
                l.sort();
                Value::list(l.into_iter().map(Value::string).collect())
            }
            "regexMatch" | "mustRegexMatch" => {
                a.want(2)?;
                let re = a.s(0)?;
                match regex::Regex::new(&re) {
                    Ok(r) => Value::Bool(r.is_match(&a.s(1)?)),
                    Err(e) if name.starts_with("must") => {
                        return Err(call_err(format!("error parsing regexp: {e}")))
                    }
                    Err(_) => Value::Bool(false),
                }
            }
            "regexFind" | "mustRegexFind" => {
                a.want(2)?;
                let r = regex(&a.s(0)?)?;
                let s = a.s(1)?;
                Value::string(
                    r.find(&s)
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_default(),
                )
            }
            "regexFindAll" | "mustRegexFindAll" => {
                a.want(3)?;
                let r = regex(&a.s(0)?)?;
                let s = a.s(1)?;
                let lim = a.i(2)?;
                let it = r.find_iter(&s).map(|m| Value::str(m.as_str()));
                let v: Vec<Value> = if lim < 0 {
                    it.collect()
                } else {
                    it.take(lim as usize).collect()
                };
                Value::list(v)
            }
            "regexReplaceAll" | "mustRegexReplaceAll" => {
                a.want(3)?;
                let r = regex(&a.s(0)?)?;
                Value::string(r.replace_all(&a.s(1)?, a.s(2)?.as_str()).into_owned())
            }
            "regexReplaceAllLiteral" | "mustRegexReplaceAllLiteral" => {
                a.want(3)?;
                let r = regex(&a.s(0)?)?;
                Value::string(
                    r.replace_all(&a.s(1)?, regex::NoExpand(&a.s(2)?))
                        .into_owned(),
                )
            }
            "regexSplit" | "mustRegexSplit" => {
                a.want(3)?;
                let r = regex(&a.s(0)?)?;
                let s = a.s(1)?;
                let lim = a.i(2)?;
                let v: Vec<Value> = if lim < 0 {
                    r.split(&s).map(Value::str).collect()
                } else {
                    r.splitn(&s, lim as usize).map(Value::str).collect()
                };
                Value::list(v)
            }
            "regexQuoteMeta" => {
                a.want(1)?;
                Value::string(regex::escape(&a.s(0)?))
            }
            "b64enc" => {
                a.want(1)?;
                Value::string(b64().encode(a.s(0)?.as_bytes()))
            }
            "b64dec" => {
                a.want(1)?;
                match b64().decode(a.s(0)?.as_bytes()) {
                    Ok(b) => Value::string(String::from_utf8_lossy(&b).into_owned()),
                    Err(e) => Value::string(e.to_string()),
                }
            }
            "sha256sum" => {
                a.want(1)?;
                Value::string(hex::encode(sha2::Sha256::digest(a.s(0)?.as_bytes())))
            }
            "sha512sum" => {
                a.want(1)?;
                Value::string(hex::encode(sha2::Sha512::digest(a.s(0)?.as_bytes())))
            }
            "sha1sum" => {
                a.want(1)?;
                Value::string(hex::encode(sha1(a.s(0)?.as_bytes())))
            }
            "adler32sum" => {
                a.want(1)?;
                let (mut x, mut y) = (1u32, 0u32);
                for b in a.s(0)?.bytes() {
                    x = (x + b as u32) % 65521;
                    y = (y + x) % 65521;
                }
                Value::string(((y << 16) | x).to_string())
            }
            "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" => {
                a.want(1)?;
                let n = a.i(0)?;
                let alpha: Vec<u8> = match name {
                    "randAlphaNum" => ALNUM.to_vec(),
                    "randAlpha" => ALNUM[..52].to_vec(),
                    "randNumeric" => ALNUM[52..].to_vec(),
                    _ => (32u8..127).collect(),
                };
                Value::string(rand_string(self, n, &alpha))
            }
            "uuidv4" => {
                let h = format!("{:016x}{:016x}", rand_next(self), rand_next(self));
                Value::string(format!(
                    "{}-{}-4{}-a{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[13..16],
                    &h[17..20],
                    &h[20..32]
                ))
            }
            "htpasswd" => {
                a.want(2)?;
                let user = a.s(0)?;
                let salt = rand_string(
                    self,
                    53,
                    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                );
                Value::string(format!("{user}:$2a$10${salt}"))
            }
            "bcrypt" => {
                a.want(1)?;
                let salt = rand_string(
                    self,
                    53,
                    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                );
                Value::string(format!("$2a$10${salt}"))
            }
            "atoi" => {
                a.want(1)?;
                Value::Int(a.s(0)?.parse::<i64>().unwrap_or(0))
            }
            "int" | "int64" => {
                a.want(1)?;
                Value::Int(to_i64(&a.v(0)))
            }
            "float64" => {
                a.want(1)?;
                Value::Float(to_f64(&a.v(0)))
            }
            "toDecimal" => {
                a.want(1)?;
                Value::Int(i64::from_str_radix(&strval(&a.v(0)), 8).unwrap_or(0))
            }
            "add" => Value::Int(a.v.iter().map(to_i64).fold(0i64, |x, y| x.wrapping_add(y))),
            "add1" => {
                a.want(1)?;
                Value::Int(to_i64(&a.v(0)).wrapping_add(1))
            }
            "sub" => {
                a.want(2)?;
                Value::Int(to_i64(&a.v(0)).wrapping_sub(to_i64(&a.v(1))))
            }
            "mul" => {
                a.at_least(1)?;
                Value::Int(a.v.iter().map(to_i64).fold(1i64, |x, y| x.wrapping_mul(y)))
            }
            "div" | "mod" => {
                a.want(2)?;
                let d = to_i64(&a.v(1));
                if d == 0 {
                    return Err(call_err("runtime error: integer divide by zero"));
                }
                let x = to_i64(&a.v(0));
                Value::Int(if name == "div" {
                    x.wrapping_div(d)
                } else {
                    x.wrapping_rem(d)
                })
            }
            "max" | "min" => {
                a.at_least(1)?;
                let it = a.v.iter().map(to_i64);
                Value::Int(if name == "max" {
                    it.max().unwrap_or(0)
                } else {
                    it.min().unwrap_or(0)
                })
            }
            "addf" => Value::Float(a.v.iter().map(to_f64).sum()),
            "add1f" => Value::Float(to_f64(&a.v(0)) + 1.0),
            "subf" => {
                a.at_least(1)?;
                Value::Float(
                    a.v[1..]
                        .iter()
                        .map(to_f64)
                        .fold(to_f64(&a.v(0)), |x, y| x - y),
                )
            }
            "mulf" => Value::Float(a.v.iter().map(to_f64).product()),
            "divf" => {
                a.at_least(1)?;
                Value::Float(
                    a.v[1..]
                        .iter()
                        .map(to_f64)
                        .fold(to_f64(&a.v(0)), |x, y| x / y),
                )
            }
            "maxf" => Value::Float(a.v.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max)),
            "minf" => Value::Float(a.v.iter().map(to_f64).fold(f64::INFINITY, f64::min)),
            "floor" => Value::Float(to_f64(&a.v(0)).floor()),
            "ceil" => Value::Float(to_f64(&a.v(0)).ceil()),
            "round" => {
                a.at_least(2)?;
                let p = to_i64(&a.v(1));
                let ro = if n > 2 { to_f64(&a.v(2)) } else { 0.5 };
                let pow = 10f64.powi(p as i32);
                let digit = pow * to_f64(&a.v(0));
                let (int, frac) = (digit.trunc(), digit.fract());
                let r = if frac >= ro { int + 1.0 } else { int };
                Value::Float(r / pow)
            }
            "until" => {
                a.want(1)?;
                let c = a.i(0)?;
                let v: Vec<Value> = if c >= 0 {
                    (0..c).map(Value::Int).collect()
                } else {
                    (c + 1..=0).rev().map(Value::Int).collect()
                };
                Value::list(v)
            }
            "untilStep" => {
                a.want(3)?;
                let (s0, stop, step) = (a.i(0)?, a.i(1)?, a.i(2)?);
                let mut v = Vec::new();
                if step > 0 && s0 < stop {
                    let mut i = s0;
                    while i < stop {
                        v.push(Value::Int(i));
                        i += step;
                    }
                } else if step < 0 && s0 > stop {
                    let mut i = s0;
                    while i > stop {
                        v.push(Value::Int(i));
                        i += step;
                    }
                }
                Value::list(v)
            }
            "seq" => {
                let p: Vec<i64> = a.v.iter().map(to_i64).collect();
                let (s0, step, end) = match p.as_slice() {
                    [e] => (1, if *e >= 1 { 1 } else { -1 }, *e),
                    [s, e] => (*s, if e >= s { 1 } else { -1 }, *e),
                    [s, st2, e] => (*s, *st2, *e),
                    _ => return Ok(Value::str("")),
                };
                let mut out = Vec::new();
                let mut i = s0;
                if step == 0 {
                    return Ok(Value::str(""));
                }
                while (step > 0 && i <= end) || (step < 0 && i >= end) {
                    out.push(i.to_string());
                    i += step;
                }
                Value::string(out.join(" "))
            }
            "list" | "tuple" => Value::list(a.v.clone()),
            "first" | "mustFirst" => {
                a.want(1)?;
                as_list("find first", &a.v(0))?
                    .first()
                    .cloned()
                    .unwrap_or(Value::Nil)
            }
            "last" | "mustLast" => {
                a.want(1)?;
                as_list("find last", &a.v(0))?
                    .last()
                    .cloned()
                    .unwrap_or(Value::Nil)
            }
            "rest" | "mustRest" => {
                a.want(1)?;
                let l = as_list("find rest", &a.v(0))?;
                if l.is_empty() {
                    Value::Nil
                } else {
                    Value::list(l[1..].to_vec())
                }
            }
            "initial" | "mustInitial" => {
                a.want(1)?;
                let l = as_list("find initial", &a.v(0))?;
                if l.is_empty() {
                    Value::Nil
                } else {
                    Value::list(l[..l.len() - 1].to_vec())
                }
            }
            "append" | "mustAppend" | "push" | "mustPush" => {
                a.want(2)?;
                let mut l = as_list("push", &a.v(0))?;
                l.push(a.v(1));
                Value::list(l)
            }
            "prepend" | "mustPrepend" => {
                a.want(2)?;
                let mut l = as_list("prepend", &a.v(0))?;
                l.insert(0, a.v(1));
                Value::list(l)
            }
            "concat" => {
                let mut out = Vec::new();
                for x in &a.v {
                    out.extend(as_list("concat", x)?);
                }
                Value::list(out)
            }
            "reverse" | "mustReverse" => {
                a.want(1)?;
                let mut l = as_list("reverse", &a.v(0))?;
                l.reverse();
                Value::list(l)
            }
            "uniq" | "mustUniq" => {
                a.want(1)?;
                let l = as_list("uniq", &a.v(0))?;
                let mut out: Vec<Value> = Vec::new();
                for x in l {
                    if !out.iter().any(|y| deep_equal(y, &x)) {
                        out.push(x);
                    }
                }
                Value::list(out)
            }
            "without" | "mustWithout" => {
                a.at_least(1)?;
                let l = as_list("without", &a.v(0))?;
                let omit = &a.v[1..];
                Value::list(
                    l.into_iter()
                        .filter(|x| !omit.iter().any(|o| deep_equal(o, x)))
                        .collect(),
                )
            }
            "has" | "mustHas" => {
                a.want(2)?;
                match a.v(1) {
                    Value::Nil => Value::Bool(false),
                    h => {
                        let l = as_list("find has", &h)?;
                        let needle = a.v(0);
                        Value::Bool(l.iter().any(|x| deep_equal(x, &needle)))
                    }
                }
            }
            "compact" | "mustCompact" => {
                a.want(1)?;
                let l = as_list("compact", &a.v(0))?;
                Value::list(l.into_iter().filter(|x| !x.is_empty()).collect())
            }
            "dict" => {
                let mut m = BTreeMap::new();
                let mut i = 0;
                while i < n {
                    let k = strval(&a.v[i]);
                    let v = a.v.get(i + 1).cloned().unwrap_or(Value::str(""));
                    m.insert(k, v);
                    i += 2;
                }
                Value::map(m)
            }
            "get" => {
                a.want(2)?;
                let m = a.m(0)?;
                let k = a.s(1)?;
                let v = m.borrow().get(&k).cloned();
                v.unwrap_or_else(|| Value::str(""))
            }
            "set" => {
                a.want(3)?;
                let m = a.m(0)?;
                let k = a.s(1)?;
                m.borrow_mut().insert(k, a.v(2));
                Value::Map(m)
            }
            "unset" => {
                a.want(2)?;
                let m = a.m(0)?;
                let k = a.s(1)?;
                m.borrow_mut().remove(&k);
                Value::Map(m)
            }
            "hasKey" => {
                a.want(2)?;
                let m = a.m(0)?;
                let k = a.s(1)?;
                let r = m.borrow().contains_key(&k);
                Value::Bool(r)
            }
            "pluck" => {
                a.at_least(1)?;
                let k = a.s(0)?;
                let mut out = Vec::new();
                for i in 1..n {
                    let m = a.m(i)?;
                    let found = m.borrow().get(&k).cloned();
                    if let Some(v) = found {
                        out.push(v);
                    }
                }
                Value::list(out)
            }
            "keys" => {
                let mut out = Vec::new();
                for i in 0..n {
                    let m = a.m(i)?;
                    out.extend(m.borrow().keys().map(|k| Value::str(k)));
                }
                Value::list(out)
            }
            "values" => {
                a.want(1)?;
                let m = a.m(0)?;
                let v: Vec<Value> = m.borrow().values().cloned().collect();
                Value::list(v)
            }
            "pick" | "omit" => {
                a.at_least(1)?;
                let m = a.m(0)?;
                let ks: Vec<String> = a.v[1..].iter().map(strval).collect();
                let keep = name == "pick";
                let r: BTreeMap<String, Value> = m
                    .borrow()
                    .iter()
                    .filter(|(k, _)| ks.contains(k) == keep)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Value::map(r)
            }
            "merge" | "mustMerge" | "mergeOverwrite" | "mustMergeOverwrite" => {
                a.at_least(1)?;
                let dst = a.m(0)?;
                let overwrite = name.ends_with("Overwrite");
                for i in 1..n {
                    let src = a.m(i)?;
                    merge_into(&dst, &src, overwrite);
                }
                Value::Map(dst)
            }
            "deepCopy" | "mustDeepCopy" => {
                a.want(1)?;
                a.v(0).deep_copy()
            }
            "dig" => {
                a.at_least(3)?;
                let m = a.m(n - 1)?;
                let def = a.v(n - 2);
                let keys: Vec<String> = a.v[..n - 2].iter().map(strval).collect();
                let mut cur = Value::Map(m);
                for k in keys {
                    let next = match &cur {
                        Value::Map(mm) => mm.borrow().get(&k).cloned(),
                        _ => None,
                    };
                    match next {
                        Some(v) => cur = v,
                        None => return Ok(def),
                    }
                }
                cur
            }
            "empty" => {
                a.want(1)?;
                Value::Bool(a.v(0).is_empty())
            }
            "coalesce" => {
                a.v.iter()
                    .find(|x| !x.is_empty())
                    .cloned()
                    .unwrap_or(Value::Nil)
            }
            "all" => Value::Bool(a.v.iter().all(|x| !x.is_empty())),
            "any" => Value::Bool(a.v.iter().any(|x| !x.is_empty())),
            "ternary" => {
                a.want(3)?;
                if a.b(2)? {
                    a.v(0)
                } else {
                    a.v(1)
                }
            }
            "default" => {
                a.at_least(1)?;
                let given = a.v(1);
                if n < 2 || given.is_empty() {
                    a.v(0)
                } else {
                    given
                }
            }
            "typeOf" => {
                a.want(1)?;
                Value::str(a.v(0).type_name())
            }
            "typeIs" => {
                a.want(2)?;
                Value::Bool(a.s(0)? == a.v(1).type_name())
            }
            "typeIsLike" => {
                a.want(2)?;
                let t = a.s(0)?;
                let tn = a.v(1).type_name();
                Value::Bool(t == tn || t == format!("*{tn}"))
            }
            "kindOf" => {
                a.want(1)?;
                Value::str(a.v(0).kind_name())
            }
            "kindIs" => {
                a.want(2)?;
                Value::Bool(a.s(0)? == a.v(1).kind_name())
            }
            "deepEqual" => {
                a.want(2)?;
                Value::Bool(deep_equal(&a.v(0), &a.v(1)))
            }
            "semver" => {
                a.want(1)?;
                let v = semver::Version::parse(&a.s(0)?).map_err(call_err)?;
                Value::Obj(Rc::new(Obj::Semver(v)))
            }
            "semverCompare" => {
                a.want(2)?;
                Value::Bool(semver::compare(&a.s(0)?, &a.s(1)?).map_err(call_err)?)
            }
            "now" => Value::string(now_string()),
            "date" | "dateInZone" | "htmlDate" | "htmlDateInZone" | "dateModify" | "toDate"
            | "mustToDate" | "ago" | "duration" => Value::string(now_string()),
            "unixEpoch" => Value::string(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .to_string(),
            ),
            "base" | "osBase" => {
                a.want(1)?;
                Value::string(path_base(&a.s(0)?))
            }
            "dir" | "osDir" => {
                a.want(1)?;
                let s = a.s(0)?;
                Value::string(match s.rfind('/') {
                    Some(0) => "/".into(),
                    Some(i) => s[..i].to_string(),
                    None => ".".into(),
                })
            }
            "ext" | "osExt" => {
                a.want(1)?;
                let s = a.s(0)?;
                let base = s.rsplit('/').next().unwrap_or(&s);
                Value::string(
                    base.rfind('.')
                        .map(|i| base[i..].to_string())
                        .unwrap_or_default(),
                )
            }
            "clean" | "osClean" => {
                a.want(1)?;
                Value::string(a.s(0)?)
            }
            "isAbs" | "osIsAbs" => {
                a.want(1)?;
                Value::Bool(a.s(0)?.starts_with('/'))
            }
            _ => {
                return Err(call_err(format!(
                    "function {name:?} is not supported by envboot"
                )))
            }
        })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "array",
        Value::Str(_) => "string",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Float(_) => "number",
        Value::Map(_) => "object",
        _ => "null",
    }
}

/// `fmt.Sprint` of the arguments as text/template's escapers take them.
fn eval_args_string(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    gofmt::sprint(args)
}

/// Go's `strings.Split` (an empty separator splits into UTF-8 characters).
fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(|c| c.to_string()).collect();
    }
    s.split(sep).map(String::from).collect()
}

/// Go's `strings.Replace(s, old, new, -1)`.
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

fn case_words(s: &str, sep: char) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            if i > 0
                && !chars[i - 1].is_uppercase()
                && chars[i - 1] != sep
                && chars[i - 1] != '_'
                && chars[i - 1] != '-'
            {
                out.push(sep);
            }
            out.extend(c.to_lowercase());
        } else if c == '_' || c == '-' || c == ' ' {
            out.push(sep);
        } else {
            out.push(c);
        }
    }
    out
}

fn wrap(s: &str, width: usize, sep: &str) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for (i, w) in s.split(' ').enumerate() {
        if i > 0 {
            if line_len + 1 + w.len() > width {
                out.push_str(sep);
                line_len = 0;
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(w);
        line_len += w.len();
    }
    out
}
