//! Manifests as Kubernetes clients read and write them.
//!
//! `helm install` and `kubectl apply -f` read each YAML document with sigs.k8s.io/yaml's
//! `YAMLToJSON`: go-yaml v2 resolves the scalars (YAML 1.1: `yes` and `on` are booleans, `0o17`
//! is a string, `017` octal), keys become strings, and the result is JSON. [`to_json`] reads a
//! document that way, so that what envboot applies is what Helm would send. [`to_yaml`] writes
//! an object back with go-yaml v2's emitter, which quotes every string that go-yaml would read as
//! something else, so that `kubectl apply -f` of envboot's output reads what envboot applies.

use crate::value::Value;
use crate::yaml;

/// A YAML document as `YAMLToJSON` converts it (null for an empty document).
///
/// # Errors
/// The document is not YAML, or holds a number JSON cannot (NaN, infinity), in Go's words.
pub fn to_json(doc: &str) -> Result<serde_json::Value, String> {
    to_json_at(doc).map_err(|(_, m)| m)
}

/// [`to_json`], with the line of the error (0 when go-yaml names none).
///
/// # Errors
/// As [`to_json`].
pub fn to_json_at(doc: &str) -> Result<serde_json::Value, (usize, String)> {
    let v =
        yaml::parse(doc).map_err(|e| (e.line, format!("error converting YAML to JSON: {e}")))?;
    crate::stack::deep(|| json_of(&v)).map_err(|m| (0, m))
}

fn json_of(v: &Value) -> Result<serde_json::Value, String> {
    Ok(match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        // Go's JSON writes a whole float in digits, which the API server reads as an integer
        Value::Float(f) => match crate::yaml::whole_number(*f) {
            Some(crate::yaml::Whole::Int(i)) => serde_json::Value::from(i),
            Some(crate::yaml::Whole::Uint(u)) => serde_json::Value::from(u),
            None => match serde_json::Number::from_f64(*f) {
                Some(n) => serde_json::Value::Number(n),
                None => {
                    return Err(format!(
                        "error converting YAML to JSON: json: unsupported value: {}",
                        crate::value::go_float(*f)
                    ))
                }
            },
        },
        Value::Str(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => {
            let mut out = Vec::with_capacity(l.len());
            for x in l.iter() {
                out.push(crate::stack::deep(|| json_of(x))?);
            }
            serde_json::Value::Array(out)
        }
        Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m.borrow().iter() {
                out.insert(k.clone(), crate::stack::deep(|| json_of(x))?);
            }
            serde_json::Value::Object(out)
        }
        Value::Obj(_) => serde_json::Value::Null,
    })
}

/// `object` in go-yaml v2's block style (sorted keys), as `toYaml` writes it.
pub fn to_yaml(object: &serde_json::Value) -> String {
    yaml::to_yaml(&crate::stack::deep(|| value_of(object)))
}

fn value_of(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::list(
            a.iter()
                .map(|x| crate::stack::deep(|| value_of(x)))
                .collect(),
        ),
        serde_json::Value::Object(o) => Value::map(
            o.iter()
                .map(|(k, x)| (k.clone(), crate::stack::deep(|| value_of(x))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_read_as_kubernetes_clients_read_them() {
        // Go's ParseInt with base 0 reads 0o17 and 0x1F too
        let v =
            to_json("ON: yes\nb: on\nc: \"on\"\nd: 0o17\ne: 017\nf: 1.5\ng: ~\nh: 0x1F\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"true": true, "b": true, "c": "on", "d": 15, "e": 15,
                               "f": 1.5, "g": null, "h": 31})
        );
        assert_eq!(to_json("").unwrap(), serde_json::Value::Null);
        assert!(to_json("a: .nan")
            .unwrap_err()
            .contains("unsupported value: NaN"));
    }

    #[test]
    fn strings_go_yaml_would_misread_are_quoted() {
        let out = to_yaml(
            &serde_json::json!({"a": "yes", "b": "on", "c": "015", "d": "1e3",
                                               "e": "plain", "n": 3, "t": true, "z": "~"}),
        );
        assert_eq!(
            out,
            "a: \"yes\"\nb: \"on\"\nc: \"015\"\nd: \"1e3\"\ne: plain\n\"n\": 3\nt: true\nz: \"~\"\n"
        );
        // and they read back as the same object
        let back = to_json(&out).unwrap();
        assert_eq!(back["a"], "yes");
        assert_eq!(back["z"], "~");
    }
}
