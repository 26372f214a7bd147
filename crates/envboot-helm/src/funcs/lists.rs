//! Sprig's list functions.

use super::{call_err, Args, Registry};
use crate::exec::{FnError, FnResult};
use crate::value::{deep_equal, Obj, Value};

pub(super) fn register(r: &mut Registry) {
    r.pure("list", list);
    r.pure("tuple", list);
    r.pure("first", first);
    r.pure("mustFirst", first);
    r.pure("last", last);
    r.pure("mustLast", last);
    r.pure("rest", rest);
    r.pure("mustRest", rest);
    r.pure("initial", initial);
    r.pure("mustInitial", initial);
    r.pure("append", append);
    r.pure("mustAppend", append);
    r.pure("push", append);
    r.pure("mustPush", append);
    r.pure("prepend", prepend);
    r.pure("mustPrepend", prepend);
    r.pure("concat", concat);
    r.pure("reverse", reverse);
    r.pure("mustReverse", reverse);
    r.pure("uniq", uniq);
    r.pure("mustUniq", uniq);
    r.pure("without", without);
    r.pure("mustWithout", without);
    r.pure("has", has);
    r.pure("mustHas", has);
    r.pure("compact", compact);
    r.pure("mustCompact", compact);
    r.pure("mustSlice", super::builtins::slice);
    r.pure("chunk", chunk);
    r.pure("mustChunk", chunk);
}

/// Sprig's `chunk`: lists of `size` items, the last one shorter.
fn chunk(a: Args) -> FnResult {
    a.want(2)?;
    let size = a.i(0)?;
    let v = a.v(1);
    let l = as_list("chunk", &v)
        .map_err(|_| call_err(format!("Cannot chunk type {}", v.kind_name())))?;
    if size <= 0 {
        return Err(call_err("runtime error: integer divide by zero"));
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    Ok(Value::list(
        l.chunks(size).map(|c| Value::list(c.to_vec())).collect(),
    ))
}

fn list(a: Args) -> FnResult {
    Ok(Value::list(a.v.clone()))
}

fn first(a: Args) -> FnResult {
    a.want(1)?;
    Ok(as_list("find first", &a.v(0))?
        .first()
        .cloned()
        .unwrap_or(Value::Nil))
}

fn last(a: Args) -> FnResult {
    a.want(1)?;
    Ok(as_list("find last", &a.v(0))?
        .last()
        .cloned()
        .unwrap_or(Value::Nil))
}

fn rest(a: Args) -> FnResult {
    a.want(1)?;
    let l = as_list("find rest", &a.v(0))?;
    Ok(if l.is_empty() {
        Value::Nil
    } else {
        Value::list(l[1..].to_vec())
    })
}

fn initial(a: Args) -> FnResult {
    a.want(1)?;
    let l = as_list("find initial", &a.v(0))?;
    Ok(if l.is_empty() {
        Value::Nil
    } else {
        Value::list(l[..l.len() - 1].to_vec())
    })
}

fn append(a: Args) -> FnResult {
    a.want(2)?;
    let mut l = as_list("push", &a.v(0))?;
    l.push(a.v(1));
    Ok(Value::list(l))
}

fn prepend(a: Args) -> FnResult {
    a.want(2)?;
    let mut l = as_list("prepend", &a.v(0))?;
    l.insert(0, a.v(1));
    Ok(Value::list(l))
}

fn concat(a: Args) -> FnResult {
    let mut out = Vec::new();
    for x in &a.v {
        out.extend(as_list("concat", x)?);
    }
    Ok(Value::list(out))
}

fn reverse(a: Args) -> FnResult {
    a.want(1)?;
    let mut l = as_list("reverse", &a.v(0))?;
    l.reverse();
    Ok(Value::list(l))
}

fn uniq(a: Args) -> FnResult {
    a.want(1)?;
    let l = as_list("uniq", &a.v(0))?;
    let mut out: Vec<Value> = Vec::new();
    for x in l {
        if !out.iter().any(|y| deep_equal(y, &x)) {
            out.push(x);
        }
    }
    Ok(Value::list(out))
}

fn without(a: Args) -> FnResult {
    a.at_least(1)?;
    let l = as_list("without", &a.v(0))?;
    let omit = &a.v[1..];
    Ok(Value::list(
        l.into_iter()
            .filter(|x| !omit.iter().any(|o| deep_equal(o, x)))
            .collect(),
    ))
}

fn has(a: Args) -> FnResult {
    a.want(2)?;
    Ok(match a.v(1) {
        Value::Nil => Value::Bool(false),
        h => {
            let l = as_list("find has", &h)?;
            let needle = a.v(0);
            Value::Bool(l.iter().any(|x| deep_equal(x, &needle)))
        }
    })
}

fn compact(a: Args) -> FnResult {
    a.want(1)?;
    let l = as_list("compact", &a.v(0))?;
    Ok(Value::list(
        l.into_iter().filter(|x| !x.is_empty()).collect(),
    ))
}

fn as_list(name: &str, v: &Value) -> Result<Vec<Value>, FnError> {
    match v {
        Value::List(l) => Ok(l.to_vec()),
        Value::Obj(o) => match &**o {
            Obj::ApiVersions(l) => Ok(l.iter().map(|s| Value::str(s)).collect()),
            _ => Err(call_err(format!("Cannot {name} on type {}", v.type_name()))),
        },
        Value::Nil => Err(call_err(format!("Cannot {name} on type <nil>"))),
        v => Err(call_err(format!("Cannot {name} on type {}", v.type_name()))),
    }
}
