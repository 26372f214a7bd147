//! YAML as Helm reads and writes it: go-yaml v2's YAML 1.1 scalar resolution when reading
//! (`yes`/`on` are booleans, `0777` is octal) and go-yaml v2's emitter when writing (`toYaml`:
//! sorted keys, sequences not indented under keys, plain scalars folded at 80 columns).
//!
//! `read` parses YAML streams and resolves scalars, `write` is the emitter, `json` is Go's
//! `encoding/json` as Helm and Sprig use it (`toJson`, `fromJson`, and the JSON round trip
//! that `toYaml` and `fromYaml` make).

mod json;
mod read;
mod write;

pub use json::{from_json, from_unstructured, to_json};
pub use read::{go_parse_int, jsonify, parse, tabs_after_colons};
pub use write::to_yaml;

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
}
