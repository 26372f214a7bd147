//! Lexer and parser for Go's text/template language.

use std::collections::BTreeMap;

use super::funcs::Func;

/// The text a template was parsed from, to turn byte offsets into `line:col`.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

impl Source {
    /// Go's `ErrorContext` location: `name:line:col` (col is the byte offset in the line).
    pub fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = &self.text.as_bytes()[..pos];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let col = match before.iter().rposition(|&b| b == b'\n') {
            Some(i) => pos - (i + 1),
            None => pos,
        };
        format!("{}:{}:{}", self.name, line, col)
    }
    pub fn line(&self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        1 + self.text.as_bytes()[..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }
}

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub struct Control {
    pub pos: usize,
    pub pipe: Pipe,
    pub body: Vec<Node>,
    pub els: Option<Vec<Node>>,
}

/// Parse trees nest as deep as templates do (100,000 nested `{{ if }}`, 10,000 parentheses):
/// these `Drop`s take them apart with a work list instead of one recursive call per level.
impl Drop for Control {
    fn drop(&mut self) {
        if !self
            .body
            .iter()
            .chain(self.els.iter().flatten())
            .any(Node::is_control)
        {
            return;
        }
        let mut pending = std::mem::take(&mut self.body);
        pending.extend(self.els.take().into_iter().flatten());
        while let Some(node) = pending.pop() {
            if let Node::If(mut c) | Node::Range(mut c) | Node::With(mut c) = node {
                pending.append(&mut c.body);
                pending.extend(c.els.take().into_iter().flatten());
            }
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let nested = |a: &Arg| matches!(a, Arg::Pipe(..) | Arg::Chain(..));
        if !self.cmds.iter().flat_map(|c| c.args.iter()).any(nested) {
            return;
        }
        let mut pending: Vec<Arg> = std::mem::take(&mut self.cmds)
            .into_iter()
            .flat_map(|c| c.args)
            .collect();
        while let Some(arg) = pending.pop() {
            match arg {
                Arg::Pipe(_, mut p) => {
                    for cmd in std::mem::take(&mut p.cmds) {
                        pending.extend(cmd.args);
                    }
                }
                Arg::Chain(_, base, _) => pending.push(*base),
                _ => {}
            }
        }
    }
}

impl Node {
    fn is_control(&self) -> bool {
        matches!(self, Node::If(_) | Node::Range(_) | Node::With(_))
    }
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum Arg {
    /// A function's name, and what it resolved to.
    Ident(usize, &'static str, Func),
    Field(usize, Vec<String>),
    Dot(usize),
    Var(usize, String, Vec<String>),
    Chain(usize, Box<Arg>, Vec<String>),
    Pipe(usize, Box<Pipe>),
    Str(usize, String, String),
    Int(usize, i64, String),
    Float(usize, f64, String),
    Bool(usize, bool),
    Nil(usize),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Ident(p, _, _)
            | Arg::Field(p, _)
            | Arg::Dot(p)
            | Arg::Var(p, _, _)
            | Arg::Chain(p, _, _)
            | Arg::Pipe(p, _)
            | Arg::Str(p, _, _)
            | Arg::Int(p, _, _)
            | Arg::Float(p, _, _)
            | Arg::Bool(p, _)
            | Arg::Nil(p) => *p,
        }
    }
}

// ---- String forms as Go's parse nodes print them (for error messages) ----

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Ident(_, n, _) => write!(f, "{n}"),
            Arg::Field(_, c) => {
                for x in c {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
            Arg::Dot(_) => write!(f, "."),
            Arg::Var(_, n, c) => {
                write!(f, "{n}")?;
                for x in c {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
            Arg::Chain(_, b, c) => {
                match &**b {
                    Arg::Pipe(_, p) => write!(f, "({p})")?,
                    other => write!(f, "{other}")?,
                }
                for x in c {
                    write!(f, ".{x}")?;
                }
                Ok(())
            }
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Str(_, _, orig) => write!(f, "{orig}"),
            Arg::Int(_, _, t) | Arg::Float(_, _, t) => write!(f, "{t}"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Nil(_) => write!(f, "nil"),
        }
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.decl.is_empty() {
            write!(f, "{}", self.decl.join(", "))?;
            write!(f, "{}", if self.assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                write!(f, " | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct ParseError {
    pub location: String,
    pub message: String,
}

/// A parsed file: its main body and the templates it defines.
pub struct Parsed {
    pub body: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Var(String),
    Dot,
    Str(String, String),
    Char(i64, String),
    Number(String),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    /// A `.Field` directly after `)` / a variable / a field (no space).
    ChainField(String),
}

#[derive(Debug)]
enum Item {
    Text(String),
    Action(usize, Vec<(Tok, usize)>),
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn lex(src: &Source) -> Result<Vec<Item>, ParseError> {
    let text = src.text.as_bytes();
    let s = &src.text;
    let mut items = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    let err = |pos: usize, m: String| ParseError {
        location: src.location(pos),
        message: m,
    };
    while i <= text.len() {
        let start = i;
        let next = memchr::memmem::find(&text[i.min(text.len())..], b"{{").map(|x| x + i);
        let end = next.unwrap_or(text.len());
        let mut t = &s[start..end];
        if trim_next {
            t = t.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next = false;
        }
        let Some(open) = next else {
            if !t.is_empty() {
                items.push(Item::Text(t.to_string()));
            }
            break;
        };
        let mut p = open + 2;
        if text.get(p) == Some(&b'-') && text.get(p + 1).is_some_and(|&b| is_space(b)) {
            t = t.trim_end_matches([' ', '\t', '\r', '\n']);
            p += 1;
        }
        if !t.is_empty() {
            items.push(Item::Text(t.to_string()));
        }
        // comment?
        let mut q = p;
        while q < text.len() && is_space(text[q]) {
            q += 1;
        }
        if s[q..].starts_with("/*") {
            let Some(close) = s[q + 2..].find("*/") else {
                return Err(err(open, "unclosed comment".into()));
            };
            let mut r = q + 2 + close + 2;
            let mut trim = false;
            if s[r..].starts_with(" -}}") {
                trim = true;
                r += 4;
            } else if s[r..].starts_with("}}") {
                r += 2;
            } else {
                // allow whitespace before closing delimiter
                let mut k = r;
                while k < text.len() && is_space(text[k]) {
                    k += 1;
                }
                if s[k..].starts_with("-}}") && k > r {
                    trim = true;
                    r = k + 3;
                } else if s[k..].starts_with("}}") {
                    r = k + 2;
                } else {
                    return Err(err(open, "comment ends before closing delimiter".into()));
                }
            }
            trim_next = trim;
            i = r;
            continue;
        }
        // tokens
        let mut toks = Vec::new();
        let mut j = p;
        let mut last_chainable = false;
        loop {
            let had_space = j < text.len() && is_space(text[j]);
            while j < text.len() && is_space(text[j]) {
                j += 1;
            }
            if j >= text.len() {
                return Err(err(open, "unclosed action".into()));
            }
            if s[j..].starts_with("}}") {
                i = j + 2;
                break;
            }
            if had_space && s[j..].starts_with("-}}") {
                trim_next = true;
                i = j + 3;
                break;
            }
            let c = text[j];
            let tpos = j;
            let chain_ok = last_chainable && !had_space;
            last_chainable = false;
            match c {
                b'|' => {
                    toks.push((Tok::Pipe, tpos));
                    j += 1;
                }
                b'(' => {
                    toks.push((Tok::LParen, tpos));
                    j += 1;
                }
                b')' => {
                    toks.push((Tok::RParen, tpos));
                    j += 1;
                    last_chainable = true;
                }
                b',' => {
                    toks.push((Tok::Comma, tpos));
                    j += 1;
                }
                b':' => {
                    if text.get(j + 1) == Some(&b'=') {
                        toks.push((Tok::Declare, tpos));
                        j += 2;
                    } else {
                        return Err(err(tpos, "expected :=".into()));
                    }
                }
                b'=' => {
                    toks.push((Tok::Assign, tpos));
                    j += 1;
                }
                b'"' => {
                    let mut k = j + 1;
                    let mut out = String::new();
                    loop {
                        let Some(ch) = s[k..].chars().next() else {
                            return Err(err(tpos, "unterminated quoted string".into()));
                        };
                        match ch {
                            '"' => {
                                k += 1;
                                break;
                            }
                            '\n' => {
                                return Err(err(tpos, "unterminated quoted string".into()));
                            }
                            '\\' => {
                                let (c2, n) = unescape(&s[k..]).ok_or_else(|| {
                                    err(tpos, "invalid syntax in quoted string".into())
                                })?;
                                out.push_str(&c2);
                                k += n;
                            }
                            ch => {
                                out.push(ch);
                                k += ch.len_utf8();
                            }
                        }
                    }
                    toks.push((Tok::Str(out, s[j..k].to_string()), tpos));
                    j = k;
                }
                b'`' => {
                    let Some(close) = s[j + 1..].find('`') else {
                        return Err(err(tpos, "unterminated raw quoted string".into()));
                    };
                    let body = &s[j + 1..j + 1 + close];
                    toks.push((
                        Tok::Str(body.to_string(), s[j..j + close + 2].to_string()),
                        tpos,
                    ));
                    j = j + close + 2;
                }
                b'\'' => {
                    let rest = &s[j + 1..];
                    let (val, n) = if rest.starts_with('\\') {
                        let (st, n) = unescape(rest)
                            .ok_or_else(|| err(tpos, "invalid character constant".into()))?;
                        (st.chars().next().map(|c| c as i64).unwrap_or(0), n)
                    } else {
                        let ch = rest
                            .chars()
                            .next()
                            .ok_or_else(|| err(tpos, "unterminated character constant".into()))?;
                        (ch as i64, ch.len_utf8())
                    };
                    if !rest[n..].starts_with('\'') {
                        return Err(err(tpos, "unterminated character constant".into()));
                    }
                    let end = j + 1 + n + 1;
                    toks.push((Tok::Char(val, s[j..end].to_string()), tpos));
                    j = end;
                }
                b'$' => {
                    let mut k = j + 1;
                    while k < text.len() && is_alnum(text[k]) {
                        k += 1;
                    }
                    toks.push((Tok::Var(s[j..k].to_string()), tpos));
                    j = k;
                    last_chainable = true;
                }
                b'.' => {
                    if text.get(j + 1).is_some_and(|b| b.is_ascii_digit()) {
                        let k = scan_number(text, j);
                        toks.push((Tok::Number(s[j..k].to_string()), tpos));
                        j = k;
                    } else if text.get(j + 1).is_some_and(|&b| is_alnum(b)) {
                        let mut k = j + 1;
                        while k < text.len() && is_alnum(text[k]) {
                            k += 1;
                        }
                        let name = s[j + 1..k].to_string();
                        if chain_ok {
                            toks.push((Tok::ChainField(name), tpos));
                        } else {
                            toks.push((Tok::Field(name), tpos));
                        }
                        j = k;
                        last_chainable = true;
                    } else {
                        toks.push((Tok::Dot, tpos));
                        j += 1;
                    }
                }
                b'0'..=b'9' | b'-' | b'+' => {
                    let k = scan_number(text, j);
                    if k == j || (k == j + 1 && !text[j].is_ascii_digit()) {
                        return Err(err(tpos, format!("bad character {:?}", c as char)));
                    }
                    toks.push((Tok::Number(s[j..k].to_string()), tpos));
                    j = k;
                }
                c if is_alnum(c) => {
                    let mut k = j;
                    while k < text.len() && is_alnum(text[k]) {
                        k += 1;
                    }
                    toks.push((Tok::Ident(s[j..k].to_string()), tpos));
                    j = k;
                }
                _ => {
                    let ch = s[j..].chars().next().unwrap_or('?');
                    return Err(err(tpos, format!("unexpected {ch:?} in command")));
                }
            }
        }
        items.push(Item::Action(open, toks));
    }
    Ok(items)
}

fn is_alnum(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80
}

fn scan_number(text: &[u8], mut j: usize) -> usize {
    if j < text.len() && (text[j] == b'+' || text[j] == b'-') {
        j += 1;
    }
    while j < text.len() {
        let b = text[j];
        let exp_sign = (b == b'+' || b == b'-') && matches!(text[j - 1], b'e' | b'E' | b'p' | b'P');
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exp_sign {
            j += 1;
        } else {
            break;
        }
    }
    j
}

/// One backslash escape at the start of `s`: the text it stands for and its length.
fn unescape(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let c = *b.get(1)?;
    let simple = match c {
        b'n' => Some('\n'),
        b't' => Some('\t'),
        b'r' => Some('\r'),
        b'a' => Some('\u{7}'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'v' => Some('\u{b}'),
        b'\\' => Some('\\'),
        b'"' => Some('"'),
        b'\'' => Some('\''),
        _ => None,
    };
    if let Some(ch) = simple {
        return Some((ch.to_string(), 2));
    }
    let hex = |n: usize| -> Option<(String, usize)> {
        let h = s.get(2..2 + n)?;
        let v = u32::from_str_radix(h, 16).ok()?;
        Some((char::from_u32(v)?.to_string(), 2 + n))
    };
    match c {
        b'x' => hex(2),
        b'u' => hex(4),
        b'U' => hex(8),
        b'0'..=b'7' => {
            let o = s.get(1..4)?;
            let v = u32::from_str_radix(o, 8).ok()?;
            Some((char::from_u32(v)?.to_string(), 4))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

struct Parser<'a> {
    src: &'a Source,
    items: Vec<Item>,
    pos: usize,
    defines: BTreeMap<String, Vec<Node>>,
    range_depth: usize,
    /// Variables in scope (Go rejects undefined variables when parsing).
    vars: Vec<String>,
    /// Parenthesised pipelines open around the operand being parsed.
    parens: std::cell::Cell<usize>,
}

/// text/template/parse's maxStackDepth: how deep parenthesised pipelines may nest.
const MAX_PAREN_DEPTH: usize = 10_000;

enum Stop {
    Eof,
    End,
    Else(usize, Vec<(Tok, usize)>),
}

pub fn parse(src: &Source) -> Result<Parsed, ParseError> {
    let items = lex(src)?;
    let mut p = Parser {
        src,
        items,
        pos: 0,
        defines: BTreeMap::new(),
        range_depth: 0,
        vars: vec!["$".to_string()],
        parens: std::cell::Cell::new(0),
    };
    let (body, stop) = p.list(true)?;
    match stop {
        Stop::Eof => {}
        Stop::End => return Err(p.err(0, "unexpected {{end}}")),
        Stop::Else(pos, _) => return Err(p.err(pos, "unexpected {{else}}")),
    }
    Ok(Parsed {
        body,
        defines: p.defines,
    })
}

impl<'a> Parser<'a> {
    fn err(&self, pos: usize, m: &str) -> ParseError {
        ParseError {
            location: self.src.location(pos),
            message: m.to_string(),
        }
    }

    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Stop), ParseError> {
        crate::stack::deep(|| self.list_inner(top))
    }

    fn list_inner(&mut self, top: bool) -> Result<(Vec<Node>, Stop), ParseError> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let idx = self.pos;
            self.pos += 1;
            let item = std::mem::replace(&mut self.items[idx], Item::Text(String::new()));
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action(pos, mut toks) => {
                    let kw: &'static str = match toks.first() {
                        Some((Tok::Ident(k), _)) => match k.as_str() {
                            "end" => "end",
                            "else" => "else",
                            "if" => "if",
                            "with" => "with",
                            "range" => "range",
                            "define" => "define",
                            "block" => "block",
                            "template" => "template",
                            "break" => "break",
                            "continue" => "continue",
                            _ => "",
                        },
                        _ => "",
                    };
                    // the tokens after the keyword, moved out (not copied)
                    let after =
                        |toks: &mut Vec<(Tok, usize)>, n: usize| toks.split_off(n.min(toks.len()));
                    match kw {
                        "end" => {
                            if toks.len() != 1 {
                                return Err(self.err(pos, "unexpected tokens after end"));
                            }
                            return Ok((nodes, Stop::End));
                        }
                        "else" => return Ok((nodes, Stop::Else(pos, after(&mut toks, 1)))),
                        "if" | "with" | "range" => {
                            let rest = after(&mut toks, 1);
                            nodes.push(self.control(kw, pos, rest)?);
                        }
                        "define" | "block" => {
                            if !top && kw == "define" {
                                return Err(self.err(pos, "unexpected <define> in command"));
                            }
                            let name = match toks.get(1) {
                                Some((Tok::Str(s, _), _)) => s.clone(),
                                _ => return Err(self.err(pos, "expected template name")),
                            };
                            let rest = after(&mut toks, 2);
                            let pipe = if kw == "block" {
                                Some(self.pipe(pos, rest, false)?)
                            } else {
                                if !rest.is_empty() {
                                    return Err(self.err(pos, "unexpected tokens in define"));
                                }
                                None
                            };
                            let saved = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
                            let (body, stop) = self.list(false)?;
                            self.vars = saved;
                            if !matches!(stop, Stop::End) {
                                return Err(self.err(pos, "unexpected EOF in define"));
                            }
                            self.defines.insert(name.clone(), body);
                            if kw == "block" {
                                nodes.push(Node::Template { pos, name, pipe });
                            }
                        }
                        "template" => {
                            let (name, npos) = match toks.get(1) {
                                Some((Tok::Str(s, _), p)) => (s.clone(), *p),
                                _ => return Err(self.err(pos, "expected template name")),
                            };
                            let rest = after(&mut toks, 2);
                            let pipe = if rest.is_empty() {
                                None
                            } else {
                                Some(self.pipe(pos, rest, false)?)
                            };
                            nodes.push(Node::Template {
                                pos: npos,
                                name,
                                pipe,
                            });
                        }
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err(
                                    self.err(pos, &format!("{{{{{kw}}}}} outside {{{{range}}}}"))
                                );
                            }
                            nodes.push(if kw == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => {
                            let p = self.pipe(pos, toks, true)?;
                            nodes.push(Node::Action(p));
                        }
                    }
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(
        &mut self,
        kw: &str,
        pos: usize,
        toks: Vec<(Tok, usize)>,
    ) -> Result<Node, ParseError> {
        if toks.is_empty() {
            return Err(self.err(pos, &format!("missing value for {kw}")));
        }
        let mark = self.vars.len();
        let pipe = self.pipe(pos, toks, true)?;
        if kw == "range" {
            self.range_depth += 1;
        }
        let (body, stop) = self.list(false)?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let els = match stop {
            Stop::Eof => return Err(self.err(pos, "unexpected EOF")),
            Stop::End => None,
            Stop::Else(epos, rest) => {
                if rest.is_empty() {
                    let (els, stop) = self.list(false)?;
                    if !matches!(stop, Stop::End) {
                        return Err(self.err(epos, "expected end; found else"));
                    }
                    Some(els)
                } else {
                    let kw2 = match rest.first() {
                        Some((Tok::Ident(k), _)) if k == "if" || k == "with" => k.clone(),
                        _ => return Err(self.err(epos, "unexpected tokens after else")),
                    };
                    // `else if` / `else with` share the enclosing `end`.
                    let mut rest = rest;
                    let rest = rest.split_off(1);
                    Some(vec![self.control(&kw2, epos, rest)?])
                }
            }
        };
        self.vars.truncate(mark);
        let c = Control {
            pos,
            pipe,
            body,
            els,
        };
        Ok(match kw {
            "if" => Node::If(c),
            "with" => Node::With(c),
            _ => Node::Range(c),
        })
    }

    fn pipe(
        &mut self,
        pos: usize,
        mut toks: Vec<(Tok, usize)>,
        allow_decl: bool,
    ) -> Result<Pipe, ParseError> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut start = 0;
        // declarations: $x := / $x = / $i, $v :=
        if allow_decl {
            let mut k = 0;
            let mut vars = Vec::new();
            while let Some((Tok::Var(v), _)) = toks.get(k) {
                vars.push(v.clone());
                match toks.get(k + 1) {
                    Some((Tok::Comma, _)) if vars.len() < 2 => k += 2,
                    Some((Tok::Declare, _)) => {
                        decl = vars.clone();
                        start = k + 2;
                        break;
                    }
                    Some((Tok::Assign, _)) => {
                        decl = vars.clone();
                        assign = true;
                        start = k + 2;
                        break;
                    }
                    _ => break,
                }
            }
        }
        let toks = &mut toks[start..];
        let mut idx = 0;
        let mut p = self.parse_pipe_toks(toks, &mut idx, pos)?;
        if idx != toks.len() {
            return Err(self.err(
                toks[idx].1,
                &format!("unexpected {:?} in operand", toks[idx].0),
            ));
        }
        if p.cmds.is_empty() {
            return Err(self.err(pos, "missing value for command"));
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        p.decl = decl;
        p.assign = assign;
        Ok(p)
    }

    fn parse_pipe_toks(
        &self,
        toks: &mut [(Tok, usize)],
        idx: &mut usize,
        pos: usize,
    ) -> Result<Pipe, ParseError> {
        let mut cmds = Vec::new();
        loop {
            let cpos = toks.get(*idx).map(|t| t.1).unwrap_or(pos);
            let mut args = Vec::new();
            while *idx < toks.len() {
                match &toks[*idx].0 {
                    Tok::Pipe | Tok::RParen => break,
                    _ => args.push(self.operand(toks, idx)?),
                }
            }
            if args.is_empty() {
                if *idx < toks.len() && toks[*idx].0 == Tok::Pipe {
                    return Err(self.err(cpos, "missing command"));
                }
                break;
            }
            cmds.push(Cmd { pos: cpos, args });
            if *idx < toks.len() && toks[*idx].0 == Tok::Pipe {
                *idx += 1;
                continue;
            }
            break;
        }
        Ok(Pipe {
            pos,
            decl: Vec::new(),
            assign: false,
            cmds,
        })
    }

    /// The operand at `idx`: its tokens are taken (left as `Tok::Dot`), as each is read once.
    fn operand(&self, toks: &mut [(Tok, usize)], idx: &mut usize) -> Result<Arg, ParseError> {
        let pos = toks[*idx].1;
        let t = std::mem::replace(&mut toks[*idx].0, Tok::Dot);
        *idx += 1;
        let base = match t {
            Tok::Ident(name) => match name.as_str() {
                "true" => Arg::Bool(pos, true),
                "false" => Arg::Bool(pos, false),
                "nil" => Arg::Nil(pos),
                _ => {
                    let Some((name, func)) = super::funcs::lookup_named(&name) else {
                        return Err(self.err(pos, &format!("function {name:?} not defined")));
                    };
                    Arg::Ident(pos, name, func)
                }
            },
            Tok::Field(name) => {
                // Go positions a field chain at its second element
                let mut p = pos;
                let mut chain = vec![name];
                while let Some((Tok::ChainField(n), cp)) = toks.get_mut(*idx) {
                    if chain.len() == 1 {
                        p = *cp;
                    }
                    chain.push(std::mem::take(n));
                    *idx += 1;
                }
                return Ok(Arg::Field(p, chain));
            }
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.err(pos, &format!("undefined variable {name:?}")));
                }
                let mut p = pos;
                let mut chain = Vec::new();
                while let Some((Tok::ChainField(n), cp)) = toks.get_mut(*idx) {
                    if chain.is_empty() {
                        p = *cp;
                    }
                    chain.push(std::mem::take(n));
                    *idx += 1;
                }
                return Ok(Arg::Var(p, name, chain));
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Str(s, orig) => Arg::Str(pos, s, orig),
            Tok::Char(v, orig) => Arg::Int(pos, v, orig),
            Tok::Number(text) => number(&text, pos)
                .ok_or_else(|| self.err(pos, &format!("bad number syntax: {text:?}")))?,
            Tok::LParen => {
                if self.parens.get() >= MAX_PAREN_DEPTH {
                    return Err(self.err(pos, "max expression depth exceeded"));
                }
                self.parens.set(self.parens.get() + 1);
                let p = crate::stack::deep(|| self.parse_pipe_toks(toks, idx, pos));
                self.parens.set(self.parens.get() - 1);
                let p = p?;
                if !matches!(toks.get(*idx), Some((Tok::RParen, _))) {
                    return Err(self.err(pos, "unclosed left paren"));
                }
                *idx += 1;
                if p.cmds.is_empty() {
                    return Err(self.err(pos, "missing value for parenthesized pipeline"));
                }
                Arg::Pipe(pos, Box::new(p))
            }
            Tok::ChainField(n) => {
                return Err(self.err(pos, &format!("unexpected .{n}")));
            }
            other => return Err(self.err(pos, &format!("unexpected {other:?} in operand"))),
        };
        let mut chain = Vec::new();
        let mut p = pos;
        while let Some((Tok::ChainField(n), cp)) = toks.get_mut(*idx) {
            if chain.is_empty() {
                p = *cp;
            }
            chain.push(std::mem::take(n));
            *idx += 1;
        }
        if chain.is_empty() {
            Ok(base)
        } else {
            Ok(Arg::Chain(p, Box::new(base), chain))
        }
    }
}

/// Go's number literal rules: `1` is an int, `1.0` and `1e3` are float64.
fn number(text: &str, pos: usize) -> Option<Arg> {
    let clean = text.replace('_', "");
    if let Some(i) = super::yaml::go_parse_int(&clean) {
        return Some(Arg::Int(pos, i, text.to_string()));
    }
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        let f = parse_hex_float(hex)?;
        return Some(Arg::Float(pos, if neg { -f } else { f }, text.to_string()));
    }
    let f: f64 = body.parse().ok()?;
    let f = if neg { -f } else { f };
    if !text.contains(['.', 'e', 'E']) {
        return None;
    }
    Some(Arg::Float(pos, f, text.to_string()))
}

/// Go's hexadecimal floating-point literal after `0x`: `1p60`, `1.8p1`, `.8p-1` (the `p`
/// exponent is required, as in `strconv.ParseFloat`).
fn parse_hex_float(hex: &str) -> Option<f64> {
    let (mant, exp) = hex.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut m = 0f64;
    for c in int_part.chars() {
        m = m * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1f64 / 16.0;
    for c in frac_part.chars() {
        m += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(m * 2f64.powi(exp))
}
