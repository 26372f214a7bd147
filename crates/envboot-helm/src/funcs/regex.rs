//! Sprig's regular expression functions (`regexMatch`, `mustRegexFind`, ...).

use super::{call_err, Args, Registry};
use crate::exec::{FnError, FnResult};
use crate::value::Value;

pub(super) fn register(r: &mut Registry) {
    r.pure("regexMatch", regex_match);
    r.pure("mustRegexMatch", regex_match);
    r.pure("regexFind", regex_find);
    r.pure("mustRegexFind", regex_find);
    r.pure("regexFindAll", regex_find_all);
    r.pure("mustRegexFindAll", regex_find_all);
    r.pure("regexReplaceAll", regex_replace_all);
    r.pure("mustRegexReplaceAll", regex_replace_all);
    r.pure("regexReplaceAllLiteral", regex_replace_all_literal);
    r.pure("mustRegexReplaceAllLiteral", regex_replace_all_literal);
    r.pure("regexSplit", regex_split);
    r.pure("mustRegexSplit", regex_split);
    r.pure("regexQuoteMeta", regex_quote_meta);
}

fn regex_match(a: Args) -> FnResult {
    a.want(2)?;
    let re = a.s(0)?;
    Ok(match compile(&re) {
        Ok(r) => Value::Bool(r.is_match(&a.s(1)?)),
        Err(e) if a.name.starts_with("must") => {
            return Err(call_err(format!("error parsing regexp: {e}")))
        }
        Err(_) => Value::Bool(false),
    })
}

fn regex_find(a: Args) -> FnResult {
    a.want(2)?;
    let r = regex(&a.s(0)?)?;
    let s = a.s(1)?;
    Ok(Value::string(
        r.find(&s)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
    ))
}

fn regex_find_all(a: Args) -> FnResult {
    a.want(3)?;
    let r = regex(&a.s(0)?)?;
    let s = a.s(1)?;
    let lim = a.i(2)?;
    let it = r.find_iter(&s).map(|m| Value::str(m.as_str()));
    let v: Vec<Value> = if lim < 0 {
        it.collect()
    } else {
        it.take(lim as usize).collect()
    };
    Ok(Value::list(v))
}

fn regex_replace_all(a: Args) -> FnResult {
    a.want(3)?;
    let r = regex(&a.s(0)?)?;
    Ok(Value::string(
        r.replace_all(&a.s(1)?, a.s(2)?.as_str()).into_owned(),
    ))
}

fn regex_replace_all_literal(a: Args) -> FnResult {
    a.want(3)?;
    let r = regex(&a.s(0)?)?;
    Ok(Value::string(
        r.replace_all(&a.s(1)?, regex::NoExpand(&a.s(2)?))
            .into_owned(),
    ))
}

fn regex_split(a: Args) -> FnResult {
    a.want(3)?;
    let r = regex(&a.s(0)?)?;
    let s = a.s(1)?;
    let lim = a.i(2)?;
    Ok(Value::list(
        go_split(&r, &s, lim).into_iter().map(Value::str).collect(),
    ))
}

/// Go's `Regexp.Split`: an empty match at the very start yields no empty first piece, and a
/// count of pieces (`n > 0`) leaves the rest unsplit in the last.
fn go_split<'s>(r: &regex::Regex, s: &'s str, n: i64) -> Vec<&'s str> {
    if n == 0 {
        return Vec::new();
    }
    if !r.as_str().is_empty() && s.is_empty() {
        return vec![""];
    }
    let mut out = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in r.find_iter(s) {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            out.push(&s[beg..end]);
        }
        beg = m.end();
    }
    if end != s.len() {
        out.push(&s[beg..]);
    }
    out
}

fn regex_quote_meta(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(regex::escape(&a.s(0)?)))
}

fn regex(re: &str) -> Result<regex::Regex, FnError> {
    compile(re).map_err(|e| call_err(format!("error parsing regexp: {e}")))
}

/// The most patterns kept compiled: charts use a handful, called once per object.
const CACHED_PATTERNS: usize = 256;

thread_local! {
    static COMPILED: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A Go pattern compiled, once per pattern and thread: Go compiles it at every call, which
/// changes nothing but the time (a `regex::Regex` is immutable and cheap to clone).
fn compile(re: &str) -> Result<regex::Regex, regex::Error> {
    if let Some(r) = COMPILED.with(|c| c.borrow().get(re).cloned()) {
        return Ok(r);
    }
    let r = regex::Regex::new(&go_regex(re))?;
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHED_PATTERNS {
            c.clear();
        }
        c.insert(re.to_string(), r.clone());
    });
    Ok(r)
}

/// A Go (RE2) pattern in the `regex` crate's syntax: Go's `\d`, `\w`, `\s` (and their
/// negations) are ASCII-only, and in a class a `-` after such an escape (`[\w-\.]`) is a
/// literal `-`, where the `regex` crate rejects the pattern.
pub(crate) fn go_regex(re: &str) -> String {
    let class_of = |c: char| match c {
        'd' => Some("0-9"),
        'w' => Some("0-9A-Za-z_"),
        's' => Some("\\t\\n\\f\\r "),
        _ => None,
    };
    let mut out = String::with_capacity(re.len() + 8);
    let chars: Vec<char> = re.chars().collect();
    let mut in_class = false;
    // the previous item in a class was a class escape (so a following `-` is literal)
    let mut after_class_escape = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&n) = chars.get(i + 1) else {
                out.push(c);
                break;
            };
            let lower = n.to_ascii_lowercase();
            if let Some(set) = class_of(lower) {
                let neg = n.is_ascii_uppercase();
                match (in_class, neg) {
                    (false, false) => out.push_str(&format!("[{set}]")),
                    (false, true) => out.push_str(&format!("[^{set}]")),
                    (true, false) => out.push_str(set),
                    (true, true) => out.push_str(&format!("[^{set}]")),
                }
                after_class_escape = in_class;
                i += 2;
                continue;
            }
            out.push(c);
            out.push(n);
            after_class_escape = false;
            i += 2;
            continue;
        }
        if in_class {
            if c == '-' && after_class_escape && chars.get(i + 1) != Some(&']') {
                out.push_str("\\-");
                after_class_escape = false;
                i += 1;
                continue;
            }
            if c == '[' && chars.get(i + 1) == Some(&':') {
                // [:alpha:]
                if let Some(end) = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == ':' && chars[j + 1] == ']')
                {
                    out.extend(&chars[i..end + 2]);
                    after_class_escape = true;
                    i = end + 2;
                    continue;
                }
            }
            if c == '[' {
                // a literal `[` inside a class
                out.push_str("\\[");
                after_class_escape = false;
                i += 1;
                continue;
            }
            if c == ']' {
                in_class = false;
            }
            after_class_escape = false;
            out.push(c);
            i += 1;
            continue;
        }
        out.push(c);
        if c == '[' {
            in_class = true;
            after_class_escape = false;
            // `[]a]` and `[^]a]`: a `]` first is literal
            if chars.get(i + 1) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            if chars.get(i + 1) == Some(&']') {
                out.push_str("\\]");
                i += 1;
            }
        }
        i += 1;
    }
    out
}
