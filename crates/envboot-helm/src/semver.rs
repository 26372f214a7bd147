//! Semantic versions and constraints with the semantics of Masterminds/semver v3 (what Helm's
//! `semverCompare` and Chart.yaml `kubeVersion` use).

use std::cmp::Ordering;

#[derive(Debug, Clone)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    pub original: String,
}

/// Masterminds/semver v3's `NewVersion` accepts `s` (what Helm requires of a chart's version):
/// an optional `v`, one to three numeric parts, a pre-release of dot-separated alphanumeric
/// identifiers (numeric ones without leading zeros) and build metadata.
pub fn is_valid(s: &str) -> bool {
    let t = s.strip_prefix('v').unwrap_or(s);
    let (t, metadata) = match t.split_once('+') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let (core, pre) = match t.split_once('-') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let core_ok = parts.len() <= 3
        && parts.iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok()
        });
    let pre_ok = pre.is_none_or(|p| p.split('.').all(|id| ident_ok(id) && !leading_zero(id)));
    let meta_ok = metadata.is_none_or(|m| m.split('.').all(ident_ok));
    core_ok && pre_ok && meta_ok
}

/// A pre-release or metadata identifier: `[0-9A-Za-z-]+`.
fn ident_ok(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A numeric pre-release identifier with a leading zero, which SemVer forbids.
fn leading_zero(id: &str) -> bool {
    id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())
}

impl Version {
    /// Masterminds' `String`: `MAJOR.MINOR.PATCH[-PRE][+META]`, without a `v`.
    pub fn canonical(&self) -> String {
        let mut out = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            out.push('-');
            out.push_str(&self.pre);
        }
        if !self.metadata.is_empty() {
            out.push('+');
            out.push_str(&self.metadata);
        }
        out
    }

    /// Masterminds' `IncPatch`, `IncMinor`, `IncMajor`: a pre-release or metadata is dropped
    /// (and `IncPatch` of such a version keeps its patch number).
    pub fn incremented(&self, part: &str) -> Version {
        let mut next = Version {
            pre: String::new(),
            metadata: String::new(),
            ..self.clone()
        };
        match part {
            "IncMajor" => (next.major, next.minor, next.patch) = (self.major + 1, 0, 0),
            "IncMinor" => (next.minor, next.patch) = (self.minor + 1, 0),
            _ if self.pre.is_empty() && self.metadata.is_empty() => next.patch = self.patch + 1,
            _ => {}
        }
        next.original = next.canonical();
        next
    }

    /// Masterminds' `SetPrerelease` (`metadata` false) and `SetMetadata`.
    ///
    /// # Errors
    /// Its messages for an identifier outside `[0-9A-Za-z-]` or a numeric one with a leading 0.
    pub fn with_suffix(&self, text: &str, metadata: bool) -> Result<Version, String> {
        if !text.is_empty() && !text.split('.').all(ident_ok) {
            return Err(if metadata {
                "invalid metadata string".to_string()
            } else {
                "invalid prerelease string".to_string()
            });
        }
        if !metadata && text.split('.').any(leading_zero) {
            return Err("version segment starts with 0".to_string());
        }
        let mut next = self.clone();
        if metadata {
            next.metadata = text.to_string();
        } else {
            next.pre = text.to_string();
        }
        next.original = next.canonical();
        Ok(next)
    }

    /// Lenient parsing as `semver.NewVersion`: optional `v`, missing minor and patch are 0.
    pub fn parse(s: &str) -> Result<Version, String> {
        let bad = || format!("Invalid Semantic Version: {s}");
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let (t, metadata) = match t.split_once('+') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let (core, pre) = match t.split_once('-') {
            Some((a, b)) => (a, b.to_string()),
            None => (t, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(bad());
        }
        let mut nums = [0u64; 3];
        for (i, p) in parts.iter().enumerate() {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            nums[i] = p.parse().map_err(|_| bad())?;
        }
        Ok(Version {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            pre,
            metadata,
            original: s.to_string(),
        })
    }

    pub fn cmp(&self, o: &Version) -> Ordering {
        self.major
            .cmp(&o.major)
            .then(self.minor.cmp(&o.minor))
            .then(self.patch.cmp(&o.patch))
            .then_with(|| cmp_pre(&self.pre, &o.pre))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let ap: Vec<&str> = a.split('.').collect();
    let bp: Vec<&str> = b.split('.').collect();
    for (x, y) in ap.iter().zip(bp.iter()) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ap.len().cmp(&bp.len())
}

#[derive(Debug, Clone)]
struct Bound {
    op: String,
    // None = wildcard
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
    pre: String,
}

impl Bound {
    fn version(&self) -> Version {
        Version {
            major: self.major.unwrap_or(0),
            minor: self.minor.unwrap_or(0),
            patch: self.patch.unwrap_or(0),
            pre: self.pre.clone(),
            metadata: String::new(),
            original: String::new(),
        }
    }
}

fn parse_bound(op: &str, v: &str, orig: &str) -> Result<Bound, String> {
    let bad = || format!("improper constraint: {orig}");
    let v = v.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.split_once('+').map(|x| x.0).unwrap_or(v);
    let (core, pre) = match v.split_once('-') {
        Some((a, b)) => (a, b.to_string()),
        None => (v, String::new()),
    };
    let mut parts = [None, None, None];
    let ps: Vec<&str> = core.split('.').collect();
    if ps.len() > 3 || ps.is_empty() {
        return Err(bad());
    }
    for (i, p) in ps.iter().enumerate() {
        if matches!(*p, "x" | "X" | "*") {
            break;
        }
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        parts[i] = Some(p.parse::<u64>().map_err(|_| bad())?);
    }
    Ok(Bound {
        op: op.to_string(),
        major: parts[0],
        minor: parts[1],
        patch: parts[2],
        pre,
    })
}

/// A parsed constraint: OR of ANDs.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Bound>>,
}

