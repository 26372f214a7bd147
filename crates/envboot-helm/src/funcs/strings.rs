//! Sprig's string functions.

use std::collections::BTreeMap;

use super::crypto::rand_below;
use super::{call_err, Args, Registry};
use crate::exec::{Engine, FnError, FnResult, State};
use crate::value::{go_quote, strval, to_v, Obj, Value};

pub(super) fn register(r: &mut Registry) {
    r.pure("trim", trim);
    r.pure("trimAll", trim_all);
    r.pure("trimPrefix", trim_prefix);
    r.pure("trimSuffix", trim_suffix);
    r.pure("upper", upper);
    r.pure("lower", lower);
    r.pure("title", title);
    r.pure("untitle", untitle);
    r.pure("repeat", repeat);
    r.pure("substr", substr);
    r.pure("nospace", nospace);
    r.pure("trunc", trunc);
    r.pure("abbrev", abbrev);
    r.pure("initials", initials);
    r.pure("contains", contains);
    r.pure("hasPrefix", has_prefix);
    r.pure("hasSuffix", has_suffix);
    r.pure("quote", quote);
    r.pure("squote", squote);
    r.pure("cat", cat);
    r.pure("indent", indent);
    r.pure("nindent", indent);
    r.pure("replace", replace);
    r.pure("plural", plural);
    r.pure("snakecase", snakecase);
    r.pure("kebabcase", snakecase);
    r.pure("camelcase", camelcase);
    r.pure("swapcase", swapcase);
    r.engine("shuffle", shuffle);
    r.pure("wrap", wrap);
    r.pure("wrapWith", wrap);
    r.pure("toString", to_string);
    r.pure("toStrings", to_strings);
    r.pure("split", split);
    r.pure("splitList", split_list);
    r.pure("splitn", splitn);
    r.pure("join", join);
    r.pure("sortAlpha", sort_alpha);
    r.pure("abbrevboth", abbrevboth);
}

/// Sprig's `abbrevboth`: goutils' `AbbreviateFull` (over bytes, as Go's strings are), the
/// string unchanged where goutils would fail.
fn abbrevboth(a: Args) -> FnResult {
    a.want(3)?;
    let (left, right) = (a.i(0)?, a.i(1)?);
    let s = a.s(2)?;
    if right < 4 || (left > 0 && right < 7) {
        return Ok(Value::string(s));
    }
    Ok(Value::string(abbreviate_full(&s, left, right).unwrap_or(s)))
}

fn abbreviate_full(s: &str, offset: i64, max_width: i64) -> Option<String> {
    let b = s.as_bytes();
    let len = b.len() as i64;
    if b.is_empty() {
        return Some(String::new());
    }
    if max_width < 4 {
        return None;
    }
    if len <= max_width {
        return Some(s.to_string());
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    let text =
        |from: i64, to: i64| String::from_utf8_lossy(&b[from as usize..to as usize]).into_owned();
    if offset <= 4 {
        return Some(format!("{}...", text(0, max_width - 3)));
    }
    if max_width < 7 {
        return None;
    }
    if offset + max_width - 3 < len {
        let rest = text(offset, len);
        return Some(format!("...{}", abbreviate_full(&rest, 0, max_width - 3)?));
    }
    Some(format!("...{}", text(len - (max_width - 3), len)))
}

fn trim(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(
        a.s(0)?
            .trim_matches(|c: char| c.is_whitespace())
            .to_string(),
    ))
}

fn trim_all(a: Args) -> FnResult {
    a.want(2)?;
    let cut = a.s(0)?;
    Ok(Value::string(
        a.s(1)?.trim_matches(|c| cut.contains(c)).to_string(),
    ))
}

fn trim_prefix(a: Args) -> FnResult {
    a.want(2)?;
    let p = a.s(0)?;
    let s = a.s(1)?;
    Ok(Value::string(
        s.strip_prefix(p.as_str()).unwrap_or(&s).to_string(),
    ))
}

fn trim_suffix(a: Args) -> FnResult {
    a.want(2)?;
    let p = a.s(0)?;
    let s = a.s(1)?;
    Ok(Value::string(
        s.strip_suffix(p.as_str()).unwrap_or(&s).to_string(),
    ))
}

fn upper(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(a.s(0)?.to_uppercase()))
}

fn lower(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(a.s(0)?.to_lowercase()))
}

fn title(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(go_title(&a.s(0)?)))
}

fn untitle(a: Args) -> FnResult {
    a.want(1)?;
    let s = a.s(0)?;
    let mut out = String::new();
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep && c.is_alphabetic() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_sep = c.is_whitespace();
    }
    Ok(Value::string(out))
}

fn repeat(a: Args) -> FnResult {
    a.want(2)?;
    let s = a.s(1)?;
    let n = super::count_within_budget(repeat_count(a.i(0)?)?, s.len())?;
    Ok(Value::string(s.repeat(n)))
}

