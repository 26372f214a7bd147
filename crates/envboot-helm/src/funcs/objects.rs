//! Fields and methods of the struct-like objects (`.Files`, `.Capabilities.APIVersions`,
//! `.Capabilities.KubeVersion`, a `semver` result), and the globs of `.Files.Glob`.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;

use super::encoding::b64;
use super::paths::path_base;
use crate::value::{Obj, Value};
use crate::yaml;

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
                Ok(Value::Obj(Rc::new(Obj::Bytes(
                    files.get(&p).cloned().unwrap_or_default(),
                ))))
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
        Obj::Semver(v) | Obj::SemverValue(v) => {
            let pointer = matches!(&**o, Obj::Semver(_));
            let other = || -> Result<&crate::semver::Version, String> {
                if let Some(Value::Obj(x)) = args.first() {
                    if let Obj::Semver(w) = &**x {
                        return Ok(w);
                    }
                }
                match args.first() {
                    Some(Value::Str(s)) => Err(format!(
                        "can't handle {s:?} for arg of type *semver.Version"
                    )),
                    Some(x) => Err(format!(
                        "wrong type for value; expected *semver.Version; got {}",
                        x.type_name()
                    )),
                    None => Err(format!(
                        "wrong number of args for {name}: want 1 got {}",
                        args.len()
                    )),
                }
            };
            let value = |v: crate::semver::Version| Value::Obj(Rc::new(Obj::SemverValue(v)));
            match name {
                "Major" => Ok(Value::Int(v.major as i64)),
                "Minor" => Ok(Value::Int(v.minor as i64)),
                "Patch" => Ok(Value::Int(v.patch as i64)),
                "Prerelease" => Ok(Value::str(&v.pre)),
                "Metadata" => Ok(Value::str(&v.metadata)),
                "String" => Ok(Value::string(v.canonical())),
                "IncPatch" | "IncMinor" | "IncMajor" => Ok(value(v.incremented(name))),
                "SetPrerelease" | "SetMetadata" => v
                    .with_suffix(&arg_s(0)?, name == "SetMetadata")
                    .map(value)
                    .map_err(|e| format!("error calling {name}: {e}")),
                // pointer receivers
                "Original" if pointer => Ok(Value::str(&v.original)),
                "Compare" if pointer => Ok(Value::Int(match v.cmp(other()?) {
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Equal => 0,
                    std::cmp::Ordering::Greater => 1,
                })),
                "LessThan" | "GreaterThan" | "Equal" | "LessThanEqual" | "GreaterThanEqual"
                    if pointer =>
                {
                    let c = v.cmp(other()?);
                    Ok(Value::Bool(match name {
                        "LessThan" => c.is_lt(),
                        "GreaterThan" => c.is_gt(),
                        "Equal" => c.is_eq(),
                        "LessThanEqual" => c.is_le(),
                        _ => c.is_ge(),
                    }))
                }
                _ => Err(format!(
                    "can't evaluate field {name} in type {}",
                    Value::Obj(o.clone()).type_name()
                )),
            }
        }
        Obj::Bytes(_) => Err(format!("can't evaluate field {name} in type []uint8")),
    }
}
