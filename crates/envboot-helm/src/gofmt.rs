//! Go's `fmt.Sprintf`, `Sprint` and `Sprintln` over template values.

use std::fmt::Write as _;

use super::value::{format_v, go_float, go_quote, Value};

/// fmt's `tooLarge`: widths and precisions beyond a million are refused.
fn too_large(n: i64) -> bool {
    !(-1_000_000..=1_000_000).contains(&n)
}

/// fmt's `parsenum` from `start`: the number (None if no digit) and where it ends, or None when
/// the number grows too large (fmt then consumes the rest of the format).
fn parse_num(chars: &[char], start: usize) -> Option<(Option<usize>, usize)> {
    let mut num: i64 = 0;
    let mut i = start;
    let mut any = false;
    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
        if too_large(num) {
            return None;
        }
        num = num * 10 + i64::from(d);
        any = true;
        i += 1;
    }
    Some((any.then_some(num as usize), i))
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        format_v(a, &mut out);
    }
    out
}

/// `fmt.Sprintln`: always spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        format_v(a, &mut out);
    }
    out.push('\n');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// fmt's `parseArgNumber` at `[`: the 0-based index, the characters it takes, whether it
/// parsed.
fn parse_arg_number(chars: &[char]) -> (i64, usize, bool) {
    if chars.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..chars.len() {
        if chars[i] == ']' {
            return match parse_num(&chars[..i], 1) {
                Some((Some(n), next)) if next == i => (n as i64 - 1, i + 1, true),
                _ => (0, i + 1, false),
            };
        }
    }
    (0, 1, false)
}

/// The state of an explicit argument index (`%[2]d`) within one `sprintf`.
struct ArgIndex {
    reordered: bool,
    good: bool,
}

impl ArgIndex {
    /// fmt's `argNumber`: an explicit index at `i`, if any; returns (argument, next i, found).
    fn at(&mut self, chars: &[char], i: usize, argi: usize, n: usize) -> (usize, usize, bool) {
        if chars.get(i) != Some(&'[') {
            return (argi, i, false);
        }
        self.reordered = true;
        let (index, width, ok) = parse_arg_number(&chars[i..]);
        if ok && (0..n as i64).contains(&index) {
            return (index as usize, i + width, true);
        }
        self.good = false;
        (argi, i + width, ok)
    }
}

pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    let mut index = ArgIndex {
        reordered: false,
        good: true,
    };
    while i < chars.len() {
        index.good = true;
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut sp = Spec::default();
        while i < chars.len() {
            match chars[i] {
                '-' => sp.minus = true,
                '+' => sp.plus = true,
                '#' => sp.sharp = true,
                ' ' => sp.space = true,
                '0' => sp.zero = true,
                _ => break,
            }
            i += 1;
        }
        let (a, next, mut after_index) = index.at(&chars, i, argi, args.len());
        (argi, i) = (a, next);
        // width
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            match args.get(argi) {
                Some(Value::Int(w)) if !too_large(*w) => {
                    if *w < 0 {
                        sp.minus = true;
                    }
                    sp.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
            after_index = false;
        } else {
            match parse_num(&chars, i) {
                Some((n, next)) => {
                    sp.width = n;
                    i = next;
                    if after_index && n.is_some() {
                        index.good = false;
                    }
                }
                // fmt's parsenum gives up on a crazy long number: the rest is no verb
                None => i = chars.len(),
            }
        }
        if i + 1 < chars.len() && chars[i] == '.' {
            i += 1;
            if after_index {
                index.good = false;
            }
            let (a, next, found) = index.at(&chars, i, argi, args.len());
            (argi, i, after_index) = (a, next, found);
            if i < chars.len() && chars[i] == '*' {
                i += 1;
                match args.get(argi) {
                    Some(Value::Int(p)) if !too_large(*p) => sp.prec = Some((*p).max(0) as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
                after_index = false;
            } else {
                match parse_num(&chars, i) {
                    Some((n, next)) => {
                        sp.prec = Some(n.unwrap_or(0));
                        i = next;
                    }
                    None => {
                        sp.prec = Some(0);
                        i = chars.len();
                    }
                }
            }
        }
        if !after_index {
            let (a, next, _) = index.at(&chars, i, argi, args.len());
            (argi, i) = (a, next);
        }
        if sp.minus {
            sp.zero = false;
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if !index.good {
            let _ = write!(out, "%!{verb}(BADINDEX)");
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let s = format_one(verb, arg, &sp);
        out.push_str(&s);
    }
    if !index.reordered && argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argi..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Nil => out.push_str("<nil>"),
                a => {
                    let _ = write!(out, "{}=", a.type_name());
                    format_v(a, &mut out);
                }
            }
        }
        out.push(')');
    }
    out
}

fn pad(s: String, sp: &Spec, numeric: bool) -> String {
    let Some(w) = sp.width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if sp.minus {
        return s + &" ".repeat(fill);
    }
    if sp.zero && numeric {
        // zeros after the sign
        let (sign, rest) = if s.starts_with(['-', '+', ' ']) {
            s.split_at(1)
        } else {
            ("", s.as_str())
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    if sp.zero {
        return "0".repeat(fill) + &s;
    }
    " ".repeat(fill) + &s
}

/// fmt's `badVerb`: the value printed with `%v` and the verb's flags and width.
fn bad(verb: char, v: &Value, sp: &Spec) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        v => format!("%!{verb}({}={})", v.type_name(), format_one('v', v, sp)),
    }
}

fn sign(s: String, neg: bool, sp: &Spec) -> String {
    if neg {
        format!("-{s}")
    } else if sp.plus {
        format!("+{s}")
    } else if sp.space {
        format!(" {s}")
    } else {
        s
    }
}

/// `%#v`: the value in Go's syntax, as template values are typed (`[]interface {}`,
/// `map[string]interface {}`).
fn go_syntax(v: &Value) -> String {
    // within a collection, a nil is a typed one
    let item = |x: &Value| match x {
        Value::Nil => "interface {}(nil)".to_string(),
        x => go_syntax(x),
    };
    crate::stack::deep(|| match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) => go_quote(s),
        Value::List(l) => {
            let items: Vec<String> = l.iter().map(item).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Map(m) => {
            let items: Vec<String> = m
                .borrow()
                .iter()
                .map(|(k, x)| format!("{}:{}", go_quote(k), item(x)))
                .collect();
            format!("map[string]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Obj(_) => {
            let mut s = String::new();
            format_v(v, &mut s);
            s
        }
    })
}

fn format_one(verb: char, v: &Value, sp: &Spec) -> String {
    crate::stack::deep(|| format_one_inner(verb, v, sp))
}

fn format_one_inner(verb: char, v: &Value, sp: &Spec) -> String {
    if verb == 'T' {
        return pad(v.type_name().to_string(), sp, false);
    }
    if verb == 'v' && sp.sharp && !matches!(v, Value::Obj(_)) {
        return pad(go_syntax(v), sp, false);
    }
    match v {
        Value::List(l) => {
            if matches!(verb, 'v' | 's' | 'd' | 'q' | 'f' | 'g' | 'x' | 't' | 'e') {
                let mut s = String::from("[");
                for (i, x) in l.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    // a nil item is `<nil>` whatever the verb
                    if x.is_nil() {
                        s.push_str("<nil>");
                        continue;
                    }
                    s.push_str(&format_one(
                        verb,
                        x,
                        &Spec {
                            width: sp.width,
                            ..*sp
                        },
                    ));
                }
                s.push(']');
                return s;
            }
            bad(verb, v, sp)
        }
        Value::Map(m) if matches!(verb, 'v' | 's' | 'd' | 'q') => {
            let mut s = String::from("map[");
            for (i, (k, x)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(&format_one(verb, &Value::str(k), sp));
                s.push(':');
                s.push_str(&format_one(verb, x, sp));
            }
            s.push(']');
            s
        }
        _ => match verb {
            'v' => {
                if let Value::Str(s) = v {
                    return pad(trunc_prec(s, sp), sp, false);
                }
                if let Value::Float(f) = v {
                    // %v of a float is %g: a precision counts significant digits
                    if sp.prec.is_some() {
                        return pad(float_verb(*f, 'g', sp), sp, true);
                    }
                    return pad(sign(go_float(f.abs()), f.is_sign_negative(), sp), sp, true);
                }
                if let Value::Int(i) = v {
                    return pad(sign(i.unsigned_abs().to_string(), *i < 0, sp), sp, true);
                }
                let mut s = String::new();
                format_v(v, &mut s);
                pad(s, sp, false)
            }
            's' => match v {
                Value::Str(s) => pad(trunc_prec(s, sp), sp, false),
                Value::Obj(_) => {
                    let mut s = String::new();
                    format_v(v, &mut s);
                    pad(s, sp, false)
                }
                _ => bad(verb, v, sp),
            },
            'q' => match v {
                Value::Str(s) => {
                    let q = if sp.sharp && !s.contains('`') {
                        format!("`{s}`")
                    } else {
                        go_quote(&trunc_prec(s, sp))
                    };
                    pad(q, sp, false)
                }
                Value::Int(i) => {
                    let c = char::from_u32(*i as u32).unwrap_or('\u{fffd}');
                    let q = go_quote(&c.to_string());
                    pad(
                        format!("'{}'", &q[1..q.len() - 1].replace('\'', "\\'")),
                        sp,
                        false,
                    )
                }
                _ => bad(verb, v, sp),
            },
            'd' => match v {
                Value::Int(i) => pad(sign(i.unsigned_abs().to_string(), *i < 0, sp), sp, true),
                _ => bad(verb, v, sp),
            },
            'b' | 'o' | 'O' | 'x' | 'X' | 'c' | 'U' => match v {
                Value::Int(i) => {
                    let a = i.unsigned_abs();
                    let s = match verb {
                        'b' => format!("{a:b}"),
                        'o' => {
                            if sp.sharp {
                                format!("0{a:o}")
                            } else {
                                format!("{a:o}")
                            }
                        }
                        'O' => format!("0o{a:o}"),
                        'x' => {
                            if sp.sharp {
                                format!("0x{a:x}")
                            } else {
                                format!("{a:x}")
                            }
                        }
                        'X' => {
                            if sp.sharp {
                                format!("0X{a:X}")
                            } else {
                                format!("{a:X}")
                            }
                        }
                        'c' => {
                            return pad(
                                char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string(),
                                sp,
                                false,
                            )
                        }
                        _ => return pad(format!("U+{a:04X}"), sp, false),
                    };
                    pad(sign(s, *i < 0, sp), sp, true)
                }
                Value::Str(s) if verb == 'x' || verb == 'X' => {
                    let mut o = String::new();
                    for (i, b) in s.bytes().enumerate() {
                        // `% x`: a space between the bytes
                        if sp.space && i > 0 {
                            o.push(' ');
                        }
                        if verb == 'x' {
                            let _ = write!(o, "{b:02x}");
                        } else {
                            let _ = write!(o, "{b:02X}");
                        }
                    }
                    pad(o, sp, false)
                }
                _ => bad(verb, v, sp),
            },
            't' => match v {
                Value::Bool(b) => pad(b.to_string(), sp, false),
                _ => bad(verb, v, sp),
            },
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => match v {
                Value::Float(f) => {
                    let s = float_verb(*f, verb, sp);
                    pad(if verb == 'G' { s.to_uppercase() } else { s }, sp, true)
                }
                _ => bad(verb, v, sp),
            },
            _ => bad(verb, v, sp),
        },
    }
}

