//! File paths (`base`, `dir`, `ext`, ... and their `os*` forms), URLs and network.

use super::{Args, Registry};
use crate::exec::FnResult;
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    r.pure("base", base);
    r.pure("osBase", base);
    r.pure("dir", dir);
    r.pure("osDir", dir);
    r.pure("ext", ext);
    r.pure("osExt", ext);
    r.pure("clean", clean);
    r.pure("osClean", clean);
    r.pure("isAbs", is_abs);
    r.pure("osIsAbs", is_abs);
    r.unsupported(&["urlParse", "urlJoin", "getHostByName"]);
}

fn base(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(path_base(&a.s(0)?)))
}

fn dir(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    // Go's path.Dir: Clean of everything before the last slash
    let head = match s.rfind('/') {
        Some(i) => &s[..=i],
        None => "",
    };
    Ok(Value::string(go_clean(head)))
}

fn ext(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    let base = s.rsplit('/').next().unwrap_or(&s);
    Ok(Value::string(
        base.rfind('.')
            .map(|i| base[i..].to_string())
            .unwrap_or_default(),
    ))
}

fn clean(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(go_clean(&a.s(0)?)))
}

/// Go's `path.Clean`: the shortest equivalent path, by lexical processing.
pub(super) fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

fn is_abs(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Bool(a.s(0)?.starts_with('/')))
}

pub(super) fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}
