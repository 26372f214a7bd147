//! Template functions: Go's builtins, Sprig, and Helm's own (`include`, `tpl`, `toYaml`, ...).
//!
//! Each family's module registers its functions by name (`register`), so a name is listed once
//! and adding a function is a change in one family's file. The parser resolves every function
//! name to its [`Func`] when it reads a template ([`lookup`]): as in Go, an unknown name is a
//! parse error even in a branch never taken, and a call needs no lookup.

mod builtins;
mod case;
mod certs;
mod crypto;
mod dates;
mod dicts;
mod encoding;
mod helm;
mod lists;
mod math;
mod objects;
mod paths;
mod reflect;
mod regex;
mod semver;
mod strings;

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::exec::{Engine, FnError, FnResult, State};
use crate::value::{MapRef, Value};

pub use math::to_f64;
pub use objects::{glob_match, obj_field};

/// A template function, as the parser resolved it.
#[derive(Clone, Copy, Debug)]
pub enum Func {
    /// A function of its arguments only.
    Pure(fn(Args<'_>) -> FnResult),
    /// A function that needs the engine (templates, the random generator) or the state.
    Engine(fn(&mut Engine, &State, Args<'_>) -> FnResult),
    /// `and` and `or`: the executor evaluates their arguments lazily, itself.
    And,
    Or,
}

impl Func {
    /// Calls the function `name` resolved to, with evaluated arguments.
    /// `field_nil[i]`: argument `i` is a field (`.a.b`, `$x.a`) that holds no value, which
    /// Go's `text/template` rejects for a typed parameter (unlike a nil variable or pipeline).
    pub fn call(
        self,
        eng: &mut Engine,
        st: &State,
        name: &str,
        args: Vec<Value>,
        field_nil: Vec<bool>,
        consts: Vec<Option<String>>,
    ) -> FnResult {
        let a = Args {
            name,
            v: args,
            field_nil,
            consts,
        };
        let v = match self {
            Func::Pure(f) => f(a),
            Func::Engine(f) => f(eng, st, a),
            // exec short-circuits these before evaluating arguments
            Func::And | Func::Or => Err(call_err(format!("{name} is evaluated by the executor"))),
        }?;
        match &v {
            Value::Str(s) => within_budget(s.len(), 1)?,
            Value::List(l) => within_budget(0, l.len())?,
            _ => {}
        }
        Ok(v)
    }
}

/// The rendering budget of one value: Helm has none, and a chart that asks for gigabytes
/// (`repeat`, `until`) ends there in an out-of-memory kill. No Kubernetes object comes near it.
pub const MAX_VALUE_BYTES: usize = 256 * 1024 * 1024;
/// The most elements one list may hold (16 bytes each: 256 MiB).
pub const MAX_LIST_ITEMS: usize = 16 * 1024 * 1024;

/// A function's result of `bytes` bytes (or `items` list elements), checked before it is built.
pub(crate) fn within_budget(bytes: usize, items: usize) -> Result<(), FnError> {
    if bytes > MAX_VALUE_BYTES {
        return Err(call_err(format!(
            "the result would be {bytes} bytes, over the rendering budget of {MAX_VALUE_BYTES} bytes"
        )));
    }
    if items > MAX_LIST_ITEMS {
        return Err(call_err(format!(
            "the result would hold {items} elements, over the rendering budget of {MAX_LIST_ITEMS}"
        )));
    }
    Ok(())
}

/// [`within_budget`] for a count the template gave (negative counts make nothing).
pub(crate) fn count_within_budget(count: i64, each_bytes: usize) -> Result<usize, FnError> {
    let n = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
    within_budget(n.saturating_mul(each_bytes), 0)?;
    Ok(n)
}

/// Every function by name; built once, on first use.
static FUNCS: LazyLock<HashMap<&'static str, Func>> = LazyLock::new(|| {
    let mut r = Registry(HashMap::new());
    builtins::register(&mut r);
    helm::register(&mut r);
    strings::register(&mut r);
    regex::register(&mut r);
    lists::register(&mut r);
    dicts::register(&mut r);
    math::register(&mut r);
    encoding::register(&mut r);
    crypto::register(&mut r);
    certs::register(&mut r);
    semver::register(&mut r);
    dates::register(&mut r);
    reflect::register(&mut r);
    paths::register(&mut r);
    r.0
});

/// The function a template names, if it is defined, and its name as the table holds it (no
/// copy per call site).
pub fn lookup_named(name: &str) -> Option<(&'static str, Func)> {
    FUNCS.get_key_value(name).map(|(k, f)| (*k, *f))
}

/// What the family modules register into.
struct Registry(HashMap<&'static str, Func>);

impl Registry {
    fn add(&mut self, name: &'static str, f: Func) {
        let old = self.0.insert(name, f);
        debug_assert!(old.is_none(), "template function {name} registered twice");
    }
    fn pure(&mut self, name: &'static str, f: fn(Args<'_>) -> FnResult) {
        self.add(name, Func::Pure(f));
    }
    fn engine(&mut self, name: &'static str, f: fn(&mut Engine, &State, Args<'_>) -> FnResult) {
        self.add(name, Func::Engine(f));
    }
    /// Functions Helm defines that envboot does not implement: they parse, and fail when called.
    fn unsupported(&mut self, names: &[&'static str]) {
        for name in names {
            self.pure(name, unsupported);
        }
    }
}

fn unsupported(a: Args) -> FnResult {
    Err(call_err(format!(
        "function {:?} is not supported by envboot",
        a.name
    )))
}

/// A call's arguments, and the name it was called by (some functions serve several names).
pub struct Args<'a> {
    name: &'a str,
    v: Vec<Value>,
    field_nil: Vec<bool>,
    /// The text of arguments that are constants in the template (`1.5`, `"x"`, `true`).
    consts: Vec<Option<String>>,
}

/// Go's `validateType` of argument `i`, reported at that argument.
fn wrong_type_at(i: usize, expected: &str, v: &Value, field_nil: bool) -> FnError {
    let msg = match v {
        Value::Nil if field_nil => {
            format!("wrong type for value; expected {expected}; got interface {{}}")
        }
        Value::Nil => format!("invalid value; expected {expected}"),
        v => format!(
            "wrong type for value; expected {expected}; got {}",
            v.type_name()
        ),
    };
    FnError::Arg(i, msg)
}

impl Args<'_> {
    fn want(&self, n: usize) -> Result<(), FnError> {
        if self.v.len() != n {
            return Err(FnError::Plain(format!(
                "wrong number of args for {}: want {} got {}",
                self.name,
                n,
                self.v.len()
            )));
        }
        Ok(())
    }
    fn at_least(&self, n: usize) -> Result<(), FnError> {
        if self.v.len() < n {
            return Err(FnError::Plain(format!(
                "wrong number of args for {}: want at least {} got {}",
                self.name,
                n,
                self.v.len()
            )));
        }
        Ok(())
    }
    fn v(&self, i: usize) -> Value {
        self.v.get(i).cloned().unwrap_or(Value::Nil)
    }
    pub(super) fn wrong(&self, i: usize, expected: &str) -> FnError {
        let fnil = self.field_nil.get(i).copied().unwrap_or(false);
        wrong_type_at(i, expected, self.v.get(i).unwrap_or(&Value::Nil), fnil)
    }
    /// Whether argument `i` is a constant of the template.
    fn is_const(&self, i: usize) -> bool {
        self.consts.get(i).is_some_and(Option::is_some)
    }
    /// A constant given where its syntax does not fit the parameter: Go's `expected integer;
    /// found 1.5`.
    fn constant_mismatch(&self, i: usize, expected: &str) -> Option<FnError> {
        let text = self.consts.get(i)?.as_ref()?;
        if text == "nil" {
            let go_type = if expected == "integer" {
                "int"
            } else {
                expected
            };
            return Some(FnError::Arg(i, format!("cannot assign nil to {go_type}")));
        }
        Some(FnError::Arg(
            i,
            format!("expected {expected}; found {text}"),
        ))
    }
    fn s(&self, i: usize) -> Result<String, FnError> {
        match self.v.get(i) {
            Some(Value::Str(s)) => Ok(s.to_string()),
            _ => Err(self
                .constant_mismatch(i, "string")
                .unwrap_or_else(|| self.wrong(i, "string"))),
        }
    }
    fn i(&self, i: usize) -> Result<i64, FnError> {
        match self.v.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            // a float constant that is a whole number (`1.0`, `1e3`) is an integer constant
            Some(Value::Float(f))
                if self.consts.get(i).is_some_and(Option::is_some)
                    && f.fract() == 0.0
                    && f.abs() < 9.2e18 =>
            {
                Ok(*f as i64)
            }
            _ => Err(self
                .constant_mismatch(i, "integer")
                .unwrap_or_else(|| self.wrong(i, "int"))),
        }
    }
    fn b(&self, i: usize) -> Result<bool, FnError> {
        match self.v.get(i) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(self
                .constant_mismatch(i, "bool")
                .unwrap_or_else(|| self.wrong(i, "bool"))),
        }
    }
    /// A `map[string]interface {}` parameter: a nil variable or pipeline is Go's nil map
    /// (read as empty); a field that holds no value is an error, as in Go.
    fn m(&self, i: usize) -> Result<MapRef, FnError> {
        match self.v.get(i) {
            Some(Value::Map(m)) => Ok(m.clone()),
            Some(Value::Nil) if !self.field_nil.get(i).copied().unwrap_or(false) => {
                match Value::empty_map() {
                    Value::Map(m) => Ok(m),
                    _ => Err(self.wrong(i, "map[string]interface {}")),
                }
            }
            _ => Err(self.wrong(i, "map[string]interface {}")),
        }
    }
}

fn call_err(m: impl Into<String>) -> FnError {
    FnError::Call(m.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_registers() {
        for name in [
            "and",
            "include",
            "trim",
            "regexMatch",
            "list",
            "dict",
            "add",
            "toJson",
            "sha256sum",
            "semver",
            "now",
            "default",
            "base",
            "mustSlice",
            "genCA",
            "chunk",
            "mustChunk",
            "abbrevboth",
            "urlParse",
            "urlJoin",
            "mustFromJson",
        ] {
            assert!(lookup_named(name).is_some(), "{name}");
        }
        assert!(lookup_named("nosuchfunction").is_none());
        // Helm's function table with Sprig's (a few, as `getHostByName`, registered as refused)
        assert!(FUNCS.len() >= 225, "{}", FUNCS.len());
    }
}
