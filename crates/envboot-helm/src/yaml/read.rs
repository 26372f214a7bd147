//! Reading: YAML streams into values, with go-yaml v2's resolution of plain scalars.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::value::{go_float, Value};

#[derive(Debug, Clone)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            // go-yaml names no line for errors of the whole document (excessive aliasing)
            write!(f, "yaml: {}", self.message)
        } else {
            write!(f, "yaml: line {}: {}", self.line, self.message)
        }
    }
}

/// go-yaml v2's bound on nesting (`max_indents`, `max_flow_level`).
const MAX_DEPTH: usize = 10_000;

/// go-yaml v2's share of a document's decoding that may come from expanding aliases: 99% up to
/// 400,000 decoded nodes, falling to 10% at 4,000,000 (its defence against "billion laughs").
fn allowed_alias_ratio(decodes: usize) -> f64 {
    const LOW: usize = 400_000;
    const HIGH: usize = 4_000_000;
    if decodes <= LOW {
        0.99
    } else if decodes >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decodes - LOW) as f64 / (HIGH - LOW) as f64)
    }
}

/// yaml-rust2's complaint about a tab right after a mapping's `:`.
const TAB_AFTER_COLON: &str = "':' must be followed by a valid YAML whitespace";

/// Every event of a YAML stream, read in a loop (the parser's own loader recurses once per
/// level).
fn events(text: &str) -> Result<Vec<(Event, Marker)>, yaml_rust2::ScanError> {
    let mut events = Vec::new();
    let mut parser = Parser::new_from_str(text);
    loop {
        let (ev, mark) = parser.next_token()?;
        if ev == Event::StreamEnd {
            return Ok(events);
        }
        events.push((ev, mark));
    }
}

