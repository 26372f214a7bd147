//! YAML as Helm reads and writes it: go-yaml v2's YAML 1.1 scalar resolution when reading
//! (`yes`/`on` are booleans, `0777` is octal) and go-yaml v2's emitter when writing (`toYaml`:
//! sorted keys, sequences not indented under keys, plain scalars folded at 80 columns).
//!
//! `read` parses YAML streams and resolves scalars, `write` is the emitter, `json` is Go's
//! `encoding/json` as Helm and Sprig use it (`toJson`, `fromJson`, and the JSON round trip
//! that `toYaml` and `fromYaml` make).

mod json;
mod json_syntax;
mod read;
mod write;

pub use json::{from_json, from_unstructured, to_json, whole_number, Whole};
pub use read::{go_parse_int, jsonify, parse, tabs_after_colons};
pub use write::to_yaml;

use crate::value::Value;

/// Why a values file cannot be read: Helm's words, and the line of the file (1-based; 0 where
/// Helm names none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesError {
    pub line: usize,
    pub message: String,
    /// The file is YAML, but a document of it is not a map (nor empty).
    pub not_a_map: bool,
}

/// The JSON type Go's `encoding/json` names for a value it cannot put where a map must go.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "array",
        Value::Str(_) => "string",
        Value::Bool(_) => "bool",
        Value::Map(_) => "object",
        _ => "number",
    }
}

/// A values file (a chart's `values.yaml`, or one given with `-f`) as Helm 4's
/// `loader.LoadValues` reads it: the text is split into documents at lines that begin with
/// `---` (apimachinery's YAMLReader: only blanks or a comment may follow on that line), each
/// document is read as sigs.k8s.io/yaml's `Unmarshal` reads it into a map (go-yaml v2, the first
/// document only, numbers as float64), and the documents are merged in order (`MergeMaps`).
///
/// # Errors
/// Helm's message and the line in the file where it knows one.
pub fn load_values(text: &str) -> Result<Value, ValuesError> {
    let mut values = Value::empty_map();
    // the document being gathered, and the index (0-based) of its first line
    let mut doc = String::new();
    let mut start = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if let Some(rest) = line.strip_prefix("---") {
            let trimmed = rest.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                return Err(ValuesError {
                    not_a_map: false,
                    line: i + 1,
                    message: format!(
                        "error reading yaml document: invalid Yaml document separator: {trimmed}"
                    ),
                });
            }
            if !doc.is_empty() {
                merge_document(&mut values, &doc, start)?;
                doc.clear();
                continue;
            }
            // a separator before any text stays in the document it opens
        }
        if doc.is_empty() {
            start = i;
        }
        doc.push_str(line);
    }
    if !doc.is_empty() {
        merge_document(&mut values, &doc, start)?;
    }
    Ok(values)
}

fn merge_document(values: &mut Value, doc: &str, start: usize) -> Result<(), ValuesError> {
    let current = load_document(doc).map_err(|e| ValuesError {
        not_a_map: e.not_a_map,
        line: if e.line == 0 { 0 } else { start + e.line },
        message: format!("cannot unmarshal yaml document: {}", e.message),
    })?;
    let first = matches!(values, Value::Map(m) if m.borrow().is_empty());
    *values = if first {
        current
    } else {
        crate::coalesce::merge_maps(values, &current)
    };
    Ok(())
}

