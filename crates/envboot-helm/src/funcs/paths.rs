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
    r.pure("urlParse", url_parse);
    r.pure("urlJoin", url_join);
    r.unsupported(&["getHostByName"]);
}

/// Go's `net/url` escaping modes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    UserPassword,
    Host,
    Fragment,
}

/// Go's `shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if mode == Mode::Host && b"!$&'()*+,;=:[]<>\"".contains(&c) {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => return false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => {
            return match mode {
                Mode::Path => c == b'?',
                Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
                Mode::Fragment => false,
                Mode::Host => true,
            }
        }
        _ => {}
    }
    !(mode == Mode::Fragment && matches!(c, b'!' | b'(' | b')' | b'*'))
}

/// Go's `url.escape`.
fn escape(s: &str, mode: Mode) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if should_escape(c, mode) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(c as char);
        }
    }
    out
}

/// Go's `url.unescape` (no `+` to space, as for paths): the bytes, or the bad escape.
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) if hex.is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit())) => {
                    out.push(v);
                    i += 3;
                }
                _ => {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape \"{bad}\""));
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// What Go's `url.Parse` finds in a URL, as Sprig's `urlParse` reports it.
#[derive(Default)]
struct Url {
    scheme: String,
    opaque: String,
    userinfo: String,
    host: String,
    path: String,
    query: String,
    fragment: String,
}

fn parse_url(raw: &str) -> Result<Url, String> {
    let fail = |e: String| format!("parse \"{raw}\": {e}");
    if raw.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err(fail("net/url: invalid control character in URL".into()));
    }
    let mut u = Url::default();
    let (rest, frag) = raw.split_once('#').unwrap_or((raw, ""));
    u.fragment = unescape(frag).map_err(fail)?;
    // the scheme: a letter, then letters, digits, `+`, `-`, `.`, up to `:`
    let mut rest = rest;
    for (i, c) in rest.char_indices() {
        match c {
            c if c.is_ascii_alphabetic() => {}
            c if (c.is_ascii_digit() || "+-.".contains(c)) && i > 0 => {}
            ':' if i == 0 => return Err(fail("missing protocol scheme".into())),
            ':' => {
                u.scheme = rest[..i].to_ascii_lowercase();
                rest = &rest[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    u.query = query.to_string();
    let mut rest = before_query;
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if !rest.starts_with('/') {
        if let Some(segment) = rest.split('/').next() {
            if segment.contains(':') {
                return Err(fail(
                    "first path segment in URL cannot contain colon".into(),
                ));
            }
        }
    }
    if rest.starts_with("//") && (!u.scheme.is_empty() || !rest.starts_with("///")) {
        let after = &rest[2..];
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        rest = &after[end..];
        let host = match authority.rfind('@') {
            Some(i) => {
                let info = &authority[..i];
                let (user, password) = match info.split_once(':') {
                    Some((n, p)) => (unescape(n).map_err(fail)?, Some(unescape(p).map_err(fail)?)),
                    None => (unescape(info).map_err(fail)?, None),
                };
                u.userinfo = escape(&user, Mode::UserPassword);
                if let Some(p) = password {
                    u.userinfo.push(':');
                    u.userinfo.push_str(&escape(&p, Mode::UserPassword));
                }
                &authority[i + 1..]
            }
            None => authority,
        };
        u.host = unescape(host).map_err(fail)?;
    }
    u.path = unescape(rest).map_err(fail)?;
    Ok(u)
}

/// Go's `URL.Hostname`: the host without its port or an IPv6 address's brackets.
fn hostname(host: &str) -> &str {
    let mut h = host;
    if let Some(colon) = h.rfind(':') {
        let port = &h[colon + 1..];
        // a port after a bracketed IPv6 address, or after a name
        let bracketed_inside = h.starts_with('[') && !h[..colon].ends_with(']');
        if port.bytes().all(|c| c.is_ascii_digit()) && !bracketed_inside {
            h = &h[..colon];
        }
    }
    h.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h)
}

/// Sprig's `urlParse`.
fn url_parse(a: Args) -> FnResult {
    a.want(1)?;
    let raw = a.s(0)?;
    let u = parse_url(&raw).map_err(|e| super::call_err(format!("unable to parse url: {e}")))?;
    let mut m = std::collections::BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        m.insert(k.to_string(), Value::str(v));
    };
    put("scheme", &u.scheme);
    put("host", &u.host);
    put("hostname", hostname(&u.host));
    put("path", &u.path);
    put("query", &u.query);
    put("opaque", &u.opaque);
    put("fragment", &u.fragment);
    put("userinfo", &u.userinfo);
    Ok(Value::map(m))
}

/// Sprig's `urlJoin`: Go's `URL.String` of the parts.
fn url_join(a: Args) -> FnResult {
    a.want(1)?;
    let Value::Map(d) = a.v(0) else {
        return Err(a.wrong(0, "map[string]interface {}"));
    };
    let d = d.borrow();
    let get = |k: &str| -> Result<String, crate::exec::FnError> {
        match d.get(k) {
            None => Ok(String::new()),
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(v) => Err(super::call_err(format!(
                "interface conversion: interface {{}} is {}, not string",
                v.type_name()
            ))),
        }
    };
    let (scheme, host, path, query, opaque, fragment, userinfo) = (
        get("scheme")?,
        get("host")?,
        get("path")?,
        get("query")?,
        get("opaque")?,
        get("fragment")?,
        get("userinfo")?,
    );
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    if !opaque.is_empty() {
        out.push_str(&opaque);
    } else {
        let user = !userinfo.is_empty();
        if !scheme.is_empty() || !host.is_empty() || user {
            if !host.is_empty() || !path.is_empty() || user {
                out.push_str("//");
            }
            if user {
                // Sprig reparses it (`proto://USERINFO@host`): the escaped form comes back
                let u = parse_url(&format!("proto://{userinfo}@host"))
                    .map_err(|e| super::call_err(format!("unable to parse url: {e}")))?;
                out.push_str(&u.userinfo);
                out.push('@');
            }
            out.push_str(&escape(&host, Mode::Host));
        }
        let path = escape(&path, Mode::Path);
        if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        if out.is_empty() && path.split('/').next().is_some_and(|s| s.contains(':')) {
            out.push_str("./");
        }
        out.push_str(&path);
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&escape(&fragment, Mode::Fragment));
    }
    Ok(Value::string(out))
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
