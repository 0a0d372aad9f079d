//! Evaluator: walks the tree over a JSON value with Go's semantics.

use serde_json::{Map, Value};

use super::funcs;
use super::parse::{Arg, Cmd, Control, Node, Pipe};
use super::value::{self, go_type, print_val, Val};
use super::{ExecOptions, TemplateError};

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Where the dot currently is: the root (a docker formatter "struct") or inside it.
#[derive(Clone)]
struct Dot {
    val: Val,
    is_root: bool,
}

pub(crate) struct State<'a> {
    src: &'a str,
    opts: &'a ExecOptions<'a>,
    vars: Vec<(String, Val)>,
    out: String,
}

impl<'a> State<'a> {
    pub(crate) fn new(src: &'a str, opts: &'a ExecOptions<'a>, root: &Value) -> State<'a> {
        State {
            src,
            opts,
            vars: vec![("$".into(), Val::Json(root.clone()))],
            out: String::new(),
        }
    }

    pub(crate) fn run(mut self, nodes: &[Node], root: &Value) -> Result<String, TemplateError> {
        let dot = Dot {
            val: Val::Json(root.clone()),
            is_root: true,
        };
        self.walk(nodes, &dot)?;
        Ok(self.out)
    }

    /// Go's exec error: `template: :LINE:COL: executing "" at <CONTEXT>: MSG`.
    fn err(&self, span: (usize, usize), msg: impl std::fmt::Display) -> TemplateError {
        let (pos, end) = span;
        let before = &self.src[..pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        let mut ctx = self
            .src
            .get(pos..end)
            .unwrap_or_default()
            .trim()
            .to_string();
        if ctx.chars().count() > 20 {
            ctx = format!("{}...", ctx.chars().take(20).collect::<String>());
        }
        TemplateError::Exec(format!(
            "template: :{line}:{col}: executing \"\" at <{ctx}>: {msg}"
        ))
    }

    fn walk(&mut self, nodes: &[Node], dot: &Dot) -> Result<Flow, TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        self.out.push_str(&print_val(&v));
                    }
                }
                Node::If(c) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(&c.pipe, dot)?;
                    let flow = if v.truthy() {
                        self.walk(&c.body, dot)?
                    } else if let Some(els) = &c.els {
                        self.walk(els, dot)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With(c) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(&c.pipe, dot)?;
                    let flow = if v.truthy() {
                        self.walk(
                            &c.body,
                            &Dot {
                                val: v,
                                is_root: false,
                            },
                        )?
                    } else if let Some(els) = &c.els {
                        self.walk(els, dot)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(c) => self.range(c, dot)?,
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, c: &Control, dot: &Dot) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        // The pipeline itself must not bind the loop variables; evaluate without decls.
        let bare = Pipe {
            decl: Vec::new(),
            is_assign: false,
            cmds: c.pipe.cmds.clone(),
        };
        let v = self.pipeline(&bare, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Val::Missing | Val::Json(Value::Null) => Vec::new(),
            Val::Json(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e.clone()))
                .collect(),
            Val::Json(Value::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::String(k.clone()), m[k.as_str()].clone()))
                    .collect()
            }
            Val::Json(Value::Number(n)) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                .map(|i| (Value::from(i), Value::from(i)))
                .collect(),
            other => {
                let span = c.pipe.cmds.first().map_or((0, 0), |c| c.span);
                return Err(self.err(
                    span,
                    format!("range can't iterate over {}", print_val(other)),
                ));
            }
        };
        if items.is_empty() {
            if let Some(els) = &c.els {
                self.walk(els, dot)?;
            }
            self.vars.truncate(mark);
            return Ok(());
        }
        for (k, e) in items {
            let inner = self.vars.len();
            match c.pipe.decl.as_slice() {
                [one] => self.bind(one, Val::Json(e.clone()), c.pipe.is_assign),
                [key, val] => {
                    self.bind(key, Val::Json(k), c.pipe.is_assign);
                    self.bind(val, Val::Json(e.clone()), c.pipe.is_assign);
                }
                _ => {}
            }
            let flow = self.walk(
                &c.body,
                &Dot {
                    val: Val::Json(e),
                    is_root: false,
                },
            )?;
            self.vars.truncate(inner.max(mark));
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn bind(&mut self, name: &str, v: Val, assign: bool) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return;
            }
        }
        self.vars.push((name.to_string(), v));
    }

    fn pipeline(&mut self, pipe: &Pipe, dot: &Dot) -> Result<Val, TemplateError> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(cmd, dot, value)?);
        }
        // A nil interface prints as "no value", like Go's "dig into interface{}" step.
        let v = match value.unwrap_or(Val::Missing) {
            Val::Json(Value::Null) => Val::Missing,
            v => v,
        };
        for name in &pipe.decl {
            self.bind(name, v.clone(), pipe.is_assign);
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &Cmd, dot: &Dot, fin: Option<Val>) -> Result<Val, TemplateError> {
        let first = &cmd.args[0];
        match first {
            Arg::Func(name) => self.function(name, cmd, dot, fin),
            Arg::Field { chain, span } => {
                let args = self.eval_args(&cmd.args[1..], dot, fin)?;
                self.field_chain(dot.val.clone(), dot.is_root, chain, args, *span)
            }
            Arg::Var { name, chain } if cmd.args.len() > 1 || fin.is_some() => {
                let base = self.var(name, cmd.span)?;
                let args = self.eval_args(&cmd.args[1..], dot, fin)?;
                let root = name == "$";
                self.field_chain(base, root, chain, args, cmd.span)
            }
            Arg::Sub { .. } if cmd.args.len() > 1 || fin.is_some() => {
                Err(self.err(cmd.span, "can't give argument to non-function"))
            }
            _ if cmd.args.len() > 1 || fin.is_some() => Err(self.err(
                cmd.span,
                format!(
                    "can't give argument to non-function {}",
                    self.text(cmd.span)
                ),
            )),
            other => self.arg(other, dot, cmd.span),
        }
    }

    fn text(&self, span: (usize, usize)) -> &str {
        self.src.get(span.0..span.1).unwrap_or_default().trim()
    }

    fn eval_args(
        &mut self,
        args: &[Arg],
        dot: &Dot,
        fin: Option<Val>,
    ) -> Result<Vec<Val>, TemplateError> {
        let mut out = Vec::with_capacity(args.len() + 1);
        for a in args {
            out.push(self.arg(a, dot, (0, 0))?);
        }
        if let Some(f) = fin {
            out.push(f);
        }
        Ok(out)
    }

    fn function(
        &mut self,
        name: &str,
        cmd: &Cmd,
        dot: &Dot,
        fin: Option<Val>,
    ) -> Result<Val, TemplateError> {
        // and/or evaluate lazily and return the deciding operand.
        if name == "and" || name == "or" {
            let want = name == "or";
            let n = cmd.args.len() - 1 + usize::from(fin.is_some());
            if n == 0 {
                return Err(self.err(
                    cmd.span,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Val::Missing;
            for a in &cmd.args[1..] {
                last = self.arg(a, dot, cmd.span)?;
                if last.truthy() == want {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let args = self.eval_args(&cmd.args[1..], dot, fin)?;
        if name == "json" && self.opts.escape_root_json && !self.opts.header {
            if let [arg] = args.as_slice() {
                if *arg == self.vars[0].1 {
                    return Ok(Val::Json(Value::String(value::escape_html(
                        &value::go_json(&arg.as_json()),
                    ))));
                }
            }
        }
        funcs::call(name, &args, self.opts.header).map_err(|e| self.err(cmd.span, e))
    }

    fn var(&self, name: &str, span: (usize, usize)) -> Result<Val, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(span, format!("undefined variable: {name}")))
    }

    fn arg(&mut self, a: &Arg, dot: &Dot, span: (usize, usize)) -> Result<Val, TemplateError> {
        match a {
            Arg::Dot => Ok(dot.val.clone()),
            Arg::Nil => Ok(Val::Json(Value::Null)),
            Arg::Const(v) => Ok(Val::Json(v.clone())),
            Arg::Field { chain, span } => {
                self.field_chain(dot.val.clone(), dot.is_root, chain, Vec::new(), *span)
            }
            Arg::Var { name, chain } => {
                let base = self.var(name, span)?;
                let root = name == "$";
                self.field_chain(base, root, chain, Vec::new(), span)
            }
            Arg::Sub { pipe, chain } => {
                let v = self.pipeline(pipe, dot)?;
                let span = pipe.cmds.first().map_or(span, |c| c.span);
                self.field_chain(v, false, chain, Vec::new(), span)
            }
            Arg::Func(name) => {
                let cmd = Cmd {
                    args: vec![a.clone()],
                    span,
                };
                self.function(name, &cmd, dot, None)
            }
        }
    }

    /// `.A.B.C` from `base`; `args` go to the last element (only methods accept them).
    fn field_chain(
        &self,
        base: Val,
        base_is_root: bool,
        chain: &[String],
        args: Vec<Val>,
        span: (usize, usize),
    ) -> Result<Val, TemplateError> {
        if chain.is_empty() {
            return if args.is_empty() {
                Ok(base)
            } else {
                Err(self.err(span, "can't give argument to non-function"))
            };
        }
        let mut cur = base;
        for (i, name) in chain.iter().enumerate() {
            let last = i + 1 == chain.len();
            let at_root = base_is_root && i == 0;
            if at_root {
                if let Some(m) = self.opts.methods.and_then(|m| m.get(name)) {
                    cur = self.method(name, m, if last { &args } else { &[] }, span)?;
                    continue;
                }
            }
            if last && !args.is_empty() {
                return Err(self.err(span, format!("{name} is not a method but has arguments")));
            }
            cur = match &cur {
                Val::Json(Value::Object(m)) => match m.get(name) {
                    Some(v) => Val::Json(v.clone()),
                    None if at_root && self.opts.root_type.is_some() => {
                        let ty = self.opts.root_type.unwrap_or_default();
                        return Err(
                            self.err(span, format!("can't evaluate field {name} in type {ty}"))
                        );
                    }
                    None => Val::Missing,
                },
                Val::Missing | Val::Json(Value::Null) => {
                    return Err(self.err(
                        span,
                        format!("nil pointer evaluating interface {{}}.{name}"),
                    ))
                }
                other => {
                    return Err(self.err(
                        span,
                        format!("can't evaluate field {name} in type {}", go_type(other)),
                    ))
                }
            };
        }
        Ok(cur)
    }

    /// A formatter method that takes one key, like the docker CLI's `.Label "name"`.
    fn method(
        &self,
        name: &str,
        table: &Value,
        args: &[Val],
        span: (usize, usize),
    ) -> Result<Val, TemplateError> {
        let [Val::Json(Value::String(key))] = args else {
            return Err(self.err(
                span,
                format!("wrong number of args for {name}: want 1 got {}", args.len()),
            ));
        };
        let empty = Map::new();
        let m = table.as_object().unwrap_or(&empty);
        Ok(Val::Json(
            m.get(key).cloned().unwrap_or(Value::String(String::new())),
        ))
    }
}
