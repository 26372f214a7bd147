//! `${...}` references inside string values.

use serde_json::Value;

/// What a `${...}` expression names. Parsed once, here; every other module matches on this.
///
/// The form decides: three parts are a module output (`module.`), a secret key (`secret.`), or
/// the canonical attribute of an instantiated resource; two parts an input (`input.`) or an
/// attribute of a resource of the same module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref<'a> {
    /// `${module.INSTANCE.OUTPUT}` (environment files).
    ModuleOutput { instance: &'a str, output: &'a str },
    /// `${secret.NAME.KEY}`: a key of a decrypted secret, filled in at render.
    Secret { name: &'a str, key: &'a str },
    /// `${input.NAME}`: an input of the module being instantiated.
    Input { name: &'a str },
    /// `${RESOURCE.ATTRIBUTE}`: a resource of the same module (module files).
    Local {
        resource: &'a str,
        attribute: &'a str,
    },
    /// `${INSTANCE.RESOURCE.ATTRIBUTE}`: the canonical form after instantiation; `address` is
    /// `INSTANCE.RESOURCE`.
    Attribute {
        address: &'a str,
        attribute: &'a str,
    },
    /// Anything else (an empty part, too many or too few parts).
    Invalid,
}

impl<'a> Ref<'a> {
    pub fn parse(expr: &'a str) -> Ref<'a> {
        let parts: Vec<&str> = expr.split('.').collect();
        if parts.iter().any(|p| p.is_empty() || p.trim() != *p) {
            return Ref::Invalid;
        }
        match parts[..] {
            ["module", instance, output] => Ref::ModuleOutput { instance, output },
            ["secret", name, key] => Ref::Secret { name, key },
            [_, _, attribute] => Ref::Attribute {
                address: &expr[..expr.len() - attribute.len() - 1],
                attribute,
            },
            ["input", name] => Ref::Input { name },
            [resource, attribute] => Ref::Local {
                resource,
                attribute,
            },
            _ => Ref::Invalid,
        }
    }

    /// The canonical resource address a reference depends on (`INSTANCE.RESOURCE`).
    pub fn address(&self) -> Option<&'a str> {
        match self {
            Ref::Attribute { address, .. } => Some(address),
            _ => None,
        }
    }
}

/// The expressions (`a.b.c` for `${a.b.c}`) in `s`, in order.
pub fn expressions(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].trim());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// If `s` is exactly one `${expr}`, the expression.
pub fn whole(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains("${") && !inner.contains('}')).then_some(inner.trim())
}

/// Replaces every `${expr}` in `s` by `f(expr)`; `f` returning `None` keeps the reference.
pub fn substitute_str(s: &str, f: &mut impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = after[..end].trim();
        match f(expr) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Walks every string of `value`, replacing references. A string that is exactly one reference
/// is replaced by the value `f` gives (keeping its type); embedded references are stringified.
pub fn substitute(value: &mut Value, f: &mut impl FnMut(&str) -> Option<Value>) {
    match value {
        Value::String(s) => {
            if let Some(expr) = whole(s) {
                if let Some(v) = f(expr) {
                    *value = v;
                }
                return;
            }
            *s = substitute_str(s, &mut |e| f(e).map(|v| display(&v)));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| substitute(v, f)),
        _ => {}
    }
}

/// Calls `f` with the path and text of every string of `value`.
fn strings(value: &Value, path: &str, f: &mut impl FnMut(&str, &str)) {
    match value {
        Value::String(s) => f(path, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| strings(v, &crate::diag::idx(path, i), f)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| strings(v, &crate::diag::key(path, k), f)),
        _ => {}
    }
}

/// Every expression in every string of `value`, with the path of the string.
pub fn collect(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    strings(value, path, &mut |at, s| {
        out.extend(
            expressions(s)
                .into_iter()
                .map(|e| (at.to_string(), e.to_string())),
        );
    });
}

/// The first `${` of `s` that no `}` closes: the start of a reference cut short.
pub fn unterminated(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => rest = &after[end + 1..],
            None => return Some(&rest[start..]),
        }
    }
    None
}

/// Every string of `value` with a reference cut short: (path, the rest of the string from its
/// `${`), for the message.
pub fn unterminated_in(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    strings(value, path, &mut |at, s| {
        if let Some(cut) = unterminated(s) {
            out.push((at.to_string(), cut.chars().take(60).collect()));
        }
    });
}

/// The message for a reference cut short.
pub fn unterminated_message(cut: &str) -> String {
    format!(
        "`{cut}`: a reference `${{` without its closing `}}` (a literal `${{` is not allowed here)"
    )
}

/// Whether any string of `value` holds a reference.
pub fn any(value: &Value) -> bool {
    match value {
        Value::String(s) => !expressions(s).is_empty(),
        Value::Array(items) => items.iter().any(any),
        Value::Object(map) => map.values().any(any),
        _ => false,
    }
}

/// A value as it reads inside a string.
pub fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_parsed_by_form() {
        assert_eq!(
            Ref::parse("module.net.vpc_id"),
            Ref::ModuleOutput {
                instance: "net",
                output: "vpc_id"
            }
        );
        assert_eq!(
            Ref::parse("secret.db.password"),
            Ref::Secret {
                name: "db",
                key: "password"
            }
        );
        assert_eq!(Ref::parse("input.cidr"), Ref::Input { name: "cidr" });
        assert_eq!(
            Ref::parse("vpc.id"),
            Ref::Local {
                resource: "vpc",
                attribute: "id"
            }
        );
        let canonical = Ref::parse("net.vpc.id");
        assert_eq!(
            canonical,
            Ref::Attribute {
                address: "net.vpc",
                attribute: "id"
            }
        );
        assert_eq!(canonical.address(), Some("net.vpc"));
        for bad in ["", "a", "a..b", "a.b.c.d", ".a", "a.b.", "a. b"] {
            assert_eq!(Ref::parse(bad), Ref::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn whole_reference_keeps_the_type() {
        let mut v = json!({"port": "${input.port}", "name": "web-${input.port}"});
        substitute(&mut v, &mut |e| (e == "input.port").then(|| json!(8080)));
        assert_eq!(v, json!({"port": 8080, "name": "web-8080"}));
    }

    #[test]
    fn unresolved_references_are_kept() {
        let mut v = json!("a-${x.y}-${input.z}");
        substitute(&mut v, &mut |e| (e == "input.z").then(|| json!("z")));
        assert_eq!(v, json!("a-${x.y}-z"));
    }

    #[test]
    fn a_reference_cut_short_is_found_after_complete_ones() {
        assert_eq!(unterminated("${a.b} and ${c.d"), Some("${c.d"));
        assert_eq!(unterminated("${a.b}"), None);
        assert_eq!(unterminated("no reference"), None);
        let mut out = Vec::new();
        unterminated_in(
            &json!({"x": ["ok", "${module.net.vpc_id"]}),
            "inputs",
            &mut out,
        );
        assert_eq!(
            out,
            [("inputs.x[1]".to_string(), "${module.net.vpc_id".to_string())]
        );
    }

    #[test]
    fn expressions_are_listed_in_order() {
        assert_eq!(expressions("${a.b} and ${ c.d }"), vec!["a.b", "c.d"]);
        assert_eq!(whole("${a.b}"), Some("a.b"));
        assert_eq!(whole("x${a.b}"), None);
    }
}
