//! Diagnostics that point into the files of the environment repository (`file:line:column`).
//!
//! YAML is deserialized with `serde_yaml_ng`; every error and every later validation finding is
//! mapped back to a position through a [`PosIndex`], an index from a value's path
//! (`releases[0].chart`, the same syntax as `serde_path_to_error`) to where it is written.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One finding about the input, with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at a resource's origin (`file:line`, as [`crate::model::Resource::origin`]).
    pub fn at_origin(origin: &str, message: String) -> Diagnostic {
        let (file, line) = origin.rsplit_once(':').unwrap_or((origin, "1"));
        Diagnostic {
            file: file.to_string(),
            line: line.parse().unwrap_or(1),
            column: 1,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A list of diagnostics, displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
}

/// A parsed YAML file: an index from value paths to positions. A file Helm reads (a values
/// file, which may be tens of megabytes and is seldom wrong once it parses) keeps its text
/// instead, and builds the index only when a diagnostic first needs a position.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: String,
    index: std::sync::OnceLock<PathIndex>,
    text: Option<std::sync::Arc<str>>,
}

impl SourceFile {
    /// A diagnostic at the value `path` (falling back to its closest written parent).
    pub fn at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.position(path);
        Diagnostic {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Position (1-based line and column) of `path`, or of its closest ancestor that is written.
    pub fn position(&self, path: &str) -> (usize, usize) {
        let index = self.index.get_or_init(|| {
            self.text
                .as_deref()
                .and_then(|t| index(t, false, true).ok())
                .unwrap_or_default()
        });
        let mut p = path.to_string();
        loop {
            if let Some(pos) = index.get(&p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return index.get("").copied().unwrap_or((1, 1)),
            }
        }
    }

    fn indexed(path: &str, index: PathIndex) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            index: std::sync::OnceLock::from(index),
            text: None,
        }
    }
}

/// Joins a path and a map key (`a.b` + `c` = `a.b.c`).
pub fn key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a path and a sequence index (`a` + 2 = `a[2]`).
pub fn idx(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Parses `text` (the file `path`) into `T`, reporting any error at its `file:line:column`.
pub fn parse<T: DeserializeOwned>(path: &str, text: &str) -> Result<(T, SourceFile), Diagnostic> {
    parse_as(path, text, true)
}

/// [`parse`] for files Helm reads (values files, `Chart.yaml`), as Helm reads them: a duplicate
/// key keeps its last value and tags are ignored. Nesting is bounded all the same.
///
/// # Errors
/// As [`parse`].
pub fn parse_as_helm<T: DeserializeOwned>(
    path: &str,
    text: &str,
) -> Result<(T, SourceFile), Diagnostic> {
    parse_as(path, text, false)
}

fn parse_as<T: DeserializeOwned>(
    path: &str,
    text: &str,
    strict: bool,
) -> Result<(T, SourceFile), Diagnostic> {
    // files Helm reads are checked without recording positions (see `SourceFile`)
    let record = strict;
    let mut indexed = index(text, strict, record);
    // Helm's go-yaml reads `key:<TAB>value`, which yaml-rust2 refuses; so do files Helm reads
    let mended;
    let text = match &indexed {
        Err((_, _, m)) if !strict && m.starts_with("':' must be followed by") => {
            mended = envboot_helm::tabs_after_colons(text);
            indexed = index(&mended, strict, record);
            &*mended
        }
        _ => text,
    };
    let indexed = indexed.map_err(|(line, column, message)| Diagnostic {
        file: path.to_string(),
        line,
        column,
        message: format!("invalid YAML: {message}"),
    })?;
    let file = if record {
        SourceFile::indexed(path, indexed)
    } else {
        SourceFile {
            path: path.to_string(),
            index: std::sync::OnceLock::new(),
            text: Some(text.into()),
        }
    };
    if !strict {
        // the value as Helm reads it: go-yaml v2's scalars, nesting and alias limits
        let value =
            envboot_helm::manifest::to_json_at(text).map_err(|(line, message)| Diagnostic {
                file: path.to_string(),
                line: line.max(1),
                column: 1,
                message: format!("invalid YAML: {message}"),
            })?;
        return Ok((from_value(&file, "", value)?, file));
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match serde_path_to_error::deserialize(de) {
        Ok(value) => Ok((value, file)),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = clean_message(&inner.to_string());
            let diagnostic = match inner.location() {
                Some(loc) if loc.line() > 0 && !path_is_precise(&path) => Diagnostic {
                    file: file.path.clone(),
                    line: loc.line(),
                    column: loc.column() + 1,
                    message,
                },
                _ => locate(&file, if path == "." { "" } else { &path }, message),
            };
            Err(diagnostic)
        }
    }
}

/// Deserializes an already-parsed value of `file` found at `base`, reporting errors at their position.
pub fn from_value<T: DeserializeOwned>(
    file: &SourceFile,
    base: &str,
    value: serde_json::Value,
) -> Result<T, Diagnostic> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let sub = err.path().to_string();
        let full = match sub.as_str() {
            "." => base.to_string(),
            s if s.starts_with('[') => format!("{base}{s}"),
            s => key(base, s),
        };
        let message = clean_message(&err.into_inner().to_string());
        locate(file, &full, message)
    })
}