fn trunc_prec(s: &str, sp: &Spec) -> String {
    match sp.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn float_verb(f: f64, verb: char, sp: &Spec) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            sign("Inf".into(), false, sp)
        } else {
            "-Inf".into()
        };
    }
    // the sign of negative zero is printed too, as Go's strconv does
    let neg = f.is_sign_negative();
    let a = f.abs();
    let s = match verb {
        'f' | 'F' => format!("{:.*}", sp.prec.unwrap_or(6), a),
        'e' | 'E' => {
            let s = exp_form(a, sp.prec.unwrap_or(6));
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => match sp.prec {
            None => go_float(a),
            Some(p) => {
                let p = p.max(1);
                let e = format!("{:.*e}", p - 1, a);
                let exp: i32 = e
                    .split_once('e')
                    .and_then(|x| x.1.parse().ok())
                    .unwrap_or(0);
                if exp < -4 || exp >= p as i32 {
                    let s = exp_form(a, p - 1);
                    strip_zeros_exp(&s)
                } else {
                    let dec = (p as i32 - 1 - exp).max(0) as usize;
                    let s = format!("{a:.dec$}");
                    if s.contains('.') {
                        s.trim_end_matches('0').trim_end_matches('.').to_string()
                    } else {
                        s
                    }
                }
            }
        },
    };
    sign(s, neg, sp)
}

fn exp_form(a: f64, prec: usize) -> String {
    let e = format!("{a:.prec$e}");
    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
    let x: i32 = x.parse().unwrap_or(0);
    let sgn = if x < 0 { '-' } else { '+' };
    format!("{m}e{sgn}{:02}", x.abs())
}

fn strip_zeros_exp(s: &str) -> String {
    match s.split_once('e') {
        Some((m, x)) if m.contains('.') => {
            format!("{}e{x}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_verbs_match_go() {
        let s = |x: &str| Value::str(x);
        assert_eq!(sprintf("%s-%d", &[s("a"), Value::Int(3)]), "a-3");
        assert_eq!(sprintf("%d", &[Value::Float(3.0)]), "%!d(float64=3)");
        assert_eq!(
            sprintf("%v %v", &[Value::Float(1e6), Value::Nil]),
            "1e+06 <nil>"
        );
        assert_eq!(sprintf("%q", &[s("a\"b")]), "\"a\\\"b\"");
        assert_eq!(sprintf("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(sprintf("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("a"), s("b")]), "a%!(EXTRA string=b)");
        assert_eq!(
            sprintf(
                "%05.2f|%-4d|%x",
                &[Value::Float(2.5167), Value::Int(7), Value::Int(255)]
            ),
            "02.52|7   |ff"
        );
        assert_eq!(sprintf("%t %%", &[Value::Bool(true)]), "true %");
    }

    #[test]
    fn sprint_spaces_only_between_non_strings() {
        assert_eq!(
            sprint(&[
                Value::str("a"),
                Value::Int(1),
                Value::Int(2),
                Value::str("b")
            ]),
            "a1 2b"
        );
    }
}
