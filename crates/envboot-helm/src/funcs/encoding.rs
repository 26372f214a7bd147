//! Encodings and conversions: YAML, JSON and TOML (`toYaml`, `fromJson`, ...) as Helm and Sprig
//! define them, base64 and base32.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{Args, Registry};
use crate::exec::FnResult;
use crate::value::{go_quote, to_v, Value};
use crate::yaml;

pub(super) fn register(r: &mut Registry) {
    r.pure("toYaml", to_yaml);
    r.pure("mustToYaml", to_yaml);
    r.pure("toYamlPretty", to_yaml);
    r.pure("fromYaml", from_yaml);
    r.pure("fromYamlArray", from_yaml_array);
    r.pure("toJson", to_json);
    r.pure("mustToJson", to_json);
    r.pure("toPrettyJson", to_pretty_json);
    r.pure("mustToPrettyJson", to_pretty_json);
    r.pure("toRawJson", to_raw_json);
    r.pure("mustToRawJson", to_raw_json);
    r.pure("fromJson", from_json);
    r.pure("mustFromJson", must_from_json);
    r.pure("fromJsonArray", from_json_array);
    r.pure("toToml", to_toml);
    r.pure("b64enc", b64enc);
    r.pure("b64dec", b64dec);
    r.pure("b32enc", b32enc);
    r.pure("b32dec", b32dec);
}

fn to_yaml(a: Args) -> FnResult {
    a.want(1)?;
    // sigs.k8s.io/yaml goes through JSON: what JSON refuses, toYaml gives as ""
    if let Some(e) = json_refusal(&a) {
        return if a.name == "mustToYaml" {
            Err(super::call_err(format!("error marshaling into JSON: {e}")))
        } else {
            Ok(Value::str(""))
        };
    }
    let y = yaml::to_yaml(&a.v(0));
    Ok(Value::string(
        y.strip_suffix('\n').unwrap_or(&y).to_string(),
    ))
}

fn from_yaml(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    Ok(match yaml::parse(&s) {
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
    })
}

fn from_yaml_array(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    Ok(match yaml::parse(&s) {
        Ok(Value::List(l)) => yaml::jsonify(Value::List(l)),
        Ok(Value::Nil) => Value::list(Vec::new()),
        Ok(v) => Value::list(vec![Value::string(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&v)
        ))]),
        Err(e) => Value::list(vec![Value::string(format!("error converting YAML to JSON: {e}"))]),
    })
}

/// The float JSON cannot hold (`json: unsupported value: +Inf`), if `v` has one.
fn unsupported_float(v: &Value) -> Option<f64> {
    crate::stack::deep(|| match v {
        Value::Float(f) if !f.is_finite() => Some(*f),
        Value::List(l) => l.iter().find_map(unsupported_float),
        Value::Map(m) => m.borrow().values().find_map(unsupported_float),
        _ => None,
    })
}

/// What `json.Marshal` refuses: Sprig's `toJson` gives "" for it, the `must` forms (and
/// `toRawJson`, which panics) its error.
fn json_refusal(a: &Args) -> Option<String> {
    unsupported_float(&a.v(0))
        .map(|f| format!("json: unsupported value: {}", crate::value::go_float(f)))
}

fn to_json(a: Args) -> FnResult {
    a.want(1)?;
    if let Some(e) = json_refusal(&a) {
        return if a.name.starts_with("must") {
            Err(super::call_err(e))
        } else {
            Ok(Value::str(""))
        };
    }
    Ok(Value::string(yaml::to_json(&a.v(0), None)))
}

fn to_pretty_json(a: Args) -> FnResult {
    a.want(1)?;
    if let Some(e) = json_refusal(&a) {
        return if a.name.starts_with("must") {
            Err(super::call_err(e))
        } else {
            Ok(Value::str(""))
        };
    }
    Ok(Value::string(yaml::to_json(&a.v(0), Some("  "))))
}

fn to_raw_json(a: Args) -> FnResult {
    a.want(1)?;
    if let Some(e) = json_refusal(&a) {
        return Err(super::call_err(e));
    }
    Ok(Value::string(
        yaml::to_json(&a.v(0), None)
            .replace("\\u003c", "<")
            .replace("\\u003e", ">")
            .replace("\\u0026", "&"),
    ))
}