/// `text` as go-yaml v2 reads it, for yaml-rust2: go-yaml takes a tab after a mapping's `:` as
/// the blank that must follow it (`key:<TAB>value`), yaml-rust2 refuses it. Each such tab, where
/// the scanner itself stops at it (never one inside a scalar), becomes a space; positions do not
/// move. Text without one is returned as it is, after one scan.
pub fn tabs_after_colons(text: &str) -> std::borrow::Cow<'_, str> {
    let mut fixed: Option<Vec<char>> = None;
    // each pass mends one; a file with more than this many is refused as yaml-rust2 refuses it
    for _ in 0..10_000 {
        let current: String = match &fixed {
            Some(chars) => chars.iter().collect(),
            None => text.to_string(),
        };
        let err = match events(&current) {
            Ok(_) => break,
            Err(e) if e.info() == TAB_AFTER_COLON => e,
            Err(_) => break,
        };
        let chars = fixed.get_or_insert_with(|| text.chars().collect());
        let mut i = err.marker().index().min(chars.len());
        let mut mended = false;
        while i > 0 && matches!(chars[i - 1], '\t' | ' ') {
            if chars[i - 1] == '\t' {
                chars[i - 1] = ' ';
                mended = true;
            }
            i -= 1;
        }
        if !mended {
            break;
        }
    }
    match fixed {
        Some(chars) => std::borrow::Cow::Owned(chars.into_iter().collect()),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// Parse the documents of a YAML stream (numbers keep int vs float; see [`jsonify`]).
fn parse_docs(text: &str, first_only: bool) -> Result<Vec<Value>, YamlError> {
    match build(text, first_only) {
        Err(Failure::Scan(e)) if e.info() == TAB_AFTER_COLON => {
            let mended = tabs_after_colons(text);
            build(&mended, first_only).map_err(|f| f.into_error(&mended))
        }
        r => r.map_err(|f| f.into_error(text)),
    }
}

/// Why a build stopped: the scanner's error (which a caller may mend and retry), or go-yaml's.
enum Failure {
    Scan(yaml_rust2::ScanError),
    Yaml(YamlError),
}

impl Failure {
    fn into_error(self, text: &str) -> YamlError {
        match self {
            Failure::Scan(e) => go_yaml_error(&e, text),
            Failure::Yaml(e) => e,
        }
    }
}

/// yaml-rust2's error `e` in `text` as go-yaml v2 words it: the problem without its context
/// ("while parsing a block mapping, ..."), and go-yaml's line: a parser error names the line
/// its problem's 0-based mark is on, a scanner error the 1-based one, and neither names line
/// 0 (the first line of the document has no line in go-yaml's message).
fn go_yaml_error(e: &yaml_rust2::ScanError, text: &str) -> YamlError {
    let info = e.info();
    let problem = match info.split_once(", ") {
        Some((context, problem)) if context.starts_with("while ") => problem,
        _ => info,
    };
    // the line (1-based) yaml-rust2 marks, and what follows the mark
    let marked = e.marker().line();
    let after = || text.chars().skip(e.marker().index());
    let line_of = |chars: usize| text.chars().take(chars).filter(|c| *c == '\n').count();
    // go-yaml's line for a scanner error: its 1-based line, none on the first
    let scanner = |line: usize| if line > 1 { line } else { 0 };
    let (message, line) = match problem {
        "did not find expected node content"
        | "did not find expected ',' or '}'"
        | "did not find expected '-' indicator"
        | "did not find expected key"
        | "did not find expected <document start>" => (problem.to_string(), marked - 1),
        "expected ',' or ']'" => ("did not find expected ',' or ']'".into(), marked - 1),
        // `a: "x" "y"`: go-yaml's parser finds a second scalar where a key must be
        p if p.starts_with("invalid trailing content after") => {
            ("did not find expected key".into(), marked - 1)
        }
        // go-yaml's decoder names the anchor, and no line
        "found unknown anchor" => {
            let name: String = after()
                .skip_while(|c| *c == '*')
                .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                .collect();
            (format!("unknown anchor '{name}' referenced"), 0)
        }
        "simple key expect ':'" => ("could not find expected ':'".into(), scanner(marked)),
        "found unexpected end of stream" => (problem.to_string(), scanner(line_of(usize::MAX) + 1)),
        p if p.starts_with("found a tab") => {
            let tab = e.marker().index() + after().take_while(|c| *c != '\t').count();
            (
                "found a tab character that violates indentation".into(),
                scanner(line_of(tab) + 1),
            )
        }
        // go-yaml's own spelling
        "did not find expected hexadecimal number" => (
            "did not find expected hexdecimal number".into(),
            scanner(marked),
        ),
        p if p.starts_with("unexpected character") => (
            "found character that cannot start any token".into(),
            scanner(marked),
        ),
        p => (p.to_string(), scanner(marked)),
    };
    YamlError { line, message }
}

impl From<YamlError> for Failure {
    fn from(e: YamlError) -> Failure {
        Failure::Yaml(e)
    }
}

/// The documents of `text` (only the first with `first_only`, as go-yaml's `Unmarshal` reads
/// no further), built as the parser's events stream in (never all held at once).
fn build(text: &str, first_only: bool) -> Result<Vec<Value>, Failure> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        peeked: None,
        anchors: BTreeMap::new(),
        decodes: 0,
        aliased: 0,
        depth: 0,
    };
    let mut docs = Vec::new();
    loop {
        match b.next()?.0 {
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart => {
                // an anchor is known within its own document only
                b.anchors.clear();
                if matches!(b.peek()?.0, Event::DocumentEnd) {
                    docs.push(Value::Nil);
                } else {
                    docs.push(b.node()?);
                }
                if first_only {
                    return Ok(docs);
                }
            }
            _ => {}
        }
    }
}

/// The first document (as go-yaml's `Unmarshal` reads it); an empty stream is nil.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    Ok(parse_docs(text, true)?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

/// Numbers through JSON, as sigs.k8s.io/yaml does: every number becomes a float64.
pub fn jsonify(v: Value) -> Value {
    crate::stack::deep(|| jsonify_inner(v))
}

fn jsonify_inner(mut v: Value) -> Value {
    in_place(&mut v);
    v
}

/// Every number of `v` a float64, changed where it is (no second copy of a large value).
fn in_place(v: &mut Value) {
    crate::stack::deep(|| match v {
        Value::Int(i) => *v = Value::Float(*i as f64),
        Value::List(l) => std::rc::Rc::make_mut(l).iter_mut().for_each(in_place),
        Value::Map(m) => m.borrow_mut().values_mut().for_each(in_place),
        _ => {}
    })
}

struct Builder<'t> {
    parser: Parser<std::str::Chars<'t>>,
    /// The next event, once looked at.
    peeked: Option<(Event, Marker)>,
    /// Anchored values, with the number of nodes go-yaml decodes when it expands them.
    anchors: BTreeMap<usize, (Value, usize)>,
    /// Nodes decoded so far, and how many of them came from expanding aliases (as go-yaml counts).
    decodes: usize,
    aliased: usize,
    /// Collections open around the current node.
    depth: usize,
}

