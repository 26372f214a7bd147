//! Template values with Go semantics: maps are shared references (so `set` mutates in place),
//! numbers keep Go's int / float64 distinction, and printing follows `fmt`'s `%v`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

pub type MapRef = Rc<MapCell>;

/// A map's storage. Its `Drop` (and [`ListCell`]'s) takes nested collections apart with a work
/// list, so that dropping a value nested hundreds of thousands deep (a template can build one in a
/// loop) does not recurse once per level.
#[derive(Debug, Default)]
pub struct MapCell(RefCell<BTreeMap<String, Value>>);

/// A list's storage (see [`MapCell`]).
#[derive(Debug, Default, Clone)]
pub struct ListCell(Vec<Value>);

impl std::ops::Deref for MapCell {
    type Target = RefCell<BTreeMap<String, Value>>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::Deref for ListCell {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::DerefMut for ListCell {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

fn is_collection(v: &Value) -> bool {
    matches!(v, Value::Map(_) | Value::List(_))
}

/// Drop `first` and every collection it alone holds, level by level, without recursion.
fn drop_iteratively(first: Vec<Value>) {
    let mut pending = first;
    while let Some(v) = pending.pop() {
        match v {
            Value::Map(m) => {
                if let Ok(cell) = Rc::try_unwrap(m) {
                    pending.extend(std::mem::take(&mut *cell.0.borrow_mut()).into_values());
                }
            }
            Value::List(l) => {
                if let Ok(mut cell) = Rc::try_unwrap(l) {
                    pending.append(&mut cell.0);
                }
            }
            _ => {}
        }
    }
}

impl Drop for MapCell {
    fn drop(&mut self) {
        let m = self.0.get_mut();
        if m.values().any(is_collection) {
            drop_iteratively(std::mem::take(m).into_values().collect());
        }
    }
}

impl Drop for ListCell {
    fn drop(&mut self) {
        if self.0.iter().any(is_collection) {
            drop_iteratively(std::mem::take(&mut self.0));
        }
    }
}

/// A copy of a map's entries, so that the map can be changed while they are walked.
pub fn entries(m: &MapRef) -> Vec<(String, Value)> {
    m.borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Bytes as text, as `String::from_utf8_lossy` reads them, with the fast check first (most
/// files are UTF-8 already).
pub fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// The bytes of a chart's file, shared (not copied) by every chart, `.Files` and value that
/// holds them.
pub type FileData = std::sync::Arc<Vec<u8>>;

#[derive(Clone, Debug)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<ListCell>),
    Map(MapRef),
    Obj(Rc<Obj>),
}

/// A value whose every read is noticed: what the cluster says of itself, which envboot asks the
/// cluster for only when a chart reads it.
#[derive(Debug)]
pub struct Tracked<T> {
    value: T,
    read: Rc<std::cell::Cell<bool>>,
}

impl<T> Tracked<T> {
    pub fn new(value: T, read: &Rc<std::cell::Cell<bool>>) -> Tracked<T> {
        Tracked {
            value,
            read: read.clone(),
        }
    }
}

impl<T> std::ops::Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.read.set(true);
        &self.value
    }
}

/// Values that are Go structs with methods in Helm.
#[derive(Debug)]
pub enum Obj {
    /// `.Files`: path -> content.
    Files(BTreeMap<String, FileData>),
    /// `.Capabilities.APIVersions`.
    ApiVersions(Tracked<Vec<String>>),
    /// `.Capabilities.KubeVersion`.
    KubeVersion {
        version: Tracked<String>,
        major: Tracked<String>,
        minor: Tracked<String>,
    },
    /// A semver version (`semver "1.2.3"`).
    Semver(super::semver::Version),
    /// A `semver.Version` (not a pointer), as `IncPatch` and `SetPrerelease` return: only the
    /// methods with value receivers (`String`, `Major`, `IncMinor`, ...) apply to it.
    SemverValue(super::semver::Version),
    /// A Go `[]byte` (what ranging over `.Files.Glob` gives).
    Bytes(FileData),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }
    pub fn string(s: String) -> Value {
        Value::Str(Rc::from(s))
    }
    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(ListCell(v)))
    }
    pub fn map(m: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(MapCell(RefCell::new(m))))
    }
    pub fn empty_map() -> Value {
        Value::map(BTreeMap::new())
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's `template.IsTrue`.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Obj(_) => true,
        }
    }

    /// Go's `%T`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Obj(o) => match **o {
                Obj::Files(_) => "common.Files",
                Obj::ApiVersions(_) => "common.VersionSet",
                Obj::KubeVersion { .. } => "*common.KubeVersion",
                Obj::Semver(_) => "*semver.Version",
                Obj::SemverValue(_) => "semver.Version",
                Obj::Bytes(_) => "[]uint8",
            },
        }
    }

    /// `reflect.Kind` names as sprig's `kindOf` prints them.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Obj(o) => match **o {
                Obj::Files(_) => "map",
                Obj::ApiVersions(_) | Obj::Bytes(_) => "slice",
                Obj::KubeVersion { .. } | Obj::Semver(_) => "ptr",
                Obj::SemverValue(_) => "struct",
            },
        }
    }

    /// Deep copy: new maps and lists all the way down.
    pub fn deep_copy(&self) -> Value {
        crate::stack::deep(|| self.deep_copy_inner())
    }

    fn deep_copy_inner(&self) -> Value {
        match self {
            Value::List(l) => Value::list(l.iter().map(Value::deep_copy).collect()),
            Value::Map(m) => Value::map(
                m.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect(),
            ),
            v => v.clone(),
        }
    }

    /// sprig's `empty`.
    pub fn is_empty(&self) -> bool {
        !self.truthy()
    }
}

