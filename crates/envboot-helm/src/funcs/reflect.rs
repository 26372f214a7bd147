//! Defaults, emptiness, types and kinds: `default`, `empty`, `coalesce`, `ternary`, `typeOf`,
//! `kindIs`, `deepEqual`, ...

use super::{Args, Registry};
use crate::exec::FnResult;
use crate::value::{deep_equal, Value};

pub(super) fn register(r: &mut Registry) {
    r.pure("empty", empty);
    r.pure("coalesce", coalesce);
    r.pure("all", all);
    r.pure("any", any);
    r.pure("ternary", ternary);
    r.pure("default", default_);
    r.pure("typeOf", type_of);
    r.pure("typeIs", type_is);
    r.pure("typeIsLike", type_is_like);
    r.pure("kindOf", kind_of);
    r.pure("kindIs", kind_is);
    r.pure("deepEqual", deep_eq);
}

fn empty(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Bool(a.v(0).is_empty()))
}

fn coalesce(a: Args) -> FnResult {
    Ok(a.v
        .iter()
        .find(|x| !x.is_empty())
        .cloned()
        .unwrap_or(Value::Nil))
}

fn all(a: Args) -> FnResult {
    Ok(Value::Bool(a.v.iter().all(|x| !x.is_empty())))
}

fn any(a: Args) -> FnResult {
    Ok(Value::Bool(a.v.iter().any(|x| !x.is_empty())))
}

fn ternary(a: Args) -> FnResult {
    a.want(3)?;
    Ok(if a.b(2)? { a.v(0) } else { a.v(1) })
}

fn default_(a: Args) -> FnResult {
    let n = a.v.len();
    a.at_least(1)?;
    let given = a.v(1);
    Ok(if n < 2 || given.is_empty() {
        a.v(0)
    } else {
        given
    })
}

fn type_of(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::str(a.v(0).type_name()))
}

fn type_is(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(a.s(0)? == a.v(1).type_name()))
}

fn type_is_like(a: Args) -> FnResult {
    a.want(2)?;
    let t = a.s(0)?;
    let tn = a.v(1).type_name();
    Ok(Value::Bool(t == tn || t == format!("*{tn}")))
}

fn kind_of(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::str(a.v(0).kind_name()))
}

fn kind_is(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(a.s(0)? == a.v(1).kind_name()))
}

fn deep_eq(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(deep_equal(&a.v(0), &a.v(1))))
}
