//! Go's text/template builtins: `and`, `or`, `not`, `len`, `index`, `slice`, `print*`,
//! the escapers (`html`, `js`, `urlquery`), the comparisons (`eq` ... `ge`) and `call`.

use super::math::to_i64;
use super::{call_err, Args, Func, Registry};
use crate::exec::{FnError, FnResult};
use crate::gofmt;
use crate::value::{Obj, Value};

pub(super) fn register(r: &mut Registry) {
    r.add("and", Func::And);
    r.add("or", Func::Or);
    r.pure("not", not_);
    r.pure("len", len);
    r.pure("index", index);
    r.pure("slice", slice);
    r.pure("print", print);
    r.pure("println", println);
    r.pure("printf", printf);
    r.pure("html", html);
    r.pure("js", js);
    r.pure("urlquery", urlquery);
    r.pure("eq", eq);
    r.pure("ne", ne);
    r.pure("lt", lt);
    r.pure("le", le);
    r.pure("gt", gt);
    r.pure("ge", ge);
    r.pure("call", call);
}

fn not_(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Bool(!a.v(0).truthy()))
}

fn len(a: Args) -> FnResult {
    a.want(1)?;
    Ok(match a.v(0) {
        Value::Str(s) => Value::Int(s.len() as i64),
        Value::List(l) => Value::Int(l.len() as i64),
        Value::Map(m) => Value::Int(m.borrow().len() as i64),
        Value::Nil => return Err(call_err("len of nil pointer")),
        Value::Obj(o) => match &*o {
            Obj::Files(f) => Value::Int(f.len() as i64),
            Obj::ApiVersions(v) => Value::Int(v.len() as i64),
            Obj::Bytes(b) => Value::Int(b.len() as i64),
            _ => return Err(call_err("len of type *common.KubeVersion")),
        },
        v => return Err(call_err(format!("len of type {}", v.type_name()))),
    })
}

fn index(a: Args) -> FnResult {
    a.at_least(1)?;
    let mut cur = a.v(0);
    for idx in &a.v[1..] {
        cur = match (&cur, idx) {
            (Value::Nil, _) => return Err(call_err("index of untyped nil")),
            (Value::Map(m), Value::Str(k)) => m.borrow().get(&**k).cloned().unwrap_or(Value::Nil),
            (Value::Map(_), Value::Nil) => Value::Nil,
            (Value::Map(_), k) => {
                return Err(call_err(format!(
                    "value has type {}; should be string",
                    k.type_name()
                )))
            }
            (Value::List(l), Value::Int(i)) => {
                if *i < 0 || *i as usize >= l.len() {
                    return Err(call_err(format!("index out of range: {i}")));
                }
                l[*i as usize].clone()
            }
            (Value::Str(s), Value::Int(i)) => {
                if *i < 0 || *i as usize >= s.len() {
                    return Err(call_err(format!("index out of range: {i}")));
                }
                Value::Int(s.as_bytes()[*i as usize] as i64)
            }
            (Value::List(_) | Value::Str(_), k) => {
                return Err(call_err(format!(
                    "cannot index slice/array with type {}",
                    k.type_name()
                )))
            }
            (c, _) => {
                return Err(call_err(format!(
                    "can't index item of type {}",
                    c.type_name()
                )))
            }
        };
    }
    Ok(cur)
}

pub(super) fn slice(a: Args) -> FnResult {
    a.at_least(1)?;
    let idx: Vec<i64> = a.v[1..].iter().map(to_i64).collect();
    Ok(match a.v(0) {
        Value::Str(s) => {
            let start = idx.first().copied().unwrap_or(0).max(0) as usize;
            let end = idx.get(1).copied().map(|e| e as usize).unwrap_or(s.len());
            if start > end || end > s.len() {
                return Err(call_err(format!("index out of range: {end}")));
            }
            Value::str(s.get(start..end).unwrap_or(""))
        }
        Value::List(l) => {
            let start = idx.first().copied().unwrap_or(0).max(0) as usize;
            let end = idx.get(1).copied().map(|e| e as usize).unwrap_or(l.len());
            if start > end || end > l.len() {
                return Err(call_err(format!("index out of range: {end}")));
            }
            Value::list(l[start..end].to_vec())
        }
        Value::Nil => return Err(call_err("slice of untyped nil")),
        v => {
            return Err(call_err(format!(
                "can't slice item of type {}",
                v.type_name()
            )))
        }
    })
}

