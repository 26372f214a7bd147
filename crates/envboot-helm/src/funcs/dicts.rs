//! Sprig's dictionary functions.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{call_err, Args, Registry};
use crate::exec::{FnError, FnResult};
use crate::value::{strval, MapRef, Value};

pub(super) fn register(r: &mut Registry) {
    r.pure("dict", dict);
    r.pure("get", get);
    r.pure("set", set);
    r.pure("unset", unset);
    r.pure("hasKey", has_key);
    r.pure("pluck", pluck);
    r.pure("keys", keys);
    r.pure("values", values);
    r.pure("pick", pick);
    r.pure("omit", pick);
    r.pure("merge", merge);
    r.pure("mustMerge", merge);
    r.pure("mergeOverwrite", merge);
    r.pure("mustMergeOverwrite", merge);
    r.pure("deepCopy", deep_copy);
    r.pure("mustDeepCopy", deep_copy);
    r.pure("dig", dig);
}

fn dict(a: Args) -> FnResult {
    let n = a.v.len();
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < n {
        let k = strval(&a.v[i]);
        let v = a.v.get(i + 1).cloned().unwrap_or(Value::str(""));
        m.insert(k, v);
        i += 2;
    }
    Ok(Value::map(m))
}

fn get(a: Args) -> FnResult {
    a.want(2)?;
    let m = a.m(0)?;
    let k = a.s(1)?;
    let v = m.borrow().get(&k).cloned();
    Ok(v.unwrap_or_else(|| Value::str("")))
}

fn set(a: Args) -> FnResult {
    a.want(3)?;
    let m = a.m(0)?;
    let k = a.s(1)?;
    m.borrow_mut().insert(k, a.v(2));
    Ok(Value::Map(m))
}

fn unset(a: Args) -> FnResult {
    a.want(2)?;
    let m = a.m(0)?;
    let k = a.s(1)?;
    m.borrow_mut().remove(&k);
    Ok(Value::Map(m))
}

fn has_key(a: Args) -> FnResult {
    a.want(2)?;
    let m = a.m(0)?;
    let k = a.s(1)?;
    let r = m.borrow().contains_key(&k);
    Ok(Value::Bool(r))
}

fn pluck(a: Args) -> FnResult {
    let n = a.v.len();
    a.at_least(1)?;
    let k = a.s(0)?;
    let mut out = Vec::new();
    for i in 1..n {
        let m = a.m(i)?;
        let found = m.borrow().get(&k).cloned();
        if let Some(v) = found {
            out.push(v);
        }
    }
    Ok(Value::list(out))
}

fn keys(a: Args) -> FnResult {
    let n = a.v.len();
    let mut out = Vec::new();
    for i in 0..n {
        let m = a.m(i)?;
        out.extend(m.borrow().keys().map(|k| Value::str(k)));
    }
    Ok(Value::list(out))
}

fn values(a: Args) -> FnResult {
    a.want(1)?;
    let m = a.m(0)?;
    let v: Vec<Value> = m.borrow().values().cloned().collect();
    Ok(Value::list(v))
}

fn pick(a: Args) -> FnResult {
    a.at_least(1)?;
    let m = a.m(0)?;
    let ks: Vec<String> = a.v[1..].iter().map(strval).collect();
    let keep = a.name == "pick";
    let r: BTreeMap<String, Value> = m
        .borrow()
        .iter()
        .filter(|(k, _)| ks.contains(k) == keep)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Value::map(r))
}

fn merge(a: Args) -> FnResult {
    let n = a.v.len();
    a.at_least(1)?;
    let dst = a.m(0)?;
    let overwrite = a.name.ends_with("Overwrite");
    for i in 1..n {
        let src = a.m(i)?;
        merge_into(&dst, &src, overwrite);
    }
    Ok(Value::Map(dst))
}

fn deep_copy(a: Args) -> FnResult {
    a.want(1)?;
    // copystructure of a nil interface: reflect on a zero Value
    if a.v(0).is_nil() {
        return Err(call_err(
            "reflect: call of reflect.Value.Type on zero Value",
        ));
    }
    Ok(a.v(0).deep_copy())
}

/// Go's message for a failed `x.(map[string]interface{})` (sprig panics; Helm reports it).
fn not_a_map(v: &Value) -> FnError {
    let t = match v {
        Value::Nil => "nil".to_string(),
        v => v.type_name().to_string(),
    };
    call_err(format!(
        "interface conversion: interface {{}} is {t}, not map[string]interface {{}}"
    ))
}

fn dig(a: Args) -> FnResult {
    let n = a.v.len();
    if n < 3 {
        return Err(call_err("dig needs at least three arguments"));
    }
    let last = a.v(n - 1);
    let Value::Map(m) = &last else {
        return Err(not_a_map(&last));
    };
    let def = a.v(n - 2);
    let mut keys = Vec::new();
    for k in &a.v[..n - 2] {
        match k {
            Value::Str(s) => keys.push(s.to_string()),
            v => {
                let t = match v {
                    Value::Nil => "nil".to_string(),
                    v => v.type_name().to_string(),
                };
                return Err(call_err(format!(
                    "interface conversion: interface {{}} is {t}, not string"
                )));
            }
        }
    }
    let mut cur = Value::Map(m.clone());
    for (i, k) in keys.iter().enumerate() {
        let next = match &cur {
            Value::Map(mm) => mm.borrow().get(k).cloned(),
            v => return Err(not_a_map(v)),
        };
        match next {
            Some(v) => {
                if i + 1 < keys.len() && !matches!(v, Value::Map(_)) {
                    return Err(not_a_map(&v));
                }
                cur = v
            }
            None => return Ok(def),
        }
    }
    Ok(cur)
}

/// mergo's `Merge` (and `WithOverride`) on template maps.
fn merge_into(dst: &MapRef, src: &MapRef, overwrite: bool) {
    crate::stack::deep(|| merge_into_inner(dst, src, overwrite))
}

fn merge_into_inner(dst: &MapRef, src: &MapRef, overwrite: bool) {
    if Rc::ptr_eq(dst, src) {
        return;
    }
    let entries = crate::value::entries(src);
    for (k, sv) in entries {
        let dv = dst.borrow().get(&k).cloned();
        match (&sv, &dv) {
            (Value::Nil, _) => {
                if overwrite {
                    dst.borrow_mut().insert(k, Value::Nil);
                }
                continue;
            }
            (Value::Map(s), Some(Value::Map(d))) => {
                merge_into(d, s, overwrite);
                if !d.borrow().is_empty() {
                    continue;
                }
            }
            (Value::List(_), Some(d)) if !d.is_empty() => {
                if overwrite {
                    dst.borrow_mut().insert(k, sv);
                }
                continue;
            }
            _ => {}
        }
        let set = match &dv {
            None => true,
            Some(d) => overwrite || d.is_empty(),
        };
        if set {
            dst.borrow_mut().insert(k, sv);
        }
    }
}