/// One document of a values file, as sigs.k8s.io/yaml's `Unmarshal` reads it into a map.
fn load_document(doc: &str) -> Result<Value, ValuesError> {
    let v = parse(doc).map_err(|e| ValuesError {
        not_a_map: false,
        line: e.line,
        message: format!("error converting YAML to JSON: {e}"),
    })?;
    match jsonify(v) {
        Value::Nil => Ok(Value::empty_map()),
        v @ Value::Map(_) => Ok(v),
        other => Err(ValuesError {
            not_a_map: true,
            line: 0,
            message: format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::read::resolve;
    use super::*;
    use crate::value::Value;

    fn y(text: &str) -> String {
        to_yaml(&jsonify(parse(text).unwrap()))
    }

    #[test]
    fn yaml_11_scalars_resolve_like_go_yaml_v2() {
        assert!(matches!(resolve("yes"), Value::Bool(true)));
        assert!(matches!(resolve("off"), Value::Bool(false)));
        assert!(matches!(resolve("0777"), Value::Int(511)));
        assert!(matches!(resolve("0x1F"), Value::Int(31)));
        assert!(matches!(resolve("08"), Value::Float(f) if f == 8.0));
        assert!(matches!(resolve("1e3"), Value::Float(f) if f == 1000.0));
        assert!(matches!(resolve("2001-12-14"), Value::Str(_)));
        assert!(matches!(resolve("1.2.3"), Value::Str(_)));
    }

    #[test]
    fn to_yaml_sorts_keys_and_quotes_like_go_yaml_v2() {
        assert_eq!(
            y("{b: 2, a: 1, a1: x, a-b: c, a_b: z, A: q, a10: r, a2: s}"),
            "A: q\na: 1\na-b: c\na_b: z\na1: x\na2: s\na10: r\nb: 2\n"
        );
        assert_eq!(
            y("a: 'true'\nb: ''\nc: '2001-12-14'\nd: '1.5'"),
            "a: \"true\"\nb: \"\"\nc: \"2001-12-14\"\nd: \"1.5\"\n"
        );
        assert_eq!(
            y("a: ' x'\nb: 'a: b'\nc: '*x'"),
            "a: ' x'\nb: 'a: b'\nc: '*x'\n"
        );
        assert_eq!(y("a: [x, z]\nb: {}\nc: []"), "a:\n- x\n- z\nb: {}\nc: []\n");
        assert_eq!(y("- a: 1\n  b: [1]"), "- a: 1\n  b:\n  - 1\n");
        assert_eq!(y("a: 1000000\nb: 1.5"), "a: 1000000\nb: 1.5\n");
    }

    #[test]
    fn to_yaml_writes_multiline_strings_as_literals() {
        assert_eq!(y("a: \"x\\ny\\n\""), "a: |\n  x\n  y\n");
        assert_eq!(y("a: \"x\\ny\""), "a: |-\n  x\n  y\n");
        assert_eq!(y("a: \"x\\n\\n\""), "a: |+\n  x\n\n");
        assert_eq!(y("a: \"x \\ny\""), "a: \"x \\ny\"\n");
    }

    #[test]
    fn to_yaml_folds_long_plain_strings_at_80_columns() {
        let long = "aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp qqqq rrrr";
        assert_eq!(
            y(&format!("long: {long}")),
            "long: aaaa bbbb cccc dddd eeee ffff gggg hhhh iiii jjjj kkkk llll mmmm nnnn oooo pppp\n  qqqq rrrr\n"
        );
    }

    #[test]
    fn json_is_go_encoding_json() {
        let v = jsonify(parse("a: <b>\nm: 1000000\nf: 1.5").unwrap());
        assert_eq!(
            to_json(&v, None),
            r#"{"a":"\u003cb\u003e","f":1.5,"m":1000000}"#
        );
    }

    fn values(text: &str) -> Result<String, ValuesError> {
        load_values(text).map(|v| to_yaml(&v))
    }

    #[test]
    fn values_files_are_read_as_helm_4_reads_them() {
        // documents split at `---` lines, merged in order (maps deeply, the rest replaced)
        assert_eq!(
            values("---\nb: 2\n---\nb: 3\nd: {x: 1}\n--- # more\nd: {z: 2}\n").unwrap(),
            "b: 3\nd:\n  x: 1\n  z: 2\n"
        );
        // a document ends at `...`; what follows it up to the next `---` is not read
        assert_eq!(values("b: 2\n...\nc: 3\n").unwrap(), "b: 2\n");
        assert_eq!(values("").unwrap(), "{}\n");
        assert_eq!(values("---\n---\n# only a comment\n").unwrap(), "{}\n");
        // only blanks or a comment may follow a separator
        for (text, after) in [
            ("b: 2\n---x\n", "x"),
            ("b: 2\n----\n", "-"),
            ("--- {c: 1}\n", "{c: 1}"),
        ] {
            let e = values(text).unwrap_err();
            assert_eq!(
                e.message,
                format!("error reading yaml document: invalid Yaml document separator: {after}")
            );
        }
        assert_eq!(values("b: 2\n---x\n").unwrap_err().line, 2);
        // each document must be a map; JSON names what it is instead
        for (text, kind) in [
            ("b: 2\n---\n- 1\n", "array"),
            ("x\n", "string"),
            ("true\n", "bool"),
            ("3\n", "number"),
        ] {
            let e = values(text).unwrap_err();
            assert!(e.not_a_map, "{text}");
            assert_eq!(e.message, format!("cannot unmarshal yaml document: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"));
        }
        // go-yaml counts lines within the document; the error's line is the file's
        let e = values("b: 2\n---\n\n---\nc: [\n").unwrap_err();
        assert_eq!(e.message, "cannot unmarshal yaml document: error converting YAML to JSON: yaml: line 1: did not find expected node content");
        assert_eq!(e.line, 5);
        let e = values("b: 2\nc: *x\n").unwrap_err();
        assert_eq!(e.message, "cannot unmarshal yaml document: error converting YAML to JSON: yaml: unknown anchor 'x' referenced");
    }

    #[test]
    fn whole_floats_come_back_from_json_as_go_yaml_reads_its_digits() {
        // helm's `toYaml` of float64 values: int64 where JSON's digits fit, uint64 where only
        // they do, a float from 2^64 on
        let v = jsonify(
            parse("a: 9.2e18\nb: 9.223372036854775e18\nc: 1e19\ne: 1.8446744073709552e19\nf: 2e19\ng: 1e20\ni: -1e19\nj: 3.0\nk: -0.0\nl: 1e-7\nm: 123456789012345678\no: 9223372036854775807")
                .unwrap(),
        );
        assert_eq!(
            to_yaml(&v),
            "a: 9200000000000000000\nb: 9223372036854775000\nc: 10000000000000000000\ne: 1.8446744073709552e+19\nf: 2e+19\ng: 1e+20\ni: -1e+19\nj: 3\nk: 0\nl: 1e-07\nm: 123456789012345680\no: 9223372036854776000\n"
        );
        assert_eq!(
            whole_number(9.223372036854775e18),
            Some(Whole::Int(9223372036854775000))
        );
        assert_eq!(
            whole_number(1e19),
            Some(Whole::Uint(10_000_000_000_000_000_000))
        );
        assert_eq!(whole_number(2e19), None);
        assert_eq!(whole_number(0.5), None);
    }
}