/// `reflect.DeepEqual` on template values.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    crate::stack::deep(|| deep_equal_inner(a, b))
}

fn deep_equal_inner(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| deep_equal(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            let x = x.borrow();
            let y = y.borrow();
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::Obj(x), Value::Obj(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (also `%v` of a float64).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest digits via Rust's `{:e}`: "d.ddde[-]x".
    let e = format!("{f:e}");
    let (mant, exp) = match e.split_once('e') {
        Some(p) => p,
        None => return e,
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    // `%e` when the exponent is < -4 or >= the precision, which is 6 for the shortest form.
    if !(-4..6).contains(&exp) {
        return go_exp(mant, exp);
    }
    format!("{f}")
}

fn go_exp(mant: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    let a = exp.abs();
    if a < 10 {
        format!("{mant}e{sign}0{a}")
    } else {
        format!("{mant}e{sign}{a}")
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n < 0x10000 {
                    let _ = write!(out, "\\u{n:04x}");
                } else {
                    let _ = write!(out, "\\U{n:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprint(v)` / `%v`, with `nil` as `<nil>`.
pub fn format_v(v: &Value, out: &mut String) {
    crate::stack::deep(|| format_v_inner(v, out))
}

fn format_v_inner(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&go_float(*f)),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_v(x, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                format_v(x, out);
            }
            out.push(']');
        }
        Value::Obj(o) => match &**o {
            Obj::Files(f) => {
                out.push_str("map[");
                for (i, (k, x)) in f.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    out.push('[');
                    for (j, b) in x.iter().enumerate() {
                        if j > 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{b}");
                    }
                    out.push(']');
                }
                out.push(']');
            }
            Obj::ApiVersions(v) => {
                out.push('[');
                out.push_str(&v.join(" "));
                out.push(']');
            }
            Obj::KubeVersion { version, .. } => out.push_str(&version[..]),
            // fmt calls its String method: the canonical form, not what was parsed
            Obj::Semver(v) | Obj::SemverValue(v) => out.push_str(&v.canonical()),
            Obj::Bytes(b) => {
                out.push('[');
                for (j, x) in b.iter().enumerate() {
                    if j > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{x}");
                }
                out.push(']');
            }
        },
    }
}

pub fn to_v(v: &Value) -> String {
    let mut s = String::new();
    format_v(v, &mut s);
    s
}

/// sprig's `strval`/`toString`: strings as they are, everything else `%v`.
pub fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Obj(o) => match &**o {
            Obj::Bytes(b) => text(b),
            _ => to_v(v),
        },
        v => to_v(v),
    }
}

/// How the template prints the value of an action: like `%v`, but a nil value is `<no value>`.
pub fn print_action(v: &Value, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<no value>"),
        v => format_v(v, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
    }

    #[test]
    fn maps_print_sorted_like_go() {
        let mut m = BTreeMap::new();
        m.insert("b".to_string(), Value::Int(2));
        m.insert(
            "a".to_string(),
            Value::list(vec![Value::str("x"), Value::Nil]),
        );
        assert_eq!(to_v(&Value::map(m)), "map[a:[x <nil>] b:2]");
    }

    #[test]
    fn zero_float_is_false() {
        assert!(!Value::Float(0.0).truthy());
        assert!(Value::Float(0.5).truthy());
    }
}
