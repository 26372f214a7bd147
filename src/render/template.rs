//! A small engine for the Go-template subset used by the team's charts.
//!
//! Supported: `{{ pipeline }}` with `{{-`/`-}}` trimming and `{{/* comments */}}`; `if`/`else if`/
//! `else`, `with` and `range` (over lists and maps, rebinding `.`), each closed by `end`;
//! fields (`.Values.a.b`, `$.Release.Name`), literals, and the functions `quote`, `squote`,
//! `default`, `toYaml`, `indent`, `nindent`, `upper`, `lower`, `trunc`, `trimSuffix`, `required`,
//! `toString`, `b64enc`. Full Helm compatibility is a separate, larger engine.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

type Result<T> = std::result::Result<T, TemplateError>;

#[derive(Debug, Clone)]
enum Arg {
    Field(Vec<String>, bool),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    Sub(Box<Pipeline>),
}

#[derive(Debug, Clone)]
struct Command {
    name: Option<String>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Pipeline {
    line: usize,
    text: String,
    commands: Vec<Command>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

enum Token {
    Text(String),
    Action(String, usize),
}

fn tokenize(src: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut line = 1;
    while let Some(start) = rest.find("{{") {
        let mut text = rest[..start].to_string();
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError {
            line: line + rest[..start].matches('\n').count(),
            message: "unclosed action: missing `}}`".into(),
        })?;
        let mut inner = &after[..end];
        if let Some(s) = inner.strip_prefix('-') {
            if s.starts_with([' ', '\t', '\n', '\r']) {
                text = text.trim_end().to_string();
                inner = s;
            }
        }
        line += rest[..start].matches('\n').count();
        let action_line = line;
        line += after[..end].matches('\n').count();
        let mut trim_right = false;
        if let Some(s) = inner.strip_suffix('-') {
            if s.ends_with([' ', '\t', '\n', '\r']) {
                trim_right = true;
                inner = s;
            }
        }
        out.push(Token::Text(text));
        out.push(Token::Action(inner.trim().to_string(), action_line));
        rest = &after[end + 2..];
        if trim_right {
            let trimmed = rest.trim_start();
            line += rest[..rest.len() - trimmed.len()].matches('\n').count();
            rest = trimmed;
        }
    }
    out.push(Token::Text(rest.to_string()));
    Ok(out)
}

fn split_words(s: &str, line: usize) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut w = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                w.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        w.push(n);
                    }
                } else if c == '"' {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(TemplateError {
                    line,
                    message: format!("unterminated string in `{s}`"),
                });
            }
            words.push(w);
        } else if c == '(' || c == ')' || c == '|' {
            words.push(c.to_string());
            chars.next();
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '(' || c == ')' || c == '|' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            words.push(w);
        }
    }
    Ok(words)
}

fn parse_pipeline(text: &str, line: usize) -> Result<Pipeline> {
    let words = split_words(text, line)?;
    let mut pos = 0;
    let p = parse_words(&words, &mut pos, text, line)?;
    if pos != words.len() {
        return Err(TemplateError {
            line,
            message: format!("unexpected `)` in `{text}`"),
        });
    }
    Ok(p)
}

fn parse_words(words: &[String], pos: &mut usize, text: &str, line: usize) -> Result<Pipeline> {
    let mut commands = vec![];
    let mut current = Command {
        name: None,
        args: vec![],
    };
    while *pos < words.len() {
        let w = &words[*pos];
        *pos += 1;
        match w.as_str() {
            ")" => {
                *pos -= 1;
                break;
            }
            "|" => commands.push(std::mem::replace(
                &mut current,
                Command {
                    name: None,
                    args: vec![],
                },
            )),
            "(" => {
                let sub = parse_words(words, pos, text, line)?;
                if words.get(*pos).map(String::as_str) != Some(")") {
                    return Err(TemplateError {
                        line,
                        message: format!("missing `)` in `{text}`"),
                    });
                }
                *pos += 1;
                current.args.push(Arg::Sub(Box::new(sub)));
            }
            _ => {
                let arg = parse_arg(w, line)?;
                match arg {
                    None if current.name.is_none() && current.args.is_empty() => {
                        current.name = Some(w.clone())
                    }
                    None => {
                        return Err(TemplateError {
                            line,
                            message: format!(
                                "a function (`{w}`) can only start a command, in `{text}`"
                            ),
                        })
                    }
                    Some(a) => current.args.push(a),
                }
            }
        }
    }
    commands.push(current);
    if commands
        .iter()
        .any(|c| c.name.is_none() && c.args.is_empty())
    {
        return Err(TemplateError {
            line,
            message: format!("empty command in `{text}`"),
        });
    }
    Ok(Pipeline {
        line,
        text: text.to_string(),
        commands,
    })
}