/// `json.Unmarshal` of `s` into a Go value of type `target` (`map[string]interface {}` or
/// `[]interface {}`): the value (nil for JSON's null), or Go's error.
fn unmarshal_into(s: &str, target: &str) -> Result<Value, String> {
    let v = yaml::from_json(s)?;
    let fits = matches!(
        (&v, target),
        (Value::Nil, _)
            | (Value::Map(_), "map[string]interface {}")
            | (Value::List(_), "[]interface {}")
    );
    if fits {
        return Ok(v);
    }
    let kind = yaml::json_kind(&v);
    Err(format!(
        "json: cannot unmarshal {kind} into Go value of type {target}"
    ))
}

/// Sprig's `fromJson`: an error is the map's `Error`; JSON's null a nil map.
fn from_json(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    Ok(match unmarshal_into(&s, "map[string]interface {}") {
        Ok(v) => v,
        Err(e) => {
            let mut m = BTreeMap::new();
            m.insert("Error".to_string(), Value::string(e));
            Value::map(m)
        }
    })
}

fn must_from_json(a: Args) -> FnResult {
    a.want(1)?;
    unmarshal_into(&a.s(0)?, "map[string]interface {}").map_err(super::call_err)
}

/// Sprig's `fromJsonArray`: an error is the list's one item.
fn from_json_array(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    Ok(match unmarshal_into(&s, "[]interface {}") {
        Ok(v) => v,
        Err(e) => Value::list(vec![Value::string(e)]),
    })
}

fn to_toml(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(toml_string(&a.v(0))))
}

fn b64enc(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(b64().encode(a.s(0)?.as_bytes())))
}

/// Sprig's `b64dec`: Go's error is the result.
fn b64dec(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(match go_b64_decode(a.s(0)?.as_bytes()) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(at) => format!("illegal base64 data at input byte {at}"),
    }))
}

/// Go's `base64.StdEncoding.DecodeString`: quanta of four, `\r` and `\n` skipped, padding as
/// Go checks it; the error is the offset Go reports.
fn go_b64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let decode = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut dbuf = [0u32; 4];
        let mut dlen = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // padding is required
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(d) = decode(c) {
                dbuf[j] = d;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(si - 1);
            }
            // padding
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    while si < src.len() && matches!(src[si], b'\n' | b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && matches!(src[si], b'\n' | b'\r') {
                si += 1;
            }
            if si < src.len() {
                return Err(si);
            }
            dlen = j;
            break;
        }
        let n = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3];
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if dlen < 4 {
            return Ok(out);
        }
    }
    Ok(out)
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Go's `base32.StdEncoding.EncodeToString`.
fn b32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((n >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base32.StdEncoding.DecodeString` (newlines are ignored); the error as Go prints it.
fn b32_decode(s: &str) -> Result<Vec<u8>, String> {
    let src: Vec<(usize, u8)> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\n' && *b != b'\r')
        .collect();
    let illegal = |i: usize| format!("illegal base32 data at input byte {i}");
    if !src.len().is_multiple_of(8) {
        let at = src.len() - src.len() % 8;
        return Err(illegal(src.get(at).map(|x| x.0).unwrap_or(s.len())));
    }
    let mut out = Vec::new();
    for (q, quantum) in src.chunks(8).enumerate() {
        let last = (q + 1) * 8 == src.len();
        let pad = quantum.iter().rev().take_while(|(_, b)| *b == b'=').count();
        let data_len = 8 - pad;
        if pad > 0 && (!last || !matches!(data_len, 2 | 4 | 5 | 7)) {
            return Err(illegal(quantum[data_len.min(7)].0));
        }
        let mut n: u64 = 0;
        for (k, (i, b)) in quantum.iter().enumerate() {
            let v = if k < data_len {
                match B32.iter().position(|c| c == b) {
                    Some(v) => v as u64,
                    None => return Err(illegal(*i)),
                }
            } else {
                0
            };
            n = (n << 5) | v;
        }
        let bytes = n.to_be_bytes();
        let keep = match data_len {
            2 => 1,
            4 => 2,
            5 => 3,
            7 => 4,
            _ => 5,
        };
        out.extend_from_slice(&bytes[3..3 + keep]);
    }
    Ok(out)
}

fn b32enc(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(b32_encode(a.s(0)?.as_bytes())))
}

fn b32dec(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(match b32_decode(&a.s(0)?) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => e,
    }))
}

pub(super) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn toml_string(v: &Value) -> String {
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
                crate::stack::deep(|| table(&sub.borrow(), &name, out));
            }
        }
    }
    let mut out = String::new();
    if let Value::Map(m) = v {
        table(&m.borrow(), "", &mut out);
    }
    out
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