fn path_is_precise(path: &str) -> bool {
    path != "." && !path.is_empty() && !path.ends_with('?')
}

/// A diagnostic at `path`; for an unknown field, at that field's key.
fn locate(file: &SourceFile, path: &str, message: String) -> Diagnostic {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            return file.at(&key(path, &rest[..end]), message);
        }
    }
    file.at(path, message)
}

/// Drops serde_yaml's own `path: ` prefix and ` at line N column M` suffix, since the
/// diagnostic carries the position.
fn clean_message(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') && !path.is_empty() => rest.to_string(),
        _ => message.to_string(),
    }
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        /// Keys seen so far, with where.
        seen: HashMap<String, usize>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

/// The deepest nesting of maps and lists an envboot file may have (its formats need a handful;
/// the bound keeps a hostile file from exhausting the stack of the deserializer after this).
pub const MAX_NESTING: usize = 64;

/// The nesting files Helm reads may have: go-yaml v2's bound.
pub const MAX_HELM_NESTING: usize = 10_000;

struct Indexer {
    /// Duplicate keys and tags are errors (envboot's own files), or allowed as Helm allows them.
    strict: bool,
    /// Whether positions are recorded (or only problems found).
    record: bool,
    stack: Vec<Frame>,
    index: HashMap<String, (usize, usize)>,
    /// The first thing the file must not have: (line, column, message).
    problem: Option<(usize, usize, String)>,
}

/// Whether a tag is one of YAML's own (`!!str`, `!!int`, ...), which mean what they say.
fn standard_tag(tag: &Option<yaml_rust2::parser::Tag>) -> bool {
    tag.as_ref()
        .is_none_or(|t| t.handle == "tag:yaml.org,2002:" || t.handle == "!!")
}

impl Indexer {
    /// Records where the value at `path` is written (its first position).
    fn note(&mut self, path: String, at: (usize, usize)) {
        if self.record {
            self.index.entry(path).or_insert(at);
        }
    }