/// `None` means the word is a function name.
fn parse_arg(w: &str, line: usize) -> Result<Option<Arg>> {
    if let Some(s) = w.strip_prefix('"') {
        let unquoted: String =
            serde_json::from_str(&format!("\"{s}")).map_err(|e| TemplateError {
                line,
                message: format!("bad string {w}: {e}"),
            })?;
        return Ok(Some(Arg::Str(unquoted)));
    }
    if w == "." {
        return Ok(Some(Arg::Field(vec![], false)));
    }
    if w == "$" {
        return Ok(Some(Arg::Field(vec![], true)));
    }
    if let Some(path) = w.strip_prefix("$.") {
        return Ok(Some(Arg::Field(
            path.split('.').map(str::to_string).collect(),
            true,
        )));
    }
    if let Some(path) = w.strip_prefix('.') {
        return Ok(Some(Arg::Field(
            path.split('.').map(str::to_string).collect(),
            false,
        )));
    }
    match w {
        "true" => return Ok(Some(Arg::Bool(true))),
        "false" => return Ok(Some(Arg::Bool(false))),
        "nil" => return Ok(Some(Arg::Nil)),
        _ => {}
    }
    if let Ok(n) = w.parse::<f64>() {
        return Ok(Some(Arg::Num(n)));
    }
    if w.starts_with('$') {
        return Err(TemplateError {
            line,
            message: format!("variables (`{w}`) are not supported by this engine"),
        });
    }
    Ok(None)
}

#[derive(Clone, Copy, PartialEq)]
enum BlockKind {
    Root,
    If,
    With,
    Range,
}

/// An open block: its kind, its branches (condition, body) and the line it opened on.
struct Frame {
    kind: BlockKind,
    branches: Vec<(Option<Pipeline>, Vec<Node>)>,
    line: usize,
}

fn parse(src: &str) -> Result<Vec<Node>> {
    let mut stack = vec![Frame {
        kind: BlockKind::Root,
        branches: vec![(None, vec![])],
        line: 0,
    }];
    let push = |stack: &mut Vec<Frame>, node: Node| {
        if let Some((_, body)) = stack.last_mut().and_then(|f| f.branches.last_mut()) {
            body.push(node);
        }
    };
    for token in tokenize(src)? {
        let (action, line) = match token {
            Token::Text(t) if t.is_empty() => continue,
            Token::Text(t) => {
                push(&mut stack, Node::Text(t));
                continue;
            }
            Token::Action(a, line) => (a, line),
        };
        if action.starts_with("/*") {
            continue;
        }
        let (word, rest) = action
            .split_once(char::is_whitespace)
            .unwrap_or((&action, ""));
        match word {
            "if" | "with" | "range" => {
                let kind = match word {
                    "if" => BlockKind::If,
                    "with" => BlockKind::With,
                    _ => BlockKind::Range,
                };
                let cond = parse_pipeline(rest, line)?;
                stack.push(Frame {
                    kind,
                    branches: vec![(Some(cond), vec![])],
                    line,
                });
            }
            "else" => {
                let frame = stack.last_mut().ok_or(TemplateError {
                    line,
                    message: "unexpected `else`".into(),
                })?;
                let has_else = frame.branches.last().is_some_and(|b| b.0.is_none());
                if frame.kind == BlockKind::Root || has_else {
                    return Err(TemplateError {
                        line,
                        message: "unexpected `else`".into(),
                    });
                }
                match rest.strip_prefix("if ") {
                    Some(cond) if frame.kind == BlockKind::If => {
                        frame
                            .branches
                            .push((Some(parse_pipeline(cond, line)?), vec![]));
                    }
                    Some(_) => {
                        return Err(TemplateError {
                            line,
                            message: "`else if` is only allowed inside `if`".into(),
                        })
                    }
                    None => frame.branches.push((None, vec![])),
                }
            }
            "end" => {
                if stack.len() < 2 {
                    return Err(TemplateError {
                        line,
                        message: "unexpected `end`".into(),
                    });
                }
                let Some(frame) = stack.pop() else { continue };
                let mut conditional = Vec::new();
                let mut els = Vec::new();
                for (cond, body) in frame.branches {
                    match cond {
                        Some(c) => conditional.push((c, body)),
                        None => els = body,
                    }
                }
                let node = match frame.kind {
                    BlockKind::If => Node::If(conditional, els),
                    BlockKind::With | BlockKind::Range => {
                        let Some((p, body)) = conditional.pop() else {
                            continue;
                        };
                        if frame.kind == BlockKind::With {
                            Node::With(p, body, els)
                        } else {
                            Node::Range(p, body, els)
                        }
                    }
                    BlockKind::Root => continue,
                };
                push(&mut stack, node);
            }
            "define" | "template" | "block" | "include" | "break" | "continue" => {
                return Err(TemplateError {
                    line,
                    message: format!("`{word}` is not supported by this engine"),
                });
            }
            _ => {
                let p = parse_pipeline(&action, line)?;
                push(&mut stack, Node::Print(p));
            }
        }
    }
    if stack.len() != 1 {
        let line = stack.last().map(|f| f.line).unwrap_or(0);
        return Err(TemplateError {
            line,
            message: "block opened here is never closed with `{{ end }}`".into(),
        });
    }
    Ok(stack
        .pop()
        .and_then(|mut f| f.branches.pop())
        .map(|b| b.1)
        .unwrap_or_default())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Formats a value as Go templates print it.
fn print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string(v).unwrap_or_default(),
    }
}

