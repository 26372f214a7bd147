//! YAML as Helm reads and writes it: go-yaml v2's YAML 1.1 scalar resolution when reading
//! (`yes`/`on` are booleans, `0777` is octal) and go-yaml v2's emitter when writing (`toYaml`:
//! sorted keys, sequences not indented under keys, plain scalars folded at 80 columns).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::value::{go_float, Obj, Value};

#[derive(Debug, Clone)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "yaml: line {}: {}", self.line, self.message)
    }
}

struct Collector {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

/// Parse every document of a YAML stream (numbers keep int vs float; see [`jsonify`]).
pub fn parse_all(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut c = Collector { events: Vec::new() };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut c, true).map_err(|e| YamlError {
        line: e.marker().line(),
        message: e.info().to_string(),
    })?;
    let mut b = Builder {
        events: c.events,
        pos: 0,
        anchors: BTreeMap::new(),
    };
    let mut docs = Vec::new();
    while b.pos < b.events.len() {
        match &b.events[b.pos].0 {
            Event::DocumentStart => {
                b.pos += 1;
                if matches!(b.events.get(b.pos).map(|e| &e.0), Some(Event::DocumentEnd)) {
                    docs.push(Value::Nil);
                } else {
                    docs.push(b.node()?);
                }
            }
            _ => b.pos += 1,
        }
    }
    Ok(docs)
}

/// The first document (as go-yaml's `Unmarshal` reads it); an empty stream is nil.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    Ok(parse_all(text)?.into_iter().next().unwrap_or(Value::Nil))
}

/// Numbers through JSON, as sigs.k8s.io/yaml does: every number becomes a float64.
pub fn jsonify(v: Value) -> Value {
    match v {
        Value::Int(i) => Value::Float(i as f64),
        Value::List(l) => Value::list(l.iter().cloned().map(jsonify).collect()),
        Value::Map(m) => {
            let inner = std::mem::take(&mut *m.borrow_mut());
            Value::map(inner.into_iter().map(|(k, v)| (k, jsonify(v))).collect())
        }
        v => v,
    }
}

struct Builder {
    events: Vec<(Event, Marker)>,
    pos: usize,
    anchors: BTreeMap<usize, Value>,
}

impl Builder {
    fn err(&self, msg: &str) -> YamlError {
        YamlError {
            line: self
                .events
                .get(self.pos)
                .map(|e| e.1.line())
                .unwrap_or_default(),
            message: msg.to_string(),
        }
    }

    fn node(&mut self) -> Result<Value, YamlError> {
        let Some((ev, _)) = self.events.get(self.pos).cloned() else {
            return Err(self.err("unexpected end of stream"));
        };
        self.pos += 1;
        match ev {
            Event::Scalar(s, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let v = match (style, tag.as_deref()) {
                    (_, Some("tag:yaml.org,2002:str")) | (_, Some("!!str")) => Value::string(s),
                    (TScalarStyle::Plain, _) => resolve(&s),
                    (_, Some(t)) if t.ends_with(":int") || t.ends_with(":float") => resolve(&s),
                    _ => Value::string(s),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::Alias(id) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or_else(|| self.err("unknown anchor")),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    if matches!(
                        self.events.get(self.pos).map(|e| &e.0),
                        Some(Event::SequenceEnd)
                    ) {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.node()?);
                }
                let v = Value::list(items);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut m = BTreeMap::new();
                let mut merges = Vec::new();
                loop {
                    if matches!(
                        self.events.get(self.pos).map(|e| &e.0),
                        Some(Event::MappingEnd)
                    ) {
                        self.pos += 1;
                        break;
                    }
                    let is_merge = matches!(
                        self.events.get(self.pos).map(|e| &e.0),
                        Some(Event::Scalar(s, TScalarStyle::Plain, _, _)) if s == "<<"
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
                        _ => return Err(self.err("invalid map key")),
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
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                Ok(v)
            }
            _ => Err(self.err("unexpected event")),
        }
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
fn resolves_non_string(s: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Emitting

/// `toYaml`: JSON semantics for values, go-yaml v2's emitter for text. Ends with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
    };
    let v = for_json(v);
    e.node(&v, -1, Ctx::Top);
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

/// What the value is after `json.Marshal` and go-yaml reading the JSON back: objects with
/// methods become plain data, whole floats become ints.
pub fn for_json(v: &Value) -> Value {
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
        },
        v => v.clone(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    MapValue,
    SeqItem,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
}

const BEST_WIDTH: usize = 80;

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }
    fn put_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }
    fn put_break(&mut self) {
        self.put('\n');
    }
    fn write_indent(&mut self, indent: i64) {
        let indent = indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }
    fn write_indicator(&mut self, ind: &str, need_ws: bool, is_ws: bool, is_indent: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        self.put_str(ind);
        self.whitespace = is_ws;
        self.indention = self.indention && is_indent;
    }

    /// `indent` is the emitter's indent of the enclosing collection (-1 at top).
    fn node(&mut self, v: &Value, indent: i64, ctx: Ctx) {
        match v {
            Value::Map(m) => {
                let m = m.borrow();
                if m.is_empty() {
                    self.write_indicator("{}", true, false, false);
                    return;
                }
                let new_indent = if indent < 0 { 0 } else { indent + 2 };
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| key_cmp(a, b));
                for k in keys {
                    self.write_indent(new_indent);
                    self.scalar(k, new_indent, true);
                    self.write_indicator(":", false, false, false);
                    let Some(val) = m.get(k) else { continue };
                    self.node(val, new_indent, Ctx::MapValue);
                }
            }
            Value::List(l) => {
                if l.is_empty() {
                    self.write_indicator("[]", true, false, false);
                    return;
                }
                // Sequences in a mapping are not indented.
                let indentless = ctx == Ctx::MapValue && !self.indention;
                let new_indent = if indent < 0 {
                    0
                } else if indentless {
                    indent
                } else {
                    indent + 2
                };
                for item in l.iter() {
                    self.write_indent(new_indent);
                    self.write_indicator("-", true, false, true);
                    self.node(item, new_indent, Ctx::SeqItem);
                }
            }
            Value::Nil => self.plain_or_styled("null", indent, false, true),
            Value::Bool(b) => {
                self.plain_or_styled(if *b { "true" } else { "false" }, indent, false, true)
            }
            Value::Int(i) => self.plain_or_styled(&i.to_string(), indent, false, true),
            Value::Float(f) => {
                let s = match go_float(*f).as_str() {
                    "+Inf" => ".inf".to_string(),
                    "-Inf" => "-.inf".to_string(),
                    "NaN" => ".nan".to_string(),
                    s => s.to_string(),
                };
                self.plain_or_styled(&s, indent, false, true)
            }
            Value::Str(s) => self.scalar(s, indent, false),
            Value::Obj(_) => {
                let j = for_json(v);
                self.node(&j, indent, ctx)
            }
        }
    }