impl Constraint {
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let mut groups = Vec::new();
        for g in s.split("||") {
            let mut bounds = Vec::new();
            // hyphen ranges
            let g = g.trim();
            if let Some((a, b)) = g.split_once(" - ") {
                bounds.push(parse_bound(">=", a, s)?);
                bounds.push(parse_bound("<=", b, s)?);
                groups.push(bounds);
                continue;
            }
            let tokens: Vec<String> = tokenize(g);
            for t in tokens {
                let ops = [">=", "=>", "<=", "=<", "!=", "~>", ">", "<", "=", "~", "^"];
                let mut op = "";
                for o in ops {
                    if t.starts_with(o) {
                        op = o;
                        break;
                    }
                }
                let rest = &t[op.len()..];
                let op = match op {
                    "=>" => ">=",
                    "=<" => "<=",
                    "~>" => "~",
                    o => o,
                };
                bounds.push(parse_bound(op, rest, s)?);
            }
            if bounds.is_empty() {
                return Err(format!("improper constraint: {s}"));
            }
            groups.push(bounds);
        }
        Ok(Constraint { groups })
    }

    pub fn check(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.iter().all(|b| check_bound(b, v)))
    }
}

fn tokenize(g: &str) -> Vec<String> {
    // split on commas and spaces, joining an operator separated from its version
    let mut out: Vec<String> = Vec::new();
    for piece in g.split([',', ' ']).filter(|p| !p.is_empty()) {
        if let Some(last) = out.last_mut() {
            if last.chars().all(|c| "<>=!~^".contains(c)) {
                last.push_str(piece);
                continue;
            }
        }
        out.push(piece.to_string());
    }
    out
}

fn check_bound(b: &Bound, v: &Version) -> bool {
    if !v.pre.is_empty() && b.pre.is_empty() {
        return false;
    }
    let c = b.version();
    let wild_minor = b.minor.is_none();
    let wild_patch = b.patch.is_none();
    match b.op.as_str() {
        "" | "=" => {
            if b.major.is_none() {
                return true;
            }
            if wild_minor {
                return v.major == c.major;
            }
            if wild_patch {
                return v.major == c.major && v.minor == c.minor;
            }
            v.cmp(&c) == Ordering::Equal
        }
        "!=" => {
            if wild_minor {
                return v.major != c.major;
            }
            if wild_patch {
                return !(v.major == c.major && v.minor == c.minor);
            }
            v.cmp(&c) != Ordering::Equal
        }
        ">" => {
            if wild_minor {
                return v.major > c.major;
            }
            if wild_patch {
                return v.major > c.major || (v.major == c.major && v.minor > c.minor);
            }
            v.cmp(&c) == Ordering::Greater
        }
        ">=" => v.cmp(&c) != Ordering::Less,
        "<" => v.cmp(&c) == Ordering::Less,
        "<=" => {
            if wild_minor {
                return v.major <= c.major;
            }
            if wild_patch {
                return v.major < c.major || (v.major == c.major && v.minor <= c.minor);
            }
            v.cmp(&c) != Ordering::Greater
        }
        "~" => {
            if v.cmp(&c) == Ordering::Less {
                return false;
            }
            if wild_minor {
                return v.major == c.major;
            }
            v.major == c.major && v.minor == c.minor
        }
        "^" => {
            if v.cmp(&c) == Ordering::Less {
                return false;
            }
            if c.major > 0 || wild_minor {
                return v.major == c.major;
            }
            if c.minor > 0 || wild_patch {
                return v.major == 0 && v.minor == c.minor;
            }
            v.major == 0 && v.minor == 0 && v.patch == c.patch
        }
        _ => false,
    }
}

/// `semverCompare constraint version`.
pub fn compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraint::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_version_constraints() {
        assert!(compare(">=1.21.0-0", "v1.30.0").unwrap());
        assert!(compare(">=1.19-0", "1.30.0").unwrap());
        assert!(!compare("<1.19", "1.30.0").unwrap());
        assert!(compare(">=1.16.0-0, <1.31", "v1.30.0").unwrap());
        assert!(!compare(">=1.30", "v1.30.0-rc.1").unwrap());
        assert!(compare("^1.2", "1.9.0").unwrap());
        assert!(compare("~1.2.3", "1.2.9").unwrap());
        assert!(!compare("~1.2.3", "1.3.0").unwrap());
        assert!(compare("1.x || >=3", "3.1.0").unwrap());
    }
}
