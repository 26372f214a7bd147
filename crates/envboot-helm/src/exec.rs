//! Executing parsed templates with Go's text/template semantics.

use std::collections::HashMap;
use std::rc::Rc;

use super::funcs::Func;
use super::parse::{self, Arg, Cmd, Control, Node, Pipe, Source};
use super::value::{print_action, Obj, Value};

/// A named template: its body and the file it was parsed from.
#[derive(Clone)]
pub struct Tmpl {
    pub body: Rc<Vec<Node>>,
    pub src: Rc<Source>,
}

/// An execution error as Go formats it:
/// `template: LOCATION: executing "NAME" at <CONTEXT>: MESSAGE`.
#[derive(Debug, Clone)]
pub struct ExecError {
    pub location: String,
    pub name: String,
    pub context: String,
    pub message: String,
    /// The message of `fail`/`required` (Helm reports only that).
    pub user_message: Option<String>,
    /// The message without the nested error text.
    pub short_message: String,
    /// Line of the failing expression in its file.
    pub line: usize,
    pub file: String,
    /// The error of a nested execution (`include`), and whether it came through `tpl`.
    pub nested: Option<Box<ExecError>>,
    pub via_tpl: bool,
}

impl ExecError {
    /// The message Helm v4 prints for a failed render.
    pub fn helm_message(&self) -> String {
        if let Some(m) = &self.user_message {
            if !m.contains('\n') {
                return format!("execution error at ({}): {}", self.location, m);
            }
        }
        let mut levels = vec![self];
        let mut cur = self;
        while let Some(n) = &cur.nested {
            if cur.via_tpl {
                return self.to_string();
            }
            levels.push(n);
            cur = n;
        }
        // Helm leaves errors of function calls as Go prints them.
        if levels.iter().any(|l| l.context.is_empty()) || cur.message.starts_with("error calling ")
        {
            return self.to_string();
        }
        let mut out = String::new();
        for (i, l) in levels.iter().enumerate() {
            let msg = if i + 1 < levels.len() {
                l.short_message.clone()
            } else {
                l.message.clone()
            };
            out.push_str(&format!(
                "{}\n  executing \"{}\" at <{}>:\n    {}\n",
                l.location, l.name, l.context, msg
            ));
        }
        out.trim().to_string()
    }
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.context.is_empty() {
            write!(f, "template: {}: {}", self.name, self.message)
        } else {
            write!(
                f,
                "template: {}: executing \"{}\" at <{}>: {}",
                self.location, self.name, self.context, self.message
            )
        }
    }
}

/// What a function call can fail with.
#[derive(Debug)]
pub enum FnError {
    /// `error calling NAME: MSG`
    Call(String),
    /// A message printed as it is (argument count and type errors).
    Plain(String),
    /// `fail` / `required`: Helm shows only this message.
    User(String),
    /// An error from a nested template execution (`include`, `tpl`).
    Nested(Box<ExecError>, String),
    /// A type error of argument `i` (reported at that argument, as Go does).
    Arg(usize, String),
}

pub type FnResult = Result<Value, FnError>;

enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct State {
    pub vars: Vec<(String, Value)>,
    pub name: String,
    pub src: Rc<Source>,
    pub depth: usize,
}

pub struct Engine {
    pub templates: HashMap<String, Tmpl>,
    pub include_stack: Vec<String>,
    /// The random functions' stream (see [`Engine::draw_for`]).
    pub rng: rand_chacha::ChaCha20Rng,
    pub randomness: crate::Randomness,
    /// Random values drawn so far (certificates count one each).
    pub draws: u64,
    /// What `lookup` finds (`None`: `helm template`, every lookup is empty).
    pub lookups: Option<std::sync::Arc<crate::Lookups>>,
    /// Lookups made that `lookups` has no answer for.
    pub unread: std::collections::BTreeSet<crate::LookupKey>,
    /// Nodes walked so far in this render (see [`MAX_STEPS`]).
    pub steps: u64,
    pub max_steps: u64,
    /// The position of the last action or control structure entered (for budget errors).
    pub at: usize,
}

/// The rendering budget of one chart in steps (template nodes walked, including every pass of a
/// range). Helm has none: a chart looping `until 2000000000` twice over runs there until it is
/// killed. The largest chart of the conformance corpora (argo-cd with redis-ha) takes 11,124.
pub const MAX_STEPS: u64 = 50_000_000;