/// The count of Go's `strings.Repeat`, which panics on a negative one.
fn repeat_count(n: i64) -> Result<i64, FnError> {
    if n < 0 {
        return Err(call_err("strings: negative Repeat count"));
    }
    Ok(n)
}

/// Sprig's `substr`: `s[:end]` for a negative start, `s[start:]` for a negative end or one past
/// the string, else `s[start:end]`; bounds Go's slicing refuses are its runtime error.
fn substr(a: Args) -> FnResult {
    a.want(3)?;
    let (start, end) = (a.i(0)?, a.i(1)?);
    let s = a.s(2)?;
    let b = s.as_bytes();
    let len = b.len() as i64;
    let out_of_range =
        |what: String| call_err(format!("runtime error: slice bounds out of range {what}"));
    let r: &[u8] = if start < 0 {
        if end < 0 {
            return Err(out_of_range(format!("[:{end}]")));
        }
        if end > len {
            return Err(out_of_range(format!("[:{end}] with length {len}")));
        }
        &b[..end as usize]
    } else if end < 0 || end > len {
        if start > len {
            return Err(out_of_range(format!("[{start}:{len}]")));
        }
        &b[start as usize..]
    } else {
        if start > end {
            return Err(out_of_range(format!("[{start}:{end}]")));
        }
        &b[start as usize..end as usize]
    };
    Ok(Value::string(String::from_utf8_lossy(r).into_owned()))
}

fn nospace(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(
        a.s(0)?.chars().filter(|c| !c.is_whitespace()).collect(),
    ))
}

fn trunc(a: Args) -> FnResult {
    a.want(2)?;
    let c = a.i(0)?;
    let s = a.s(1)?;
    let l = s.len() as i64;
    let r = if c < 0 && l + c > 0 {
        s.get((l + c) as usize..).unwrap_or(&s).to_string()
    } else if c >= 0 && l > c {
        String::from_utf8_lossy(&s.as_bytes()[..c as usize]).into_owned()
    } else {
        s
    };
    Ok(Value::string(r))
}

fn abbrev(a: Args) -> FnResult {
    a.want(2)?;
    let w = a.i(0)?;
    let s = a.s(1)?;
    Ok(if w < 4 || s.chars().count() as i64 <= w {
        Value::string(s)
    } else {
        Value::string(format!(
            "{}...",
            s.chars().take((w - 3) as usize).collect::<String>()
        ))
    })
}

fn initials(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(
        a.s(0)?
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect(),
    ))
}

fn contains(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(a.s(1)?.contains(a.s(0)?.as_str())))
}

fn has_prefix(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(a.s(1)?.starts_with(a.s(0)?.as_str())))
}

fn has_suffix(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Bool(a.s(1)?.ends_with(a.s(0)?.as_str())))
}