fn print(a: Args) -> FnResult {
    Ok(Value::string(gofmt::sprint(&a.v)))
}

fn println(a: Args) -> FnResult {
    Ok(Value::string(gofmt::sprintln(&a.v)))
}

fn printf(a: Args) -> FnResult {
    a.at_least(1)?;
    let f = a.s(0)?;
    Ok(Value::string(gofmt::sprintf(&f, &a.v[1..])))
}

fn html(a: Args) -> FnResult {
    Ok(Value::string(html_escape(&eval_args_string(&a.v))))
}

fn js(a: Args) -> FnResult {
    Ok(Value::string(js_escape(&eval_args_string(&a.v))))
}

fn urlquery(a: Args) -> FnResult {
    Ok(Value::string(query_escape(&eval_args_string(&a.v))))
}

fn eq(a: Args) -> FnResult {
    let n = a.v.len();
    a.at_least(1)?;
    if n < 2 {
        return Err(call_err("missing argument for comparison"));
    }
    let first = a.v(0);
    let mut r = false;
    for b in &a.v[1..] {
        if go_eq(&first, b)? {
            r = true;
            break;
        }
    }
    Ok(Value::Bool(r))
}

fn ne(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(!go_eq(&a.v(0), &a.v(1))?))
}

fn lt(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(go_lt(&a.v(0), &a.v(1))?))
}

fn le(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(
        go_lt(&a.v(0), &a.v(1))? || go_eq(&a.v(0), &a.v(1))?,
    ))
}

fn gt(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(
        !(go_lt(&a.v(0), &a.v(1))? || go_eq(&a.v(0), &a.v(1))?),
    ))
}

fn ge(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(!go_lt(&a.v(0), &a.v(1))?))
}

fn call(_: Args) -> FnResult {
    Err(call_err("call of non-function"))
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, FnError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (Value::Nil, _) | (_, Value::Nil) => Err(call_err("invalid type for comparison")),
        (
            Value::Int(_) | Value::Float(_) | Value::Str(_),
            Value::Int(_) | Value::Float(_) | Value::Str(_),
        ) => Err(incompatible(a, b)),
        _ => Err(call_err("invalid type for comparison")),
    }
}

fn basic(v: &Value) -> Option<u8> {
    match v {
        Value::Bool(_) => Some(1),
        Value::Int(_) => Some(2),
        Value::Float(_) => Some(3),
        Value::Str(_) => Some(4),
        _ => None,
    }
}

/// Go's `eq` for two values.
fn go_eq(a: &Value, b: &Value) -> Result<bool, FnError> {
    let (ka, kb) = (basic(a), basic(b));
    if ka != kb {
        if !a.is_nil() && !b.is_nil() {
            return Err(incompatible(a, b));
        }
        return Ok(false);
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::Nil, Value::Nil) => Ok(true),
        // Go prints the value with %s
        _ => Err(call_err(format!(
            "non-comparable type {}: {}",
            gofmt::sprintf("%s", std::slice::from_ref(b)),
            b.type_name()
        ))),
    }
}

/// Go's error for values of two kinds compared: it names both types.
fn incompatible(a: &Value, b: &Value) -> FnError {
    call_err(format!(
        "incompatible types for comparison: {} and {}",
        a.type_name(),
        b.type_name()
    ))
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\'' => o.push_str("&#39;"),
            '"' => o.push_str("&#34;"),
            '\0' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04X}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            b => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

/// text/template's `evalArgs`: one string as it is, else `fmt.Sprint` of the arguments with a
/// missing value printed as `<no value>`.
fn eval_args_string(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::str("<no value>"),
            a => a.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}
