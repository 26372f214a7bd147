//! `${...}` references inside string values.

use serde_json::Value;

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

/// Every expression in every string of `value`, with the path of the string.
pub fn collect(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.extend(
            expressions(s)
                .into_iter()
                .map(|e| (path.to_string(), e.to_string())),
        ),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect(v, &crate::diag::idx(path, i), out)),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| collect(v, &crate::diag::key(path, k), out)),
        _ => {}
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
    fn expressions_are_listed_in_order() {
        assert_eq!(expressions("${a.b} and ${ c.d }"), vec!["a.b", "c.d"]);
        assert_eq!(whole("${a.b}"), Some("a.b"));
        assert_eq!(whole("x${a.b}"), None);
    }
}