fn quote(a: Args) -> FnResult {
    Ok(Value::string(
        a.v.iter()
            .filter(|x| !x.is_nil())
            .map(|x| go_quote(&strval(x)))
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

fn squote(a: Args) -> FnResult {
    Ok(Value::string(
        a.v.iter()
            .filter(|x| !x.is_nil())
            .map(|x| format!("'{}'", strval(x)))
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

fn cat(a: Args) -> FnResult {
    Ok(Value::string(
        a.v.iter()
            .filter(|x| !x.is_nil())
            .map(to_v)
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

fn indent(a: Args) -> FnResult {
    a.want(2)?;
    let s = a.s(1)?;
    let lines = s.bytes().filter(|&b| b == b'\n').count() + 1;
    let width = super::count_within_budget(repeat_count(a.i(0)?)?, lines)?;
    super::within_budget(width.saturating_mul(lines).saturating_add(s.len()), 0)?;
    let pad = " ".repeat(width);
    let body = format!("{pad}{}", s.replace('\n', &format!("\n{pad}")));
    Ok(Value::string(if a.name == "nindent" {
        format!("\n{body}")
    } else {
        body
    }))
}

fn replace(a: Args) -> FnResult {
    a.want(3)?;
    let (old, new, s) = (a.s(0)?, a.s(1)?, a.s(2)?);
    if new.len() > old.len() {
        // an empty `old` matches before every character and at the end
        let n = if old.is_empty() {
            s.chars().count() + 1
        } else {
            s.matches(old.as_str()).count()
        };
        super::within_budget(s.len() + n.saturating_mul(new.len() - old.len()), 0)?;
    }
    Ok(Value::string(go_replace(&s, &old, &new)))
}

fn plural(a: Args) -> FnResult {
    a.want(3)?;
    let c = a.i(2)?;
    Ok(if c == 1 {
        Value::string(a.s(0)?)
    } else {
        Value::string(a.s(1)?)
    })
}

fn snakecase(a: Args) -> FnResult {
    a.want(1)?;
    let connector = if a.name == "snakecase" { '_' } else { '-' };
    Ok(Value::string(super::case::to_lower_case(
        &a.s(0)?,
        connector,
    )))
}

fn camelcase(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(super::case::to_pascal_case(&a.s(0)?)))
}

fn swapcase(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(super::case::swap_case(&a.s(0)?)))
}

fn shuffle(eng: &mut Engine, _st: &State, a: Args) -> FnResult {
    a.want(1)?;
    let mut c: Vec<char> = a.s(0)?.chars().collect();
    for i in (1..c.len()).rev() {
        let j = rand_below(eng, i as u64 + 1) as usize;
        c.swap(i, j);
    }
    Ok(Value::string(c.into_iter().collect()))
}

fn wrap(a: Args) -> FnResult {
    // Sprig: wrap is goutils' Wrap (long words kept whole), wrapWith its WrapCustom with long
    // words cut
    let (w, sep, s, long_words) = if a.name == "wrap" {
        a.want(2)?;
        (a.i(0)?, String::new(), a.s(1)?, false)
    } else {
        a.want(3)?;
        (a.i(0)?, a.s(1)?, a.s(2)?, true)
    };
    Ok(Value::string(word_wrap(&s, w, &sep, long_words)))
}

fn to_string(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(strval(&a.v(0))))
}

fn to_strings(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::list(
        strslice(&a.v(0)).into_iter().map(Value::string).collect(),
    ))
}

fn split(a: Args) -> FnResult {
    a.want(2)?;
    let (sep, s) = (a.s(0)?, a.s(1)?);
    let m: BTreeMap<String, Value> = go_split(&s, &sep)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (format!("_{i}"), Value::string(p)))
        .collect();
    Ok(Value::map(m))
}

fn split_list(a: Args) -> FnResult {
    a.want(2)?;
    let (sep, s) = (a.s(0)?, a.s(1)?);
    Ok(Value::list(
        go_split(&s, &sep).into_iter().map(Value::string).collect(),
    ))
}

fn splitn(a: Args) -> FnResult {
    a.want(3)?;
    let sep = a.s(0)?;
    let cnt = a.i(1)?;
    let s = a.s(2)?;
    let parts: Vec<String> = if cnt < 0 {
        go_split(&s, &sep)
    } else {
        s.splitn(cnt as usize, sep.as_str())
            .map(String::from)
            .collect()
    };
    Ok(Value::map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::string(p)))
            .collect(),
    ))
}

fn join(a: Args) -> FnResult {
    a.want(2)?;
    let sep = a.s(0)?;
    Ok(Value::string(strslice(&a.v(1)).join(&sep)))
}

fn sort_alpha(a: Args) -> FnResult {
    a.want(1)?;
    // Sprig: what is not a list is a list of its one string (nil's is `<nil>`)
    let mut l = match a.v(0) {
        Value::Nil => vec!["<nil>".to_string()],
        v => strslice(&v),
    };
    l.sort();
    Ok(Value::list(l.into_iter().map(Value::string).collect()))
}

/// sprig's `strslice`.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l.iter().filter(|x| !x.is_nil()).map(strval).collect(),
        Value::Nil => Vec::new(),
        Value::Obj(o) => match &**o {
            Obj::ApiVersions(l) => l.to_vec(),
            _ => vec![strval(v)],
        },
        v => vec![strval(v)],
    }
}

/// go's `strings.Title` (deprecated but what sprig uses).
fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Go's `strings.Split` (an empty separator splits into UTF-8 characters).
fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(|c| c.to_string()).collect();
    }
    s.split(sep).map(String::from).collect()
}

/// Go's `strings.Replace(s, old, new, -1)`.
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

/// goutils' `WrapCustom` (Apache Commons' `WordUtils.wrap`), over bytes as Go's strings are:
/// lines break at the last space within `width`; a word longer than that is cut
/// (`long_words`) or left whole up to the next space.
fn word_wrap(s: &str, width: i64, newline: &str, long_words: bool) -> String {
    let str_ = s.as_bytes();
    if str_.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline }.as_bytes();
    let width = usize::try_from(width.max(1)).unwrap_or(usize::MAX);
    let len = str_.len();
    let mut offset = 0;
    let mut out: Vec<u8> = Vec::with_capacity(len);
    while len - offset > width {
        if str_[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(len);
        match str_[offset..end].iter().rposition(|&c| c == b' ') {
            Some(space) => {
                out.extend_from_slice(&str_[offset..offset + space]);
                out.extend_from_slice(newline);
                offset += space + 1;
            }
            None if long_words => {
                out.extend_from_slice(&str_[offset..offset + width]);
                out.extend_from_slice(newline);
                offset += width;
            }
            None => {
                let end = offset + width;
                match str_[end..].iter().position(|&c| c == b' ') {
                    None => {
                        out.extend_from_slice(&str_[offset..]);
                        offset = len;
                    }
                    Some(index) => {
                        out.extend_from_slice(&str_[offset..end + index]);
                        out.extend_from_slice(newline);
                        offset = end + index + 1;
                    }
                }
            }
        }
    }
    out.extend_from_slice(&str_[offset..]);
    String::from_utf8_lossy(&out).into_owned()
}