    /// The path of the value that starts now, or `None` when a map key is expected.
    fn value_path(&mut self, mark: Marker, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = idx(path, *next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map {
                path,
                key: slot,
                seen,
            }) => match slot.take() {
                Some(k) => Some(self::key(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    let full = self::key(path, &k);
                    let pos = (mark.line().max(1), mark.col() + 1);
                    if self.strict {
                        if let Some(first) = seen.insert(k.clone(), pos.0) {
                            if scalar.is_some() && self.problem.is_none() {
                                self.problem = Some((
                                    pos.0,
                                    pos.1,
                                    format!("duplicate key `{k}` (first at line {first})"),
                                ));
                            }
                        }
                    }
                    if self.record {
                        // A map is located at its first key.
                        self.index.entry(path.clone()).or_insert(pos);
                        self.index.entry(full).or_insert(pos);
                    }
                    *slot = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let tag = match &ev {
            Event::Scalar(_, _, _, tag)
            | Event::MappingStart(_, tag)
            | Event::SequenceStart(_, tag) => tag.clone(),
            _ => None,
        };
        if self.strict && !standard_tag(&tag) && self.problem.is_none() {
            let name = tag
                .map(|t| format!("{}{}", t.handle, t.suffix))
                .unwrap_or_default();
            self.problem = Some((
                mark.line().max(1),
                mark.col() + 1,
                format!("unsupported tag `{name}`: envboot files take no tags (nothing is included or converted)"),
            ));
        }
        let at = (mark.line().max(1), mark.col() + 1);
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.value_path(mark, Some(&value)) {
                    self.note(p, at);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.value_path(mark, None) {
                    self.note(p, at);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self.value_path(mark, None).unwrap_or_default();
                if !is_map {
                    self.note(path.clone(), at);
                }
                let limit = if self.strict {
                    MAX_NESTING
                } else {
                    MAX_HELM_NESTING
                };
                if self.stack.len() >= limit && self.problem.is_none() {
                    self.problem = Some((
                        mark.line().max(1),
                        mark.col() + 1,
                        format!("nested more than {limit} levels deep"),
                    ));
                }
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Builds the path index of the first document of `text`.
/// Value path to (line, column), both 1-based.
type PathIndex = HashMap<String, (usize, usize)>;

fn index(text: &str, strict: bool, record: bool) -> Result<PathIndex, (usize, usize, String)> {
    let mut indexer = Indexer {
        strict,
        record,
        stack: Vec::new(),
        index: HashMap::new(),
        problem: None,
    };
    let mut parser = Parser::new_from_str(text);
    // Events one by one, not `Parser::load`, which recurses once per nesting level.
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            (m.line().max(1), m.col() + 1, e.info().to_string())
        })?;
        if matches!(ev, Event::DocumentEnd | Event::StreamEnd) || indexer.problem.is_some() {
            break;
        }
        indexer.on_event(ev, mark);
    }
    match indexer.problem {
        Some(p) => Err(p),
        None => Ok(indexer.index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read only through Debug in these tests
    struct Doc {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        port: u16,
    }

    #[test]
    fn duplicate_keys_unknown_tags_and_deep_nesting_are_errors_at_their_place() {
        let dup = index("a: 1\nb:\n  c: 1\n  c: 2\n", true, true).unwrap_err();
        assert_eq!(
            dup,
            (4, 3, "duplicate key `c` (first at line 3)".to_string())
        );
        let tag = index("a: !include other.yaml\n", true, true).unwrap_err();
        assert_eq!((tag.0, tag.1), (1, 13));
        assert!(tag.2.contains("unsupported tag `!include`"), "{tag:?}");
        assert!(index("a: !!str 1\nb: [1, 1]\nc: {x: 1}\n", true, true).is_ok());
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            index(&deep, true, true).is_err(),
            "flow nesting is bounded by the parser"
        );
        let block = |levels: usize| -> String {
            (0..levels)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect()
        };
        let err = index(&block(70), true, true).unwrap_err();
        assert!(err.2.contains("nested more than 64 levels"), "{err:?}");
        assert!(index(&block(10_000), true, true).is_err());
        assert!(index(&block(60), true, true).is_ok());
        // Files Helm reads keep Helm's leniency: the last duplicate wins, tags are ignored.
        assert!(index("a: 1\na: 2\nb: !custom x\n", false, false).is_ok());
        // ...and go-yaml's bound on nesting, not envboot's own
        assert!(index(&block(70), false, false).is_ok());
        let err = index(&block(10_002), false, false).unwrap_err();
        assert!(err.2.contains("nested more than 10000 levels"), "{err:?}");
    }

    #[test]
    fn positions_of_nested_values_are_one_based() {
        let file = SourceFile::indexed(
            "f.yaml",
            index("name: a\nitems:\n  - port: 1\n  - port: 2\n", true, true).unwrap(),
        );
        assert_eq!(file.position("name"), (1, 1));
        assert_eq!(file.position("items[1].port"), (4, 5));
        assert_eq!(file.position("items[1].missing"), (4, 5));
    }

    #[test]
    fn wrong_type_is_reported_at_the_value() {
        let err =
            parse::<Doc>("f.yaml", "name: a\nitems:\n  - port: 1\n  - port: x\n").unwrap_err();
        assert_eq!((err.line, err.column), (4, 5), "{err}");
        assert!(
            !err.message.contains("items[1]"),
            "the path is not repeated: {err}"
        );
        assert!(err.message.contains("invalid type"), "{err}");
    }

    #[test]
    fn unknown_field_is_reported_at_its_key() {
        let err =
            parse::<Doc>("f.yaml", "name: a\nitems:\n  - port: 1\n    prot: 2\n").unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("unknown field `prot`"), "{err}");
    }

    #[test]
    fn malformed_yaml_is_reported_with_position() {
        let err = parse::<Doc>("f.yaml", "name: [a\nitems: []\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err}");
        assert!(err.line >= 1);
    }
}