impl Builder<'_> {
    /// The next event, without taking it.
    fn peek(&mut self) -> Result<&(Event, Marker), Failure> {
        if self.peeked.is_none() {
            self.peeked = Some(self.parser.next_token().map_err(Failure::Scan)?);
        }
        match &self.peeked {
            Some(e) => Ok(e),
            None => unreachable!("filled above"),
        }
    }

    /// The next event, taken.
    fn next(&mut self) -> Result<(Event, Marker), Failure> {
        match self.peeked.take() {
            Some(e) => Ok(e),
            None => self.parser.next_token().map_err(Failure::Scan),
        }
    }

    fn err(&mut self, msg: &str) -> Failure {
        let line = self.peek().map(|e| e.1.line()).unwrap_or_default();
        Failure::Yaml(YamlError {
            line,
            message: msg.to_string(),
        })
    }

    /// Count one decoded node, failing as go-yaml does when aliases expand too much.
    fn count(&mut self, aliased: bool) -> Result<(), YamlError> {
        self.decodes += 1;
        if aliased {
            self.aliased += 1;
            if self.aliased > 100
                && self.decodes > 1000
                && self.aliased as f64 / self.decodes as f64 > allowed_alias_ratio(self.decodes)
            {
                return Err(YamlError {
                    line: 0,
                    message: "document contains excessive aliasing".into(),
                });
            }
        }
        Ok(())
    }

    fn node(&mut self) -> Result<Value, Failure> {
        crate::stack::deep(|| self.node_counted())
    }

    fn node_counted(&mut self) -> Result<Value, Failure> {
        let start = self.decodes;
        self.count(false)?;
        let (next, mark) = self.peek()?;
        let anchor = match next {
            Event::Scalar(_, _, a, _) | Event::SequenceStart(a, _) | Event::MappingStart(a, _) => {
                *a
            }
            _ => 0,
        };
        let collection = matches!(next, Event::SequenceStart(..) | Event::MappingStart(..));
        let line = mark.line();
        if collection {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Failure::Yaml(YamlError {
                    line,
                    message: format!("exceeded max depth of {MAX_DEPTH}"),
                }));
            }
        }
        let v = self.node_inner();
        if collection {
            self.depth -= 1;
        }
        let v = v?;
        if anchor > 0 {
            self.anchors
                .insert(anchor, (v.clone(), self.decodes - start));
        }
        Ok(v)
    }

    fn node_inner(&mut self) -> Result<Value, Failure> {
        let (ev, _) = self.next()?;
        match ev {
            Event::StreamEnd => Err(self.err("unexpected end of stream")),
            Event::Scalar(s, style, _, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let v = match (style, tag.as_deref()) {
                    (_, Some("tag:yaml.org,2002:str")) | (_, Some("!!str")) => Value::string(s),
                    (TScalarStyle::Plain, _) => resolve(&s),
                    (_, Some(t)) if t.ends_with(":int") || t.ends_with(":float") => resolve(&s),
                    _ => Value::string(s),
                };
                Ok(v)
            }
            // go-yaml decodes an alias anew: a copy, not a shared map
            Event::Alias(id) => {
                let Some((v, size)) = self.anchors.get(&id).cloned() else {
                    return Err(self.err("unknown anchor"));
                };
                // go-yaml decodes the anchored nodes again, each one counted as aliased
                for _ in 0..size {
                    self.count(true)?;
                }
                Ok(v.deep_copy())
            }
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    if matches!(self.peek()?.0, Event::SequenceEnd) {
                        self.next()?;
                        break;
                    }
                    items.push(self.node()?);
                }
                let v = Value::list(items);
                Ok(v)
            }
            Event::MappingStart(..) => {
                let mut m = BTreeMap::new();
                let mut merges = Vec::new();
                loop {
                    if matches!(self.peek()?.0, Event::MappingEnd) {
                        self.next()?;
                        break;
                    }
                    let is_merge = matches!(
                        &self.peek()?.0,
                        Event::Scalar(s, TScalarStyle::Plain, _, _) if s == "<<"
                    );
                    let key = self.node()?;
                    let val = self.node()?;
                    if is_merge {
                        merges.push(val);
                        continue;
                    }
                    let key = match key {
                        Value::Str(s) => s.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => go_float(f),
                        Value::Nil => "null".to_string(),
                        // go-yaml's decoder: no line
                        other => {
                            return Err(Failure::Yaml(YamlError {
                                line: 0,
                                message: format!("invalid map key: {}", go_sharp_v(&other)),
                            }))
                        }
                    };
                    m.insert(key, val);
                }
                for merge in merges {
                    let sources = match merge {
                        Value::List(l) => l.to_vec(),
                        v => vec![v],
                    };
                    for src in sources {
                        if let Value::Map(src) = src {
                            for (k, v) in src.borrow().iter() {
                                m.entry(k.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                }
                let v = Value::map(m);
                Ok(v)
            }
            _ => Err(self.err("unexpected event")),
        }
    }
}

/// Go's `%#v` of what go-yaml v2 decodes into an `interface{}`.
fn go_sharp_v(v: &Value) -> String {
    let joined = |items: Vec<String>| items.join(", ");
    match v {
        Value::Nil => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) => crate::value::go_quote(s),
        Value::List(l) => format!(
            "[]interface {{}}{{{}}}",
            joined(l.iter().map(go_sharp_v).collect())
        ),
        Value::Map(m) => format!(
            "map[interface {{}}]interface {{}}{{{}}}",
            joined(
                m.borrow()
                    .iter()
                    .map(|(k, v)| format!("{}:{}", crate::value::go_quote(k), go_sharp_v(v)))
                    .collect()
            )
        ),
        Value::Obj(_) => String::new(),
    }
}