fn to_yaml(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        _ => serde_yaml_ng::to_string(v)
            .unwrap_or_default()
            .trim_end()
            .to_string(),
    }
}

fn indent(n: usize, s: &str) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Ctx<'a> {
    root: &'a Value,
}

impl Ctx<'_> {
    fn arg(&self, a: &Arg, dot: &Value, line: usize) -> Result<Value> {
        Ok(match a {
            Arg::Str(s) => Value::String(s.clone()),
            Arg::Num(n) => serde_json::Number::from_f64(*n)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Null,
            Arg::Field(path, from_root) => {
                let mut v = if *from_root { self.root } else { dot };
                for p in path {
                    match v {
                        Value::Object(m) => v = m.get(p).unwrap_or(&Value::Null),
                        Value::Null => return Ok(Value::Null),
                        _ => {
                            return Err(TemplateError {
                                line,
                                message: format!("can't read field `{p}` of a {}", type_name(v)),
                            })
                        }
                    }
                }
                v.clone()
            }
            Arg::Sub(p) => self.pipeline(p, dot)?,
        })
    }

    fn pipeline(&self, p: &Pipeline, dot: &Value) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for c in &p.commands {
            let mut args = c
                .args
                .iter()
                .map(|a| self.arg(a, dot, p.line))
                .collect::<Result<Vec<_>>>()?;
            if let Some(v) = prev.take() {
                args.push(v);
            }
            prev = Some(match &c.name {
                None => {
                    if args.len() != 1 {
                        return Err(TemplateError {
                            line: p.line,
                            message: format!("can't give an argument to a value in `{}`", p.text),
                        });
                    }
                    args.pop().unwrap_or(Value::Null)
                }
                Some(f) => call(f, args).map_err(|m| TemplateError {
                    line: p.line,
                    message: format!("{m} in `{}`", p.text),
                })?,
            });
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn nodes(&self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<()> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Print(p) => out.push_str(&print(&self.pipeline(p, dot)?)),
                Node::If(branches, els) => {
                    let mut done = false;
                    for (cond, body) in branches {
                        if truthy(&self.pipeline(cond, dot)?) {
                            self.nodes(body, dot, out)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(els, dot, out)?;
                    }
                }
                Node::With(p, body, els) => {
                    let v = self.pipeline(p, dot)?;
                    if truthy(&v) {
                        self.nodes(body, &v, out)?;
                    } else {
                        self.nodes(els, dot, out)?;
                    }
                }
                Node::Range(p, body, els) => {
                    let v = self.pipeline(p, dot)?;
                    let items: Vec<Value> = match &v {
                        Value::Array(a) => a.clone(),
                        Value::Object(m) => m.values().cloned().collect(),
                        Value::Null => vec![],
                        other => {
                            return Err(TemplateError {
                                line: p.line,
                                message: format!("range can't iterate over a {}", type_name(other)),
                            })
                        }
                    };
                    if items.is_empty() {
                        self.nodes(els, dot, out)?;
                    }
                    for item in &items {
                        self.nodes(body, item, out)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

fn want_n(args: &[Value], n: usize, name: &str) -> std::result::Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "`{name}` takes {n} argument(s), got {}",
            args.len()
        ))
    }
}

fn int_arg(v: &Value, name: &str) -> std::result::Result<usize, String> {
    v.as_f64()
        .map(|f| f.max(0.0) as usize)
        .ok_or_else(|| format!("`{name}` expects a number, got {}", type_name(v)))
}

fn call(name: &str, args: Vec<Value>) -> std::result::Result<Value, String> {
    let s = |v: &Value| match v {
        Value::Null => String::new(),
        other => print(other),
    };
    Ok(match name {
        "quote" => Value::String(
            args.iter()
                .map(|a| format!("{:?}", s(a)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "squote" => Value::String(
            args.iter()
                .map(|a| format!("'{}'", s(a)))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "default" => {
            want_n(&args, 2, name)?;
            if truthy(&args[1]) {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "required" => {
            want_n(&args, 2, name)?;
            if args[1].is_null() {
                return Err(s(&args[0]));
            }
            args[1].clone()
        }
        "toYaml" => {
            want_n(&args, 1, name)?;
            Value::String(to_yaml(&args[0]))
        }
        "indent" | "nindent" => {
            want_n(&args, 2, name)?;
            let body = indent(int_arg(&args[0], name)?, &s(&args[1]));
            Value::String(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "upper" => Value::String(s(args.first().unwrap_or(&Value::Null)).to_uppercase()),
        "lower" => Value::String(s(args.first().unwrap_or(&Value::Null)).to_lowercase()),
        "toString" => Value::String(s(args.first().unwrap_or(&Value::Null))),
        "trunc" => {
            want_n(&args, 2, name)?;
            let n = int_arg(&args[0], name)?;
            Value::String(s(&args[1]).chars().take(n).collect())
        }
        "trimSuffix" => {
            want_n(&args, 2, name)?;
            let (suffix, text) = (s(&args[0]), s(&args[1]));
            Value::String(text.strip_suffix(&suffix).unwrap_or(&text).to_string())
        }
        "b64enc" => {
            want_n(&args, 1, name)?;
            Value::String(base64(s(&args[0]).as_bytes()))
        }
        "not" => {
            want_n(&args, 1, name)?;
            Value::Bool(!truthy(&args[0]))
        }
        "eq" => {
            want_n(&args, 2, name)?;
            Value::Bool(args[0] == args[1])
        }
        other => return Err(format!("function `{other}` is not defined")),
    })
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Renders `src` with `root` as `.` and `$`.
///
/// # Errors
/// A parse or execution error, with the template line.
pub fn render(src: &str, root: &Value) -> Result<String> {
    let nodes = parse(src)?;
    let mut out = String::new();
    Ctx { root }.nodes(&nodes, root, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(src: &str, v: Value) -> String {
        render(src, &v).unwrap()
    }

    #[test]
    fn fields_pipelines_and_trimming() {
        let v = json!({"Values": {"name": "web", "port": 8080.0}, "Release": {"Name": "r"}});
        assert_eq!(
            r(
                "a: {{ .Values.name | quote }}\nb: {{ .Values.port }}",
                v.clone()
            ),
            "a: \"web\"\nb: 8080"
        );
        assert_eq!(
            r(
                "x\n  {{- .Release.Name }}-{{ default \"d\" .Values.none -}}\n  y",
                v
            ),
            "xr-dy"
        );
    }

    #[test]
    fn if_else_with_and_range() {
        let v = json!({"Values": {"on": true, "list": ["a", "b"], "m": {"k": "v"}}});
        assert_eq!(
            r(
                "{{ if .Values.off }}1{{ else if .Values.on }}2{{ else }}3{{ end }}",
                v.clone()
            ),
            "2"
        );
        assert_eq!(
            r("{{ range .Values.list }}[{{ . }}]{{ end }}", v.clone()),
            "[a][b]"
        );
        assert_eq!(r("{{ with .Values.m }}{{ .k }}{{ end }}", v.clone()), "v");
        assert_eq!(r("{{ if .Values.off }}1{{ end }}", v), "");
    }

    #[test]
    fn to_yaml_with_nindent() {
        let v = json!({"Values": {"res": {"cpu": "1", "mem": "2Gi"}}});
        assert_eq!(
            r("r:{{ toYaml .Values.res | nindent 2 }}", v),
            "r:\n  cpu: '1'\n  mem: 2Gi"
        );
    }

    #[test]
    fn errors_carry_the_line() {
        let err = render("a\nb\n{{ nosuch .Values }}", &json!({})).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(
            err.message.contains("function `nosuch` is not defined"),
            "{err}"
        );
        let err = render("a\n{{ if .x }}\nb", &json!({})).unwrap_err();
        assert_eq!(err.line, 2);
        let err = render(
            "{{ required \"image is required\" .Values.image }}",
            &json!({"Values": {}}),
        )
        .unwrap_err();
        assert!(err.message.contains("image is required"));
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi!"), "aGkh");
        assert_eq!(base64(b""), "");
    }
}
