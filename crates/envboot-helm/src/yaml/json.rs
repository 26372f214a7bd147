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
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e21 => {
            if f.abs() < 9.2e18 {
                Value::Int(*f as i64)
            } else {
                Value::string(format!("{f:.0}"))
            }
        }
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
                                Value::string(base64::engine::general_purpose::STANDARD.encode(v)),
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
            Obj::Semver(s) => Value::str(&s.original),
            Obj::Bytes(b) => {
                use base64::Engine as _;
                Value::string(base64::engine::general_purpose::STANDARD.encode(b))
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

/// `json.Unmarshal` into `interface{}`: numbers are float64.
pub fn from_json(s: &str) -> Result<Value, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    Ok(from_serde(&v))
}

fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::list(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => {
            Value::map(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
        }
    }
}