/// go-yaml v2's resolution of a plain scalar.
pub fn resolve(s: &str) -> Value {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => return Value::Nil,
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => {
            if let Some(f) = go_parse_float(s) {
                return Value::Float(f);
            }
        }
        b'0'..=b'9' | b'+' | b'-' => {
            if is_timestamp(s) {
                return Value::str(s);
            }
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Value::Int(i);
            }
            if is_yaml_float(&plain) {
                if let Some(f) = go_parse_float(&plain) {
                    return Value::Float(f);
                }
            }
            let (neg, rest) = match plain.strip_prefix('-') {
                Some(r) => (true, r),
                None => (false, plain.as_str()),
            };
            if let Some(b) = rest.strip_prefix("0b") {
                if let Ok(i) = i64::from_str_radix(b, 2) {
                    return Value::Int(if neg { -i } else { i });
                }
            }
        }
        _ => {}
    }
    Value::str(s)
}

/// Whether a plain scalar would be read as something other than a string (so `toYaml` quotes it).
pub(super) fn resolves_non_string(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if is_timestamp(s) {
        return true;
    }
    !matches!(resolve(s), Value::Str(_))
}

/// `strconv.ParseInt(s, 0, 64)`.
pub fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(r) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
        (2, r)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).ok()
    }
}

/// `strconv.ParseFloat(s, 64)` for decimal forms (and inf/nan words).
pub fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_prefix('-').unwrap_or(&lower);
    if matches!(body, "inf" | "infinity" | "nan") {
        return lower.parse().ok();
    }
    if !t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
    {
        return None;
    }
    t.parse().ok()
}

fn is_yaml_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml v2 `parseTimestamp`: four digits and a dash, then one of the allowed layouts.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    // date part: YYYY-M-D (1 or 2 digits each)
    let rest = &s[5..];
    let mut parts = rest.splitn(2, '-');
    let m = parts.next().unwrap_or("");
    let Some(after) = parts.next() else {
        return false;
    };
    if m.is_empty() || m.len() > 2 || !m.bytes().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let dlen = after.bytes().take_while(u8::is_ascii_digit).count();
    if dlen == 0 || dlen > 2 {
        return false;
    }
    let month: u32 = m.parse().unwrap_or(0);
    let day: u32 = after[..dlen].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let tail = &after[dlen..];
    if tail.is_empty() {
        return true;
    }
    // time part: [Tt ]H:M:S(.frac)?(Z|±hh:mm)?
    let Some(first) = tail.chars().next() else {
        return true;
    };
    if !matches!(first, 'T' | 't' | ' ') {
        return false;
    }
    let t = &tail[1..];
    let fields: Vec<&str> = t.splitn(3, ':').collect();
    if fields.len() < 3 {
        return false;
    }
    let ok_num = |x: &str| !x.is_empty() && x.len() <= 2 && x.bytes().all(|c| c.is_ascii_digit());
    if !ok_num(fields[0]) || !ok_num(fields[1]) {
        return false;
    }
    let sec = fields[2];
    let slen = sec.bytes().take_while(u8::is_ascii_digit).count();
    if slen == 0 || slen > 2 {
        return false;
    }
    let mut r = &sec[slen..];
    if let Some(f) = r.strip_prefix('.') {
        let n = f.bytes().take_while(u8::is_ascii_digit).count();
        r = &f[n..];
    }
    if r.is_empty() {
        return true;
    }
    if first == ' ' {
        return false;
    }
    r == "Z"
        || ((r.starts_with('+') || r.starts_with('-'))
            && r.len() == 6
            && r.as_bytes()[3] == b':'
            && r[1..3].bytes().all(|c| c.is_ascii_digit())
            && r[4..].bytes().all(|c| c.is_ascii_digit()))
}
