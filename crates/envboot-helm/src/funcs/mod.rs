//! Template functions: Go's builtins, Sprig, and Helm's own (`include`, `tpl`, `toYaml`, ...).
//!
//! Each family's module registers its functions by name (`register`), so a name is listed once
//! and adding a function is a change in one family's file. The parser resolves every function
//! name to its [`Func`] when it reads a template ([`lookup`]): as in Go, an unknown name is a
//! parse error even in a branch never taken, and a call needs no lookup.

mod builtins;
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
    pub fn call(self, eng: &mut Engine, st: &State, name: &str, args: Vec<Value>) -> FnResult {
        let a = Args { name, v: args };
        match self {
            Func::Pure(f) => f(a),
            Func::Engine(f) => f(eng, st, a),
            // exec short-circuits these before evaluating arguments
            Func::And | Func::Or => Err(call_err(format!("{name} is evaluated by the executor"))),
        }
    }
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
    semver::register(&mut r);
    dates::register(&mut r);
    reflect::register(&mut r);
    paths::register(&mut r);
    r.0
});

/// The function a template names, if it is defined.
pub fn lookup(name: &str) -> Option<Func> {
    FUNCS.get(name).copied()
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
}

fn wrong_type(expected: &str, v: &Value) -> FnError {
    match v {
        Value::Nil => FnError::Plain(format!("invalid value; expected {expected}")),
        v => FnError::Plain(format!(
            "wrong type for value; expected {expected}; got {}",
            v.type_name()
        )),
    }
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
    fn s(&self, i: usize) -> Result<String, FnError> {
        match self.v.get(i) {
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(v) => Err(wrong_type("string", v)),
            None => Err(wrong_type("string", &Value::Nil)),
        }
    }
    fn i(&self, i: usize) -> Result<i64, FnError> {
        match self.v.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(v) => Err(wrong_type("int", v)),
            None => Err(wrong_type("int", &Value::Nil)),
        }
    }
    fn b(&self, i: usize) -> Result<bool, FnError> {
        match self.v.get(i) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(wrong_type("bool", v)),
            None => Err(wrong_type("bool", &Value::Nil)),
        }
    }
    fn m(&self, i: usize) -> Result<MapRef, FnError> {
        match self.v.get(i) {
            Some(Value::Map(m)) => Ok(m.clone()),
            Some(v) => Err(wrong_type("map[string]interface {}", v)),
            None => Err(wrong_type("map[string]interface {}", &Value::Nil)),
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
        ] {
            assert!(lookup(name).is_some(), "{name}");
        }
        assert!(lookup("nosuchfunction").is_none());
        assert_eq!(FUNCS.len(), 221);
    }
}
