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
    Ok(Value::string(match s.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => s[..i].to_string(),
        None => ".".into(),
    }))
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
    Ok(Value::string(a.s(0)?))
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
