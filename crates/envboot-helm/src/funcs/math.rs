//! Sprig's number conversions and integer and float arithmetic, and the sequences (`until`,
//! `untilStep`, `seq`).

use super::{call_err, Args, Registry};
use crate::exec::{FnError, FnResult};
use crate::value::{strval, Value};
use crate::yaml;

pub(super) fn register(r: &mut Registry) {
    r.pure("atoi", atoi);
    r.pure("int", int);
    r.pure("int64", int);
    r.pure("float64", float64);
    r.pure("toDecimal", to_decimal);
    r.pure("add", add);
    r.pure("add1", add1);
    r.pure("sub", sub);
    r.pure("mul", mul);
    r.pure("div", div);
    r.pure("mod", div);
    r.pure("max", max);
    r.pure("min", max);
    r.pure("addf", addf);
    r.pure("add1f", add1f);
    r.pure("subf", subf);
    r.pure("mulf", mulf);
    r.pure("divf", divf);
    r.pure("maxf", maxf);
    r.pure("minf", minf);
    r.pure("floor", floor);
    r.pure("ceil", ceil);
    r.pure("round", round);
    r.pure("until", until);
    r.pure("untilStep", until_step);
    r.pure("seq", seq);
}

fn atoi(a: Args) -> FnResult {
    a.want(1)?;
    // Go's strconv.Atoi: out of range gives the nearest int (and an error Sprig ignores)
    let s = a.s(0)?;
    Ok(Value::Int(match s.parse::<i64>() {
        Ok(i) => i,
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => i64::MAX,
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::NegOverflow) => i64::MIN,
        Err(_) => 0,
    }))
}

fn int(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Int(to_i64(&a.v(0))))
}

fn float64(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Float(to_f64(&a.v(0))))
}

fn to_decimal(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Int(
        i64::from_str_radix(&strval(&a.v(0)), 8).unwrap_or(0),
    ))
}

fn add(a: Args) -> FnResult {
    Ok(Value::Int(
        a.v.iter().map(to_i64).fold(0i64, |x, y| x.wrapping_add(y)),
    ))
}

fn add1(a: Args) -> FnResult {
    a.want(1)?;
    Ok(Value::Int(to_i64(&a.v(0)).wrapping_add(1)))
}

fn sub(a: Args) -> FnResult {
    a.want(2)?;
    Ok(Value::Int(to_i64(&a.v(0)).wrapping_sub(to_i64(&a.v(1)))))
}

fn mul(a: Args) -> FnResult {
    a.at_least(1)?;
    Ok(Value::Int(
        a.v.iter().map(to_i64).fold(1i64, |x, y| x.wrapping_mul(y)),
    ))
}

fn div(a: Args) -> FnResult {
    a.want(2)?;
    let d = to_i64(&a.v(1));
    if d == 0 {
        return Err(call_err("runtime error: integer divide by zero"));
    }
    let x = to_i64(&a.v(0));
    Ok(Value::Int(if a.name == "div" {
        x.wrapping_div(d)
    } else {
        x.wrapping_rem(d)
    }))
}

fn max(a: Args) -> FnResult {
    a.at_least(1)?;
    let it = a.v.iter().map(to_i64);
    Ok(Value::Int(if a.name == "max" {
        it.max().unwrap_or(0)
    } else {
        it.min().unwrap_or(0)
    }))
}

fn addf(a: Args) -> FnResult {
    Ok(Value::Float(a.v.iter().map(to_f64).sum()))
}

fn add1f(a: Args) -> FnResult {
    Ok(Value::Float(to_f64(&a.v(0)) + 1.0))
}

fn subf(a: Args) -> FnResult {
    a.at_least(1)?;
    Ok(Value::Float(
        a.v[1..]
            .iter()
            .map(to_f64)
            .fold(to_f64(&a.v(0)), |x, y| x - y),
    ))
}

fn mulf(a: Args) -> FnResult {
    Ok(Value::Float(a.v.iter().map(to_f64).product()))
}

fn divf(a: Args) -> FnResult {
    a.at_least(1)?;
    Ok(Value::Float(
        a.v[1..]
            .iter()
            .map(to_f64)
            .fold(to_f64(&a.v(0)), |x, y| x / y),
    ))
}