    fn plain_or_styled(&mut self, s: &str, indent: i64, simple_key: bool, force_plain: bool) {
        if force_plain {
            let scalar_indent = if indent < 0 { 2 } else { indent + 2 };
            self.write_plain(s, scalar_indent, !simple_key);
        } else {
            self.scalar(s, indent, simple_key);
        }
    }

    /// A string scalar: go-yaml v2 picks plain, literal (multi-line) or double-quoted, and the
    /// emitter may demote plain to single-quoted.
    fn scalar(&mut self, s: &str, indent: i64, simple_key: bool) {
        let scalar_indent = if indent < 0 { 2 } else { indent + 2 };
        let can_plain = !resolves_non_string(s) && !is_base60_float(s);
        let a = analyze(s);
        #[derive(PartialEq)]
        enum Style {
            Plain,
            Single,
            Double,
            Literal,
        }
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if can_plain {
            Style::Plain
        } else {
            Style::Double
        };
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::Double;
        }
        match style {
            Style::Plain => self.write_plain(s, scalar_indent, !simple_key),
            Style::Single => self.write_single(s, scalar_indent, !simple_key),
            Style::Double => self.write_double(s, scalar_indent, !simple_key),
            Style::Literal => self.write_literal(s, scalar_indent),
        }
    }

    fn write_plain(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    c => {
                        let n = c as u32;
                        let s = if n <= 0xff {
                            format!("x{n:02X}")
                        } else if n <= 0xffff {
                            format!("u{n:04X}")
                        } else {
                            format!("U{n:08X}")
                        };
                        self.put_str(&s);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, s: &str, indent: i64) {
        let mut hints = String::new();
        if s.starts_with(' ') || s.starts_with('\n') {
            hints.push('2');
        }
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s.len() == 1 || s.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        hints.push_str(chomp);
        self.write_indicator(&format!("|{hints}"), true, false, false);
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in s.chars() {
            if c == '\n' {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
        // libyaml leaves the indention state as the last character left it: after a final
        // line break the next key needs no further break.
    }
}

fn is_printable(c: char) -> bool {
    let n = c as u32;
    n == 0x0a
        || (0x20..=0x7e).contains(&n)
        || (0xa0..=0xd7ff).contains(&n)
        || ((0xe000..=0xfffd).contains(&n) && n != 0xfeff)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = false;
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) =
        (false, false, false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_indicators = true;
    }
    let mut preceded_by_ws = true;
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        let followed_by_ws = is_blankz(chars.get(i + 1).copied());
        let indicator = if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => followed_by_ws,
                _ => false,
            }
        } else {
            match c {
                ':' => followed_by_ws,
                '#' => preceded_by_ws,
                _ => false,
            }
        };
        if indicator {
            block_indicators = true;
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = is_blankz(Some(c));
    }
    let mut a = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let g = &b[st..i];
        let ok = match g.len() {
            1 => true,
            2 => g[0] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml v2's key order: runs of digits compare as numbers, non-letters before letters.
pub fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Go's `encoding/json` encoding (HTML-escaped, keys sorted); `indent` for `toPrettyJson`.
pub fn to_json(v: &Value, indent: Option<&str>) -> String {
    let mut out = String::new();
    json_value(v, indent, 0, &mut out);
    out
}

fn json_value(v: &Value, indent: Option<&str>, depth: usize, out: &mut String) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
