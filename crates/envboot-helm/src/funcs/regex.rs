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
    Ok(match regex::Regex::new(&re) {
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
    let v: Vec<Value> = if lim < 0 {
        r.split(&s).map(Value::str).collect()
    } else {
        r.splitn(&s, lim as usize).map(Value::str).collect()
    };
    Ok(Value::list(v))
}

fn regex_quote_meta(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::string(regex::escape(&a.s(0)?)))
}

fn regex(re: &str) -> Result<regex::Regex, FnError> {
    regex::Regex::new(re).map_err(|e| call_err(format!("error parsing regexp: {e}")))
}
