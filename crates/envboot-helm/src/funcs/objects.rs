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
    // bytes where both are ASCII (every .helmignore and `.Files.Glob` in practice), characters
    // otherwise: the same matcher, without collecting either into a vector
    // the common shapes first: a literal name, and `*` and a literal suffix (`*.swp`)
    const SPECIAL: [char; 5] = ['*', '?', '[', '{', '\\'];
    if !pat.contains(SPECIAL) {
        return pat == s;
    }
    if let Some(suffix) = pat.strip_prefix('*') {
        if !suffix.contains(SPECIAL) {
            return s
                .strip_suffix(suffix)
                .is_some_and(|head| !head.contains('/'));
        }
    }
    if pat.is_ascii() && s.is_ascii() {
        return glob_m(pat.as_bytes(), s.as_bytes());
    }
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_m(&p, &s)
}

/// An item of a glob or of the text it matches: a byte of ASCII text, or a character.
trait GlobItem: Copy + Eq + Ord {
    fn is(self, c: u8) -> bool;
}

impl GlobItem for u8 {
    fn is(self, c: u8) -> bool {
        self == c
    }
}

impl GlobItem for char {
    fn is(self, c: u8) -> bool {
        self == char::from(c)
    }
}

fn glob_m<T: GlobItem>(p: &[T], s: &[T]) -> bool {
    let Some(&first) = p.first() else {
        return s.is_empty();
    };
    if first.is(b'*') {
        let double = p.get(1).is_some_and(|c| c.is(b'*'));
        let rest = if double { &p[2..] } else { &p[1..] };
        for i in 0..=s.len() {
            if glob_m(rest, &s[i..]) {
                return true;
            }
            if i < s.len() && !double && s[i].is(b'/') {
                return false;
            }
        }
        return false;
    }
    if first.is(b'?') {
        return !s.is_empty() && !s[0].is(b'/') && glob_m(&p[1..], &s[1..]);
    }
    if first.is(b'{') {
        let Some(close) = p.iter().position(|c| c.is(b'}')) else {
            return !s.is_empty() && s[0].is(b'{') && glob_m(&p[1..], &s[1..]);
        };
        return p[1..close].split(|c| c.is(b',')).any(|alt| {
            let mut np: Vec<T> = alt.to_vec();
            np.extend_from_slice(&p[close + 1..]);
            glob_m(&np, s)
        });
    }
    if first.is(b'[') {
        let Some(close) = p.iter().position(|c| c.is(b']')) else {
            return false;
        };
        let Some(&c0) = s.first() else {
            return false;
        };
        let set = &p[1..close];
        let (neg, set) = match set.first() {
            Some(c) if c.is(b'!') || c.is(b'^') => (true, &set[1..]),
            _ => (false, set),
        };
        let mut hit = false;
        let mut i = 0;
        while i < set.len() {
            if i + 2 < set.len() && set[i + 1].is(b'-') {
                if set[i] <= c0 && c0 <= set[i + 2] {
                    hit = true;
                }
                i += 3;
            } else {
                if set[i] == c0 {
                    hit = true;
                }
                i += 1;
            }
        }
        return hit != neg && glob_m(&p[close + 1..], &s[1..]);
    }
    if first.is(b'\\') && p.len() > 1 {
        return !s.is_empty() && s[0] == p[1] && glob_m(&p[2..], &s[1..]);
    }
    !s.is_empty() && s[0] == first && glob_m(&p[1..], &s[1..])
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
                        .map(|b| crate::value::text(b))
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
                let sel: BTreeMap<String, crate::value::FileData> = files
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
                            crate::value::text(v)
                        } else {
                            b64().encode(v.as_slice())
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