type R<T> = Result<T, Box<ExecError>>;

/// Go's text/template: how deep `{{ template }}` calls may nest.
const MAX_EXEC_DEPTH: usize = 100_000;

/// Where Go reports a range error: the last node it evaluated.
fn range_pos(c: &Control) -> usize {
    c.pipe
        .cmds
        .last()
        .and_then(|cmd| cmd.args.last())
        .map(Arg::pos)
        .unwrap_or(c.pos)
}

fn nil_is_error_name(v: &Value) -> &'static str {
    match v {
        Value::Map(_) => "map[string]interface {}",
        _ => "interface {}",
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            templates: HashMap::new(),
            include_stack: Vec::new(),
            rng: rand_core::SeedableRng::from_seed([0; 32]),
            randomness: crate::Randomness::Fresh,
            draws: 0,
            lookups: None,
            unread: std::collections::BTreeSet::new(),
            steps: 0,
            max_steps: MAX_STEPS,
            at: 0,
        }
    }

    /// Chooses the random stream of template file `name`: fresh from the operating system, or
    /// derived from the key (HMAC-SHA256 of the file's name), so that each file draws the same
    /// values whatever the other files do.
    pub fn draw_for(&mut self, name: &str) -> Result<(), getrandom::Error> {
        let seed = match &self.randomness {
            crate::Randomness::Fresh => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)?;
                seed
            }
            crate::Randomness::Derived(key) => {
                use hmac::Mac;
                let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(b"envboot/helm-randomness/v1\0");
                mac.update(name.as_bytes());
                mac.finalize().into_bytes().into()
            }
        };
        self.rng = rand_core::SeedableRng::from_seed(seed);
        Ok(())
    }

    /// Add a parsed file ([`parse::parse`]): the templates it defines, then itself.
    pub fn add_parsed(&mut self, src: Source, parsed: parse::Parsed) {
        let name = src.name.clone();
        let src = Rc::new(src);
        for (n, body) in parsed.defines {
            self.templates.insert(
                n,
                Tmpl {
                    body: Rc::new(body),
                    src: src.clone(),
                },
            );
        }
        self.templates.insert(
            name,
            Tmpl {
                body: Rc::new(parsed.body),
                src,
            },
        );
    }

    /// Execute the template `name` with `dot`, returning its output.
    pub fn execute(&mut self, name: &str, dot: &Value) -> R<String> {
        let Some(t) = self.templates.get(name).cloned() else {
            return Err(Box::new(ExecError {
                location: name.to_string(),
                name: name.to_string(),
                context: String::new(),
                message: format!("no template {name:?} associated with template {name:?}"),
                user_message: None,
                short_message: String::new(),
                line: 0,
                file: name.to_string(),
                nested: None,
                via_tpl: false,
            }));
        };
        let mut st = State {
            vars: vec![("$".to_string(), dot.clone())],
            name: name.to_string(),
            src: t.src.clone(),
            depth: 0,
        };
        let mut out = String::new();
        self.walk_list(&mut st, &t.body, dot, &mut out)?;
        Ok(out)
    }

    /// Execute a parsed body (for `tpl`) as template `name`.
    pub fn execute_body(
        &mut self,
        name: &str,
        src: Rc<Source>,
        body: &[Node],
        dot: &Value,
        depth: usize,
    ) -> R<String> {
        let mut st = State {
            vars: vec![("$".to_string(), dot.clone())],
            name: name.to_string(),
            src,
            depth,
        };
        let mut out = String::new();
        self.walk_list(&mut st, body, dot, &mut out)?;
        Ok(out)
    }

    pub fn err(&self, st: &State, pos: usize, context: String, message: String) -> Box<ExecError> {
        Box::new(ExecError {
            location: st.src.location(pos),
            name: st.name.clone(),
            context,
            message,
            user_message: None,
            short_message: String::new(),
            line: st.src.line(pos),
            file: st.src.name.clone(),
            nested: None,
            via_tpl: false,
        })
    }

    fn walk_list(
        &mut self,
        st: &mut State,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> R<Flow> {
        // an empty range body still costs a step per iteration
        self.steps += 1;
        for n in nodes {
            self.steps += 1;
            if self.steps > self.max_steps && !matches!(n, Node::Text(_)) {
                let limit = self.max_steps;
                return Err(self.over_budget(st, n, format!("{limit} steps")));
            }
            let flow = self.walk(st, n, dot, out)?;
            if out.len() > crate::funcs::MAX_VALUE_BYTES {
                let limit = crate::funcs::MAX_VALUE_BYTES;
                return Err(self.over_budget(st, n, format!("{limit} bytes of output")));
            }
            match flow {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn over_budget(&self, st: &State, node: &Node, what: String) -> Box<ExecError> {
        let (pos, context) = match node {
            Node::Action(p) => (p.pos, format!("{{{{{p}}}}}")),
            Node::If(c) => (c.pos, format!("{{{{if {}}}}}", c.pipe)),
            Node::With(c) => (c.pos, format!("{{{{with {}}}}}", c.pipe)),
            Node::Range(c) => (c.pos, format!("{{{{range {}}}}}", c.pipe)),
            Node::Template { pos, name, .. } => (*pos, format!("{{{{template {name:?}}}}}")),
            _ => (self.at, String::new()),
        };
        self.err(
            st,
            pos,
            context,
            format!("rendering stopped: the chart exceeds envboot's budget of {what}"),
        )
    }

    fn walk(&mut self, st: &mut State, node: &Node, dot: &Value, out: &mut String) -> R<Flow> {
        crate::stack::deep(|| self.walk_node(st, node, dot, out))
    }

    fn walk_node(&mut self, st: &mut State, node: &Node, dot: &Value, out: &mut String) -> R<Flow> {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = self.eval_pipe(st, p, dot)?;
                if p.decl.is_empty() {
                    print_action(&v, out);
                }
            }
            Node::If(c) | Node::With(c) => {
                self.at = c.pos;
                let is_with = matches!(node, Node::With(_));
                let mark = st.vars.len();
                let v = self.eval_pipe(st, &c.pipe, dot)?;
                let flow = if v.truthy() {
                    if is_with {
                        self.walk_list(st, &c.body, &v, out)?
                    } else {
                        self.walk_list(st, &c.body, dot, out)?
                    }
                } else if let Some(els) = &c.els {
                    self.walk_list(st, els, dot, out)?
                } else {
                    Flow::Normal
                };
                st.vars.truncate(mark);
                return Ok(flow);
            }
            Node::Range(c) => {
                self.at = c.pos;
                return self.walk_range(st, c, dot, out);
            }
            Node::Template { pos, name, pipe } => {
                let data = match pipe {
                    Some(p) => self.eval_pipe(st, p, dot)?,
                    None => Value::Nil,
                };
                let ctx = || match pipe {
                    Some(p) => format!("{{{{template {name:?} {p}}}}}"),
                    None => format!("{{{{template {name:?}}}}}"),
                };
                let Some(t) = self.templates.get(name).cloned() else {
                    return Err(self.err(
                        st,
                        *pos,
                        ctx(),
                        format!("template {name:?} not defined"),
                    ));
                };
                // text/template's maxExecDepth, checked as walkTemplate does
                if st.depth >= MAX_EXEC_DEPTH {
                    return Err(self.err(
                        st,
                        *pos,
                        ctx(),
                        format!("exceeded maximum template depth ({MAX_EXEC_DEPTH})"),
                    ));
                }
                let mut inner = State {
                    vars: vec![("$".to_string(), data.clone())],
                    name: name.clone(),
                    src: t.src.clone(),
                    depth: st.depth + 1,
                };
                self.walk_list(&mut inner, &t.body, &data, out)?;
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_range(
        &mut self,
        st: &mut State,
        c: &Control,
        dot: &Value,
        out: &mut String,
    ) -> R<Flow> {
        let mark = st.vars.len();
        let v = self.eval_pipe_value(st, &c.pipe, dot)?;
        // range's own variables
        let decl = &c.pipe.decl;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                .collect(),
            Value::Map(m) => m
                .borrow()
                .iter()
                .map(|(k, x)| (Value::str(k), x.clone()))
                .collect(),
            Value::Int(n) => {
                if decl.len() > 1 {
                    return Err(self.err(
                        st,
                        c.pos,
                        format!("{}", c.pipe),
                        "can't use two iteration variables with integer range".into(),
                    ));
                }
                (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect()
            }
            Value::Nil => Vec::new(),
            Value::Obj(o) => match &**o {
                Obj::ApiVersions(l) => l
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (Value::Int(i as i64), Value::str(x)))
                    .collect(),
                Obj::Files(f) => f
                    .iter()
                    .map(|(k, x)| (Value::str(k), Value::Obj(Rc::new(Obj::Bytes(x.clone())))))
                    .collect(),
                Obj::Bytes(b) => b
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (Value::Int(i as i64), Value::Int(i64::from(*x))))
                    .collect(),
                _ => {
                    return Err(self.err(
                        st,
                        range_pos(c),
                        format!("{}", c.pipe),
                        format!("range can't iterate over {}", super::value::to_v(&v)),
                    ));
                }
            },
            other => {
                return Err(self.err(
                    st,
                    range_pos(c),
                    format!("{}", c.pipe),
                    format!("range can't iterate over {}", super::value::to_v(other)),
                ));
            }
        };
        if items.is_empty() {
            let flow = match &c.els {
                Some(els) => self.walk_list(st, els, dot, out)?,
                None => Flow::Normal,
            };
            st.vars.truncate(mark);
            let _ = flow;
            return Ok(Flow::Normal);
        }
        for var in decl.iter() {
            if !c.pipe.assign {
                st.vars.push((var.clone(), v.clone()));
            }
        }
        let inner_mark = st.vars.len();
        for (k, x) in items {
            match decl.len() {
                1 => self.set_var(st, &decl[0], x.clone(), !c.pipe.assign),
                2 => {
                    self.set_var(st, &decl[0], k, !c.pipe.assign);
                    self.set_var(st, &decl[1], x.clone(), !c.pipe.assign);
                }
                _ => {}
            }
            let flow = self.walk_list(st, &c.body, &x, out)?;
            st.vars.truncate(inner_mark);
            match flow {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        st.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&self, st: &mut State, name: &str, v: Value, _top: bool) {
        if let Some(slot) = st.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    /// Evaluate a pipeline and bind its declared variables.
    pub fn eval_pipe(&mut self, st: &mut State, p: &Pipe, dot: &Value) -> R<Value> {
        let v = self.eval_pipe_value(st, p, dot)?;
        for var in &p.decl {
            if p.assign {
                if let Some(slot) = st.vars.iter_mut().rev().find(|(n, _)| n == var) {
                    slot.1 = v.clone();
                } else {
                    return Err(self.err(
                        st,
                        p.cmds
                            .last()
                            .and_then(|c| c.args.last())
                            .map(Arg::pos)
                            .unwrap_or(p.pos),
                        p.cmds
                            .last()
                            .and_then(|c| c.args.last())
                            .map(|a| a.to_string())
                            .unwrap_or_default(),
                        format!("undefined variable: {var}"),
                    ));
                }
            } else {
                st.vars.push((var.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_pipe_value(&mut self, st: &mut State, p: &Pipe, dot: &Value) -> R<Value> {
        let mut val: Option<Value> = None;
        for cmd in &p.cmds {
            val = Some(self.eval_cmd(st, cmd, dot, val)?);
        }
        Ok(val.unwrap_or(Value::Nil))
    }

    fn eval_cmd(&mut self, st: &mut State, cmd: &Cmd, dot: &Value, fin: Option<Value>) -> R<Value> {
        let Some(first) = cmd.args.first() else {
            return Ok(Value::Nil);
        };
        let rest = &cmd.args[1..];
        let not_fn = |this: &Self, st: &State| {
            this.err(
                st,
                first.pos(),
                format!("{first}"),
                format!("can't give argument to non-function {first}"),
            )
        };
        match first {
            Arg::Ident(_, name, func) => self.eval_function(st, cmd, name, *func, rest, dot, fin),
            Arg::Field(pos, chain) => {
                let args = self.eval_args(st, rest, dot)?;
                self.field_chain(st, *pos, first, dot.clone(), chain, args, fin, cmd)
            }
            Arg::Var(pos, name, chain) => {
                let base = self.lookup_var(st, *pos, name)?;
                if chain.is_empty() {
                    if !rest.is_empty() || fin.is_some() {
                        return Err(not_fn(self, st));
                    }
                    return Ok(base);
                }
                let args = self.eval_args(st, rest, dot)?;
                self.field_chain(st, *pos, first, base, chain, args, fin, cmd)
            }
            Arg::Chain(pos, base, chain) => {
                let b = self.eval_arg(st, base, dot)?;
                let args = self.eval_args(st, rest, dot)?;
                self.field_chain(st, *pos, first, b, chain, args, fin, cmd)
            }
            _ => {
                if !rest.is_empty() || fin.is_some() {
                    return Err(not_fn(self, st));
                }
                if let Arg::Nil(pos) = first {
                    return Err(self.err(
                        st,
                        *pos,
                        format!("{cmd}"),
                        "nil is not a command".into(),
                    ));
                }
                self.eval_arg(st, first, dot)
            }
        }
    }

    fn eval_args(&mut self, st: &mut State, args: &[Arg], dot: &Value) -> R<Vec<Value>> {
        let mut out = Vec::with_capacity(args.len());
        for a in args {
            out.push(self.eval_arg(st, a, dot)?);
        }
        Ok(out)
    }

    fn lookup_var(&self, st: &State, pos: usize, name: &str) -> R<Value> {
        st.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                self.err(
                    st,
                    pos,
                    name.to_string(),
                    format!("undefined variable: {name}"),
                )
            })
    }

    pub fn eval_arg(&mut self, st: &mut State, a: &Arg, dot: &Value) -> R<Value> {
        crate::stack::deep(|| self.eval_arg_inner(st, a, dot))
    }

    fn eval_arg_inner(&mut self, st: &mut State, a: &Arg, dot: &Value) -> R<Value> {
        match a {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Int(_, i, _) => Ok(Value::Int(*i)),
            Arg::Float(_, f, _) => Ok(Value::Float(*f)),
            Arg::Str(_, s, _) => Ok(Value::str(s)),
            Arg::Field(pos, chain) => {
                let cmd = Cmd {
                    pos: *pos,
                    args: Vec::new(),
                };
                self.field_chain(st, *pos, a, dot.clone(), chain, Vec::new(), None, &cmd)
            }
            Arg::Var(pos, name, chain) => {
                let base = self.lookup_var(st, *pos, name)?;
                if chain.is_empty() {
                    return Ok(base);
                }
                let cmd = Cmd {
                    pos: *pos,
                    args: Vec::new(),
                };
                self.field_chain(st, *pos, a, base, chain, Vec::new(), None, &cmd)
            }
            Arg::Chain(pos, base, chain) => {
                let b = self.eval_arg(st, base, dot)?;
                let cmd = Cmd {
                    pos: *pos,
                    args: Vec::new(),
                };
                self.field_chain(st, *pos, a, b, chain, Vec::new(), None, &cmd)
            }
            Arg::Pipe(_, p) => {
                let mark = st.vars.len();
                let v = self.eval_pipe(st, p, dot);
                st.vars.truncate(mark);
                v
            }
            Arg::Ident(pos, name, func) => {
                let cmd_for_err = Cmd {
                    pos: *pos,
                    args: vec![Arg::Ident(*pos, name, *func)],
                };
                self.eval_function(st, &cmd_for_err, name, *func, &[], dot, None)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn field_chain(
        &mut self,
        st: &mut State,
        pos: usize,
        node: &Arg,
        recv: Value,
        chain: &[String],
        args: Vec<Value>,
        fin: Option<Value>,
        cmd: &Cmd,
    ) -> R<Value> {
        let mut cur = recv;
        let n = chain.len();
        let mut args = Some(args);
        let mut fin = fin;
        for (i, name) in chain.iter().enumerate() {
            let last = i == n - 1;
            let (a, f) = if last {
                (args.take().unwrap_or_default(), fin.take())
            } else {
                (Vec::new(), None)
            };
            cur = self.field(st, pos, node, &cur, name, a, f, i > 0, cmd)?;
        }
        Ok(cur)
    }

    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        st: &mut State,
        pos: usize,
        node: &Arg,
        recv: &Value,
        name: &str,
        mut args: Vec<Value>,
        fin: Option<Value>,
        strict_nil: bool,
        cmd: &Cmd,
    ) -> R<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        if let Some(f) = fin {
            args.push(f);
        }
        // the node as the error names it, built only for an error
        let ctx = || format!("{node}");
        match recv {
            Value::Map(m) => {
                if has_args {
                    return Err(self.err(
                        st,
                        pos,
                        ctx(),
                        format!("{name} is not a method but has arguments"),
                    ));
                }
                Ok(m.borrow().get(name).cloned().unwrap_or(Value::Nil))
            }
            Value::Nil => {
                if strict_nil {
                    Err(self.err(
                        st,
                        pos,
                        ctx(),
                        format!("nil pointer evaluating {}.{name}", nil_is_error_name(recv)),
                    ))
                } else {
                    Ok(Value::Nil)
                }
            }
            Value::Obj(o) => {
                let o = o.clone();
                super::funcs::obj_field(&o, name, args).map_err(|m| {
                    let c = format!("{cmd}");
                    self.err(st, pos, if c.is_empty() { ctx() } else { c }, m)
                })
            }
            other => {
                let ty = if strict_nil {
                    "interface {}"
                } else {
                    other.type_name()
                };
                Err(self.err(
                    st,
                    pos,
                    ctx(),
                    format!("can't evaluate field {name} in type {ty}"),
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_function(
        &mut self,
        st: &mut State,
        cmd: &Cmd,
        name: &str,
        func: Func,
        rest: &[Arg],
        dot: &Value,
        fin: Option<Value>,
    ) -> R<Value> {
        // short-circuit and/or
        if let Func::And | Func::Or = func {
            let and = matches!(func, Func::And);
            if rest.is_empty() && fin.is_none() {
                return Err(self.err(
                    st,
                    cmd.pos,
                    format!("{cmd}"),
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Nil;
            for a in rest {
                let v = self.eval_arg(st, a, dot)?;
                let t = v.truthy();
                if t != and {
                    return Ok(v);
                }
                last = v;
            }
            if let Some(f) = fin {
                return Ok(f);
            }
            return Ok(last);
        }
        let mut args = self.eval_args(st, rest, dot)?;
        let mut field_nil: Vec<bool> = rest
            .iter()
            .zip(args.iter())
            .map(|(a, v)| {
                v.is_nil()
                    && match a {
                        Arg::Field(_, f) => !f.is_empty(),
                        Arg::Var(_, _, chain) => !chain.is_empty(),
                        Arg::Chain(..) => true,
                        _ => false,
                    }
            })
            .collect();
        // constants, by their text: Go's text/template converts them to a typed parameter by
        // their syntax (`1.0` is an int, `1.5` is not)
        let mut consts: Vec<Option<String>> = rest
            .iter()
            .map(|a| match a {
                Arg::Int(_, _, t) | Arg::Float(_, _, t) | Arg::Str(_, _, t) => Some(t.clone()),
                Arg::Bool(_, b) => Some(b.to_string()),
                Arg::Nil(_) => Some("nil".to_string()),
                _ => None,
            })
            .collect();
        if let Some(f) = fin {
            args.push(f);
            field_nil.push(false);
            consts.push(None);
        }
        match func.call(self, st, name, args, field_nil, consts) {
            Ok(v) => Ok(v),
            Err(e) => {
                let ctx = format!("{cmd}");
                Err(match e {
                    FnError::Call(m) => {
                        self.err(st, cmd.pos, ctx, format!("error calling {name}: {m}"))
                    }
                    // the argument count is checked at the function's name, as Go does
                    FnError::Plain(m) => {
                        let at = cmd.args.first().map_or(cmd.pos, Arg::pos);
                        self.err(st, at, name.to_string(), m)
                    }
                    FnError::Arg(i, m) => match rest.get(i) {
                        Some(a) => self.err(st, a.pos(), format!("{a}"), m),
                        None => self.err(st, cmd.pos, ctx, m),
                    },
                    FnError::User(m) => {
                        let mut e =
                            self.err(st, cmd.pos, ctx, format!("error calling {name}: {m}"));
                        e.user_message = Some(m);
                        e
                    }
                    FnError::Nested(inner, prefix) => {
                        let mut e = self.err(
                            st,
                            cmd.pos,
                            ctx,
                            format!("error calling {name}: {prefix}{inner}"),
                        );
                        e.user_message = inner.user_message.clone();
                        e.short_message = format!("error calling {name}:");
                        e.via_tpl = !prefix.is_empty();
                        e.nested = Some(inner);
                        e
                    }
                })
            }
        }
    }
}
