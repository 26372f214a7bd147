//! `--set` / `--set-string` parsing as Helm's strvals: `a.b=c,list[0]=x,arr={a,b}`.

use std::collections::BTreeMap;

use super::value::Value;

/// Helm's `typedVal`: booleans, null, and base-10 integers without a leading zero are typed.
fn typed(v: &str, string_only: bool) -> Value {
    if string_only {
        return Value::str(v);
    }
    if v.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if v.eq_ignore_ascii_case("null") {
        return Value::Nil;
    }
    if v == "0" {
        return Value::Int(0);
    }
    if !v.is_empty() && !v.starts_with('0') {
        if let Ok(i) = v.parse::<i64>() {
            return Value::Int(i);
        }
    }
    Value::str(v)
}

/// Split at unescaped `sep` outside `{...}`, keeping escapes for the next stage.
fn split_top(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth -= 1;
                cur.push(c);
            }
            c if c == sep && depth == 0 => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

enum Seg {
    Key(String),
    Index(usize),
}

fn parse_key(k: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = k.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
                let mut idx = String::new();
                for d in chars.by_ref() {
                    if d == ']' {
                        break;
                    }
                    idx.push(d);
                }
                let i: usize = idx
                    .parse()
                    .map_err(|_| format!("key {k:?} has an invalid index {idx:?}"))?;
                if i > 65536 {
                    return Err(format!(
                        "index of {i} is greater than maximum supported index 65536"
                    ));
                }
                segs.push(Seg::Index(i));
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segs.push(Seg::Key(cur));
    }
    if segs.is_empty() {
        return Err(format!("key {k:?} has no value"));
    }
    Ok(segs)
}

fn set_path(cur: Value, segs: &[Seg], val: Value) -> Value {
    crate::stack::deep(|| set_path_inner(cur, segs, val))
}

fn set_path_inner(cur: Value, segs: &[Seg], val: Value) -> Value {
    let Some((first, rest)) = segs.split_first() else {
        return val;
    };
    match first {
        Seg::Key(k) => {
            let m = match &cur {
                Value::Map(m) => m.clone(),
                _ => match Value::empty_map() {
                    Value::Map(m) => m,
                    _ => return cur,
                },
            };
            let existing = m.borrow().get(k).cloned().unwrap_or(Value::Nil);
            let nv = if rest.is_empty() {
                val
            } else {
                set_path(existing, rest, val)
            };
            m.borrow_mut().insert(k.clone(), nv);
            Value::Map(m)
        }
        Seg::Index(i) => {
            let mut l = match &cur {
                Value::List(l) => l.to_vec(),
                _ => Vec::new(),
            };
            while l.len() <= *i {
                l.push(Value::Nil);
            }
            let existing = l[*i].clone();
            l[*i] = if rest.is_empty() {
                val
            } else {
                set_path(existing, rest, val)
            };
            Value::list(l)
        }
    }
}

/// Apply one `--set` argument to `values` (a map) in place.
pub fn parse_into(s: &str, values: &Value, string_only: bool) -> Result<(), String> {
    let Value::Map(root) = values else {
        return Err("values are not a map".into());
    };
    for part in split_top(s, ',') {
        if part.is_empty() {
            continue;
        }
        let kv = split_top(&part, '=');
        if kv.len() < 2 {
            return Err(format!("key {:?} has no value", unescape(&part)));
        }
        let key = &kv[0];
        let raw = kv[1..].join("=");
        let val = if raw.starts_with('{') && raw.ends_with('}') && !string_only {
            let inner = &raw[1..raw.len() - 1];
            Value::list(
                split_top(inner, ',')
                    .iter()
                    .filter(|x| !x.is_empty())
                    .map(|x| typed(&unescape(x), false))
                    .collect(),
            )
        } else {
            typed(&unescape(&raw), string_only)
        };
        let segs = parse_key(key)?;
        let updated = set_path(Value::Map(root.clone()), &segs, val);
        if let Value::Map(m) = updated {
            if !std::rc::Rc::ptr_eq(&m, root) {
                let inner: BTreeMap<String, Value> = m.borrow().clone();
                *root.borrow_mut() = inner;
            }
        }
    }
    Ok(())
}
