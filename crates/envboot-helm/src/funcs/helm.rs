//! Helm's own functions that need the engine or stand for the cluster: `include`, `tpl`,
//! `required`, `fail`, `lookup`.

use std::rc::Rc;

use super::{call_err, Args, Registry};
use crate::exec::{Engine, FnError, FnResult, State, Tmpl};
use crate::parse::{self, Source};
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    r.engine("include", include);
    r.engine("tpl", tpl);
    r.pure("required", required);
    r.pure("fail", fail);
    r.engine("lookup", lookup);
}

fn include(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(2)?;
    let tname = a.s(0)?;
    let data = a.v(1);
    let count = eng.include_stack.iter().filter(|x| **x == tname).count();
    if count > 1000 {
        return Err(call_err(format!(
            "rendering template has a nested reference name: {tname}: unable to execute template"
        )));
    }
    if !eng.templates.contains_key(&tname) {
        return Err(call_err(format!(
            "template: no template {tname:?} associated with template \"gotpl\""
        )));
    }
    eng.include_stack.push(tname.clone());
    let r = eng.execute(&tname, &data);
    eng.include_stack.pop();
    match r {
        Ok(s) => Ok(Value::string(s)),
        Err(e) => Err(FnError::Nested(e, String::new())),
    }
}

fn tpl(eng: &mut Engine, st: &State, a: Args) -> FnResult {
    a.want(2)?;
    let text = a.s(0)?;
    let data = a.v(1);
    let src = Rc::new(Source {
        name: "gotpl".to_string(),
        text: text.clone(),
    });
    let parsed = parse::parse(&src).map_err(|e| {
        call_err(format!(
            "cannot parse template {text:?}: template: {}: {}",
            e.location, e.message
        ))
    })?;
    // defines inside the text are visible while it runs
    let mut saved = Vec::new();
    for (k, body) in parsed.defines {
        let old = eng.templates.insert(
            k.clone(),
            Tmpl {
                body: Rc::new(body),
                src: src.clone(),
            },
        );
        saved.push((k, old));
    }
    let r = eng.execute_body("gotpl", src, &parsed.body, &data, st.depth + 1);
    for (k, old) in saved.into_iter().rev() {
        match old {
            Some(t) => {
                eng.templates.insert(k, t);
            }
            None => {
                eng.templates.remove(&k);
            }
        }
    }
    match r {
        Ok(s) => Ok(Value::string(s.replace("<no value>", ""))),
        Err(e) => Err(FnError::Nested(
            e,
            format!("error during tpl function execution for {text:?}: "),
        )),
    }
}

fn required(a: Args) -> FnResult {
    a.want(2)?;
    let msg = a.s(0)?;
    let v = a.v(1);
    match &v {
        Value::Nil => Err(FnError::User(msg)),
        Value::Str(s) if s.is_empty() => Err(FnError::User(msg)),
        _ => Ok(v),
    }
}

fn fail(a: Args) -> FnResult {
    a.want(1)?;
    Err(FnError::User(a.s(0)?))
}

/// Helm's `lookup`: the object (or, for an empty name, the list) from the cluster, an empty map
/// when it does not exist or when rendering without a cluster (`helm template`).
fn lookup(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(4)?;
    let key = crate::LookupKey {
        api_version: a.s(0)?,
        kind: a.s(1)?,
        namespace: a.s(2)?,
        name: a.s(3)?,
    };
    let Some(lookups) = &eng.lookups else {
        return Ok(Value::empty_map());
    };
    match lookups.found.get(&key) {
        Some(Ok(serde_json::Value::Null)) => Ok(Value::empty_map()),
        Some(Ok(found)) => Ok(crate::yaml::from_unstructured(found)),
        Some(Err(e)) => Err(call_err(e.clone())),
        None => {
            lookups.note_unread(key.clone());
            eng.unread.insert(key);
            Ok(Value::empty_map())
        }
    }
}
