//! Writing: go-yaml v2's emitter, byte for byte (`toYaml`).

use super::json::for_json;
use super::read::resolves_non_string;
use crate::value::{go_float, Value};

/// `toYaml`: JSON semantics for values, go-yaml v2's emitter for text. Ends with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
    };
    let v = for_json(v);
    e.node(&v, -1, Ctx::Top);
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    e.out
}

/// go-yaml v2's `yaml_emitter_check_simple_key` for a string key: at most 128 bytes, on one
/// line.
fn simple_key(k: &str) -> bool {
    k.len() <= 128 && !k.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    MapValue,
    SeqItem,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
}

const BEST_WIDTH: usize = 80;

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }
    fn put_str(&mut self, s: &str) {
        for c in s.chars() {
            self.put(c);
        }
    }
    fn put_break(&mut self) {
        self.put('\n');
    }
    fn write_indent(&mut self, indent: i64) {
        let indent = indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }
    fn write_indicator(&mut self, ind: &str, need_ws: bool, is_ws: bool, is_indent: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        self.put_str(ind);
        self.whitespace = is_ws;
        self.indention = self.indention && is_indent;
    }

    /// `indent` is the emitter's indent of the enclosing collection (-1 at top).
    fn node(&mut self, v: &Value, indent: i64, ctx: Ctx) {
        crate::stack::deep(|| self.node_inner(v, indent, ctx))
    }

    fn node_inner(&mut self, v: &Value, indent: i64, ctx: Ctx) {
        match v {
            Value::Map(m) => {
                let m = m.borrow();
                if m.is_empty() {
                    self.write_indicator("{}", true, false, false);
                    return;
                }
                let new_indent = if indent < 0 { 0 } else { indent + 2 };
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by(|a, b| key_cmp(a, b));
                for k in keys {
                    self.write_indent(new_indent);
                    if simple_key(k) {
                        self.scalar(k, new_indent, true);
                        self.write_indicator(":", false, false, false);
                    } else {
                        // go-yaml's complex key: `? key`, then `: value` on a line of its own
                        self.write_indicator("?", true, false, true);
                        self.scalar(k, new_indent, false);
                        self.write_indent(new_indent);
                        self.write_indicator(":", true, false, true);
                    }
                    let Some(val) = m.get(k) else { continue };
                    self.node(val, new_indent, Ctx::MapValue);
                }
            }
            Value::List(l) => {
                if l.is_empty() {
                    self.write_indicator("[]", true, false, false);
                    return;
                }
                // Sequences in a mapping are not indented.
                let indentless = ctx == Ctx::MapValue && !self.indention;
                let new_indent = if indent < 0 {
                    0
                } else if indentless {
                    indent
                } else {
                    indent + 2
                };
                for item in l.iter() {
                    self.write_indent(new_indent);
                    self.write_indicator("-", true, false, true);
                    self.node(item, new_indent, Ctx::SeqItem);
                }
            }
            Value::Nil => self.plain_or_styled("null", indent, false, true),
            Value::Bool(b) => {
                self.plain_or_styled(if *b { "true" } else { "false" }, indent, false, true)
            }
            Value::Int(i) => self.plain_or_styled(&i.to_string(), indent, false, true),
            Value::Float(f) => {
                // a whole float past int64 that came through JSON: go-yaml's uint64
                if let Some(super::json::Whole::Uint(u)) = super::json::whole_number(*f) {
                    return self.plain_or_styled(&u.to_string(), indent, false, true);
                }
                let s = match go_float(*f).as_str() {
                    "+Inf" => ".inf".to_string(),
                    "-Inf" => "-.inf".to_string(),
                    "NaN" => ".nan".to_string(),
                    s => s.to_string(),
                };
                self.plain_or_styled(&s, indent, false, true)
            }
            Value::Str(s) => self.scalar(s, indent, false),
            Value::Obj(_) => {
                let j = for_json(v);
                self.node(&j, indent, ctx)
            }
        }
    }

    fn plain_or_styled(&mut self, s: &str, indent: i64, simple_key: bool, force_plain: bool) {
        if force_plain {
            let scalar_indent = if indent < 0 { 2 } else { indent + 2 };
            self.write_plain(s, scalar_indent, !simple_key);
        } else {
            self.scalar(s, indent, simple_key);
        }
    }

    /// A string scalar: go-yaml v2 picks plain, literal (multi-line) or double-quoted, and the
    /// emitter may demote plain to single-quoted.
    fn scalar(&mut self, s: &str, indent: i64, simple_key: bool) {
        let scalar_indent = if indent < 0 { 2 } else { indent + 2 };
        let can_plain = !resolves_non_string(s) && !is_base60_float(s);
        let a = analyze(s);
        #[derive(PartialEq)]
        enum Style {
            Plain,
            Single,
            Double,
            Literal,
        }
        let mut style = if s.contains('\n') {
            Style::Literal
        } else if can_plain {
            Style::Plain
        } else {
            Style::Double
        };
        if style == Style::Plain && (!a.block_plain_allowed || (s.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Single && !a.single_quoted_allowed {
            style = Style::Double;
        }
        if style == Style::Literal && (!a.block_allowed || simple_key) {
            style = Style::Double;
        }
        match style {
            Style::Plain => self.write_plain(s, scalar_indent, !simple_key),
            Style::Single => self.write_single(s, scalar_indent, !simple_key),
            Style::Double => self.write_double(s, scalar_indent, !simple_key),
            Style::Literal => self.write_literal(s, scalar_indent),
        }
    }

    fn write_plain(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent(indent);
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.write_indicator("'", false, false, false);
    }

    fn write_double(&mut self, s: &str, indent: i64, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{feff}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                match c {
                    '\0' => self.put('0'),
                    '\u{7}' => self.put('a'),
                    '\u{8}' => self.put('b'),
                    '\t' => self.put('t'),
                    '\n' => self.put('n'),
                    '\u{b}' => self.put('v'),
                    '\u{c}' => self.put('f'),
                    '\r' => self.put('r'),
                    '\u{1b}' => self.put('e'),
                    '"' => self.put('"'),
                    '\\' => self.put('\\'),
                    '\u{85}' => self.put('N'),
                    '\u{a0}' => self.put('_'),
                    '\u{2028}' => self.put('L'),
                    '\u{2029}' => self.put('P'),
                    c => {
                        let n = c as u32;
                        let s = if n <= 0xff {
                            format!("x{n:02X}")
                        } else if n <= 0xffff {
                            format!("u{n:04X}")
                        } else {
                            format!("U{n:08X}")
                        };
                        self.put_str(&s);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i != 0
                    && i != chars.len() - 1
                {
                    self.write_indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
    }

    fn write_literal(&mut self, s: &str, indent: i64) {
        let mut hints = String::new();
        if s.starts_with(' ') || s.starts_with('\n') {
            hints.push('2');
        }
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s.len() == 1 || s.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        hints.push_str(chomp);
        self.write_indicator(&format!("|{hints}"), true, false, false);
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for c in s.chars() {
            if c == '\n' {
                self.put_break();
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent(indent);
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
        // libyaml leaves the indention state as the last character left it: after a final
        // line break the next key needs no further break.
    }
}

fn is_printable(c: char) -> bool {
    let n = c as u32;
    n == 0x0a
        || (0x20..=0x7e).contains(&n)
        || (0xa0..=0xd7ff).contains(&n)
        || ((0xe000..=0xfffd).contains(&n) && n != 0xfeff)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => c == ' ' || c == '\t' || is_break(c) || c == '\0',
    }
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = false;
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) =
        (false, false, false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_indicators = true;
    }
    let mut preceded_by_ws = true;
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        let followed_by_ws = is_blankz(chars.get(i + 1).copied());
        let indicator = if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => true,
                '?' | ':' | '-' => followed_by_ws,
                _ => false,
            }
        } else {
            match c {
                ':' => followed_by_ws,
                '#' => preceded_by_ws,
                _ => false,
            }
        };
        if indicator {
            block_indicators = true;
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = is_blankz(Some(c));
    }
    let mut a = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() && i - st < 2 {
            i += 1;
        }
        let g = &b[st..i];
        let ok = match g.len() {
            1 => true,
            2 => g[0] <= b'5',
            _ => false,
        };
        if !ok {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml v2's key order: runs of digits compare as numbers, non-letters before letters.
pub fn key_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}
