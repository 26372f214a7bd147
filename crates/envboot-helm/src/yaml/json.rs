//! Go's `encoding/json` as Helm and Sprig use it: encoding (HTML-escaped, sorted keys) and
//! decoding into `interface{}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::value::{go_float, Obj, Value};

/// What the value is after `json.Marshal` and go-yaml reading the JSON back: objects with
/// methods become plain data, whole floats become ints.
pub(super) fn for_json(v: &Value) -> Value {
    crate::stack::deep(|| for_json_inner(v))
}

fn for_json_inner(v: &Value) -> Value {
    match v {
        Value::Float(f) => match whole_number(*f) {
            Some(Whole::Int(i)) => Value::Int(i),
            // go-yaml's uint64: the writer prints such a float's digits (see `whole_number`)
            _ => Value::Float(*f),
        },
        Value::List(l) => Value::list(l.iter().map(for_json).collect()),
        Value::Map(m) => Value::map(
            m.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), for_json(v)))
                .collect(),
        ),
        Value::Obj(o) => match &**o {
            Obj::Files(f) => {
                use base64::Engine;
                Value::map(
                    f.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                Value::string(
                                    base64::engine::general_purpose::STANDARD.encode(v.as_slice()),
                                ),
                            )
                        })
                        .collect(),
                )
            }
            Obj::ApiVersions(v) => Value::list(v.iter().map(|s| Value::str(s)).collect()),
            Obj::KubeVersion {
                version,
                major,
                minor,
            } => {
                let mut m = BTreeMap::new();
                m.insert("Version".into(), Value::str(version));
                m.insert("Major".into(), Value::str(major));
                m.insert("Minor".into(), Value::str(minor));
                Value::map(m)
            }
            // MarshalJSON writes the String form
            Obj::Semver(s) | Obj::SemverValue(s) => Value::string(s.canonical()),
            Obj::Bytes(b) => {
                use base64::Engine as _;
                Value::string(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
            }
        },
        v => v.clone(),
    }
}

/// Go's `encoding/json` encoding (HTML-escaped, keys sorted); `indent` for `toPrettyJson`.
pub fn to_json(v: &Value, indent: Option<&str>) -> String {
    let mut out = String::new();
    json_value(v, indent, 0, &mut out);
    out
}

fn json_value(v: &Value, indent: Option<&str>, depth: usize, out: &mut String) {
    crate::stack::deep(|| json_value_inner(v, indent, depth, out))
}

fn json_value_inner(v: &Value, indent: Option<&str>, depth: usize, out: &mut String) {
    let nl = |out: &mut String, d: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..d {
                out.push_str(ind);
            }
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::Str(s) => json_string(s, out),
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                json_value(x, indent, depth + 1, out);
            }
            nl(out, depth);
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                json_string(k, out);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                json_value(x, indent, depth + 1, out);
            }
            nl(out, depth);
            out.push('}');
        }
        Value::Obj(_) => json_value(&for_json(v), indent, depth, out),
    }
}

/// A whole float as go-yaml v2 reads back the digits Go's `encoding/json` writes for it
/// (`json.Marshal(9.223372036854775e18)` is `9223372036854775000`): an int64 where those digits
/// fit one, a uint64 where they fit only that; `None` for other floats (fractions, and from
/// 2^64 on, which JSON writes in digits that go-yaml reads as a float).
pub fn whole_number(f: f64) -> Option<Whole> {
    if f.fract() != 0.0 || f.abs() >= 1e21 || !f.is_finite() {
        return None;
    }
    let digits = json_float(f);
    match digits.parse::<i64>() {
        Ok(i) => Some(Whole::Int(i)),
        Err(_) => digits.parse::<u64>().ok().map(Whole::Uint),
    }
}

/// See [`whole_number`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    Int(i64),
    Uint(u64),
}

pub fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = go_float(f);
        // go_float already writes e-07 style; JSON trims to e-7
        return s.replace("e-0", "e-").replace("e+0", "e+");
    }
    format!("{f}")
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `encoding/json`: how deep arrays and objects may nest.
const MAX_JSON_DEPTH: usize = 10_000;

/// `json.Unmarshal` into `interface{}`: numbers are float64; nesting up to Go's 10,000 levels.
pub fn from_json(s: &str) -> Result<Value, String> {
    let depth = nesting(s.as_bytes());
    if let Some(c) = depth.too_deep {
        return Err(format!(
            "invalid character '{}' exceeded max depth",
            c as char
        ));
    }
    // serde_json's own limit (128) is lifted; the depth is bounded above, and the parse runs on a
    // stack segment sized for it
    let room = 1024 * 1024 + depth.max * 8 * 1024;
    // a syntax error in Go's words; what Go reads and serde_json does not, in serde's
    let refused = |e: serde_json::Error| {
        super::json_syntax::syntax_error(s.as_bytes()).unwrap_or_else(|| e.to_string())
    };
    stacker::grow(room, || {
        let mut de = serde_json::Deserializer::from_str(s);
        de.disable_recursion_limit();
        let v = serde::Deserialize::deserialize(&mut de).map_err(refused)?;
        de.end().map_err(refused)?;
        let out = from_serde(&v, false);
        drop_deep(v);
        Ok(out)
    })
}

/// An object as Kubernetes' unstructured JSON decoding gives it to Helm (`lookup`): integers are
/// int64, other numbers float64.
pub fn from_unstructured(v: &serde_json::Value) -> Value {
    from_serde(v, true)
}

struct Nesting {
    max: usize,
    too_deep: Option<u8>,
}

/// The deepest nesting of arrays and objects in JSON text (outside strings).
fn nesting(b: &[u8]) -> Nesting {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &c in b {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
                if depth > MAX_JSON_DEPTH {
                    return Nesting {
                        max,
                        too_deep: Some(c),
                    };
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Nesting {
        max,
        too_deep: None,
    }
}

/// Drops a deeply nested value without recursing (serde_json's drop recurses).
fn drop_deep(v: serde_json::Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn from_serde(v: &serde_json::Value, ints: bool) -> Value {
    crate::stack::deep(|| match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if ints => Value::Int(i),
            _ => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::list(a.iter().map(|v| from_serde(v, ints)).collect()),
        serde_json::Value::Object(o) => Value::map(
            o.iter()
                .map(|(k, v)| (k.clone(), from_serde(v, ints)))
                .collect(),
        ),
    })
}