fn maxf(a: Args) -> FnResult {
    a.at_least(1)?;
    Ok(Value::Float(
        a.v.iter().map(to_f64).fold(f64::NEG_INFINITY, f64::max),
    ))
}

fn minf(a: Args) -> FnResult {
    a.at_least(1)?;
    Ok(Value::Float(
        a.v.iter().map(to_f64).fold(f64::INFINITY, f64::min),
    ))
}

fn floor(a: Args) -> FnResult {
    Ok(Value::Float(to_f64(&a.v(0)).floor()))
}

fn ceil(a: Args) -> FnResult {
    Ok(Value::Float(to_f64(&a.v(0)).ceil()))
}

fn round(a: Args) -> FnResult {
    let n = a.v.len();
    a.at_least(2)?;
    let p = to_i64(&a.v(1));
    let ro = if n > 2 { to_f64(&a.v(2)) } else { 0.5 };
    let pow = 10f64.powi(p as i32);
    let digit = pow * to_f64(&a.v(0));
    // Sprig: math.Modf's fraction against the threshold, then Ceil or Floor of the digits
    let r = if digit.fract() >= ro {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}

fn until(a: Args) -> FnResult {
    a.want(1)?;
    let c = a.i(0)?;
    super::within_budget(0, usize::try_from(c.unsigned_abs()).unwrap_or(usize::MAX))?;
    let v: Vec<Value> = if c >= 0 {
        (0..c).map(Value::Int).collect()
    } else {
        (c + 1..=0).rev().map(Value::Int).collect()
    };
    Ok(Value::list(v))
}

fn until_step(a: Args) -> FnResult {
    a.want(3)?;
    let (s0, stop, step) = (a.i(0)?, a.i(1)?, a.i(2)?);
    let mut v = Vec::new();
    if (step > 0 && s0 < stop) || (step < 0 && s0 > stop) {
        // ceil(|stop - start| / |step|) elements, counted in 128 bits
        let span = (i128::from(stop) - i128::from(s0)).unsigned_abs();
        let n = span.div_ceil(i128::from(step).unsigned_abs());
        super::within_budget(0, usize::try_from(n).unwrap_or(usize::MAX))?;
        let mut i = s0;
        while (step > 0 && i < stop) || (step < 0 && i > stop) {
            v.push(Value::Int(i));
            // Go's int wraps past the end and loops on; the values it meant end here
            match i.checked_add(step) {
                Some(next) => i = next,
                None => break,
            }
        }
    }
    Ok(Value::list(v))
}

fn seq(a: Args) -> FnResult {
    // `seq(params ...int)`: a value from elsewhere than a constant is Go's interface {}
    let p: Vec<i64> = (0..a.v.len())
        .map(|i| match a.v.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(v) if !a.is_const(i) && !v.is_nil() => Err(FnError::Arg(
                i,
                "wrong type for value; expected int; got interface {}".into(),
            )),
            _ => a.i(i),
        })
        .collect::<Result<_, _>>()?;
    let (s0, step, end) = match p.as_slice() {
        [e] => (1, if *e >= 1 { 1 } else { -1 }, *e),
        [s, e] => (*s, if e >= s { 1 } else { -1 }, *e),
        [s, st2, e] => (*s, *st2, *e),
        _ => return Ok(Value::str("")),
    };
    let mut out = Vec::new();
    let mut i = s0;
    if step == 0 {
        return Ok(Value::str(""));
    }
    while (step > 0 && i <= end) || (step < 0 && i >= end) {
        out.push(i.to_string());
        i += step;
    }
    Ok(Value::string(out.join(" ")))
}

/// `cast.ToInt64`: numbers truncate, strings parse (0 on failure), bools are 0/1.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => go_float_to_int(*f),
        Value::Bool(b) => *b as i64,
        Value::Str(s) => {
            let t = trim_zero_decimal(s);
            yaml::go_parse_int(&t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Go's conversion of a float64 to int64 (on amd64): truncation, and the minimum int64 for
/// NaN and for what int64 cannot hold (Rust's `as` saturates instead).
pub fn go_float_to_int(f: f64) -> i64 {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || !(-TWO_POW_63..TWO_POW_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn trim_zero_decimal(s: &str) -> String {
    if let Some((a, b)) = s.split_once('.') {
        if !a.is_empty() && b.chars().all(|c| c == '0') {
            return a.to_string();
        }
    }
    s.to_string()
}

pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        Value::Str(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}
