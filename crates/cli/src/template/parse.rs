//! Parser: tokens to a tree of text, actions and control structures.

use serde_json::Value;

use super::lex::{parse_err, Item, Tok};
use super::TemplateError;

/// A node of the template tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Break,
    Continue,
}

/// `if`/`range`/`with`: a pipeline, a body and an optional else branch.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub body: Vec<Node>,
    pub els: Option<Vec<Node>>,
}

/// A pipeline: optional variable declarations, then commands joined by `|`.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command of a pipeline, with its source span for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
    pub span: (usize, usize),
}

/// An operand.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Field {
        chain: Vec<String>,
        span: (usize, usize),
    },
    Dot,
    Var {
        name: String,
        chain: Vec<String>,
    },
    Func(String),
    Const(Value),
    Nil,
    Sub {
        pipe: Box<Pipe>,
        chain: Vec<String>,
    },
}

/// Functions a template may call: Go's builtins plus the docker CLI's additions.
pub(crate) const FUNCS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery", "call", "json", "split", "join", "title", "lower",
    "upper", "pad", "truncate",
];

enum Term {
    Eof,
    End,
    Else,
    ElseChain(&'static str),
}

pub(crate) struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    i: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, items: Vec<Item>) -> Parser<'a> {
        Parser { src, items, i: 0 }
    }

    pub(crate) fn parse(mut self) -> Result<Vec<Node>, TemplateError> {
        let (nodes, term) = self.list(0)?;
        match term {
            Term::Eof => Ok(nodes),
            Term::End => Err(self.err_here("unexpected {{end}}")),
            Term::Else | Term::ElseChain(_) => Err(self.err_here("unexpected {{else}}")),
        }
    }

    fn err_here(&self, msg: impl std::fmt::Display) -> TemplateError {
        let pos = self
            .items
            .get(self.i.saturating_sub(1))
            .map_or(self.src.len(), |it| it.pos);
        parse_err(self.src, pos, msg)
    }

    fn peek(&self) -> Option<&Tok> {
        self.items.get(self.i).map(|it| &it.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.items.get(self.i + n).map(|it| &it.tok)
    }

    fn pos(&self) -> usize {
        self.items.get(self.i).map_or(self.src.len(), |it| it.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.items.get(self.i).map(|it| it.tok.clone());
        self.i += 1;
        t
    }

    fn expect_right(&mut self, ctx: &str) -> Result<(), TemplateError> {
        match self.next() {
            Some(Tok::RightDelim) => Ok(()),
            Some(t) => Err(self.err_here(format!("unexpected {} in {ctx}", describe(&t)))),
            None => Err(self.err_here("unclosed action")),
        }
    }

    /// Parses nodes until EOF or a `{{end}}`/`{{else}}` (consumed).
    fn list(&mut self, depth: usize) -> Result<(Vec<Node>, Term), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(tok) = self.next() {
            match tok {
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::LeftDelim => {
                    let kw = match self.peek() {
                        Some(Tok::Ident(s)) => Some(s.clone()),
                        _ => None,
                    };
                    match kw.as_deref() {
                        Some("end") => {
                            self.i += 1;
                            self.expect_right("end")?;
                            return Ok((nodes, Term::End));
                        }
                        Some("else") => {
                            self.i += 1;
                            return match self.peek() {
                                Some(Tok::Ident(s)) if s == "if" => {
                                    self.i += 1;
                                    Ok((nodes, Term::ElseChain("if")))
                                }
                                Some(Tok::Ident(s)) if s == "with" => {
                                    self.i += 1;
                                    Ok((nodes, Term::ElseChain("with")))
                                }
                                _ => {
                                    self.expect_right("else")?;
                                    Ok((nodes, Term::Else))
                                }
                            };
                        }
                        Some(k @ ("if" | "range" | "with")) => {
                            let k = if k == "if" {
                                "if"
                            } else if k == "range" {
                                "range"
                            } else {
                                "with"
                            };
                            self.i += 1;
                            nodes.push(self.control(k, depth)?);
                        }
                        Some("break") | Some("continue") => {
                            let is_break = kw.as_deref() == Some("break");
                            if depth == 0 {
                                return Err(self.err_here(format!(
                                    "{{{{{}}}}} outside {{{{range}}}}",
                                    if is_break { "break" } else { "continue" }
                                )));
                            }
                            self.i += 1;
                            self.expect_right(if is_break { "break" } else { "continue" })?;
                            nodes.push(if is_break {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        Some(k @ ("define" | "template" | "block")) => {
                            return Err(self.err_here(format!("{{{{{k}}}}} is not supported")));
                        }
                        _ => {
                            let pipe = self.pipe(true, false)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                other => return Err(self.err_here(format!("unexpected {}", describe(&other)))),
            }
        }
        Ok((nodes, Term::Eof))
    }

    /// After `{{if`/`{{range`/`{{with`: pipeline, body, else chain, through `{{end}}`.
    fn control(&mut self, kind: &'static str, depth: usize) -> Result<Node, TemplateError> {
        let is_range = kind == "range";
        let pipe = self.pipe(true, is_range)?;
        let body_depth = if is_range { depth + 1 } else { depth };
        let (body, term) = self.list(body_depth)?;
        let els = match term {
            Term::End => None,
            Term::Eof => return Err(self.err_here(format!("unexpected EOF in {kind}"))),
            Term::Else => {
                let (els, term) = self.list(depth)?;
                match term {
                    Term::End => Some(els),
                    Term::Eof => return Err(self.err_here(format!("unexpected EOF in {kind}"))),
                    _ => return Err(self.err_here("expected end; found {{else}}")),
                }
            }
            Term::ElseChain(k) => Some(vec![self.control(k, depth)?]),
        };
        let c = Control { pipe, body, els };
        Ok(match kind {
            "if" => Node::If(c),
            "range" => Node::Range(c),
            _ => Node::With(c),
        })
    }

    /// A pipeline up to `}}` (consumed) or, when `sub`, up to `)` (left for the caller).
    fn pipe(&mut self, allow_decl: bool, is_range: bool) -> Result<Pipe, TemplateError> {
        let mut decl = Vec::new();
        let mut is_assign = false;
        if allow_decl {
            if let Some(Tok::Var(name, chain)) = self.peek() {
                if chain.is_empty() {
                    let name = name.clone();
                    match self.peek_at(1) {
                        Some(Tok::Declare) | Some(Tok::Assign) => {
                            is_assign = matches!(self.peek_at(1), Some(Tok::Assign));
                            self.i += 2;
                            decl.push(name);
                        }
                        Some(Tok::Comma) if is_range => {
                            if let (Some(Tok::Var(second, c2)), Some(Tok::Declare | Tok::Assign)) =
                                (self.peek_at(2), self.peek_at(3))
                            {
                                if !c2.is_empty() {
                                    return Err(self.err_here("bad variable in range"));
                                }
                                decl.push(name);
                                decl.push(second.clone());
                                is_assign = matches!(self.peek_at(3), Some(Tok::Assign));
                                self.i += 4;
                            } else {
                                return Err(self.err_here("range can only initialize variables"));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let start = self.pos();
            let mut args = Vec::new();
            let end = loop {
                match self.peek() {
                    None => return Err(self.err_here("unclosed action")),
                    Some(Tok::RightDelim) | Some(Tok::Pipe) | Some(Tok::RParen(_)) => {
                        break self.pos();
                    }
                    Some(_) => args.push(self.operand()?),
                }
            };
            if args.is_empty() {
                return Err(self.err_here("missing value for command"));
            }
            cmds.push(Cmd {
                args,
                span: (start, end),
            });
            match self.peek() {
                Some(Tok::Pipe) => {
                    self.i += 1;
                }
                Some(Tok::RightDelim) => {
                    self.i += 1;
                    break;
                }
                _ => break,
            }
        }
        Ok(Pipe {
            decl,
            is_assign,
            cmds,
        })
    }

    fn operand(&mut self) -> Result<Arg, TemplateError> {
        let pos = self.pos();
        let tok = self.next().ok_or_else(|| self.err_here("unexpected EOF"))?;
        Ok(match tok {
            Tok::Field(chain) => {
                let end = self.pos_after_prev();
                Arg::Field {
                    chain,
                    span: (pos, end),
                }
            }
            Tok::Dot => Arg::Dot,
            Tok::Var(name, chain) => Arg::Var { name, chain },
            Tok::Ident(name) => match name.as_str() {
                "true" => Arg::Const(Value::Bool(true)),
                "false" => Arg::Const(Value::Bool(false)),
                "nil" => Arg::Nil,
                f if FUNCS.contains(&f) => Arg::Func(name),
                _ => return Err(self.err_here(format!("function {name:?} not defined"))),
            },
            Tok::Str(s) => Arg::Const(Value::String(s)),
            Tok::Char(c) => Arg::Const(Value::from(c as u32)),
            Tok::Number(n) => Arg::Const(
                parse_number(&n)
                    .ok_or_else(|| self.err_here(format!("illegal number syntax: {n:?}")))?,
            ),
            Tok::LParen => {
                let pipe = self.pipe(false, false)?;
                match self.next() {
                    Some(Tok::RParen(chain)) => Arg::Sub {
                        pipe: Box::new(pipe),
                        chain,
                    },
                    _ => return Err(self.err_here("unclosed left paren")),
                }
            }
            other => {
                return Err(self.err_here(format!("unexpected {} in operand", describe(&other))))
            }
        })
    }

    fn pos_after_prev(&self) -> usize {
        self.items.get(self.i).map_or(self.src.len(), |it| it.pos)
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Text(_) => "text".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::Field(c) => format!("<.{}>", c.join(".")),
        Tok::Dot => "<.>".into(),
        Tok::Var(n, _) => format!("<{n}>"),
        Tok::Ident(n) => format!("<{n}>"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Number(n) => n.clone(),
        Tok::Char(c) => format!("{c:?}"),
        Tok::Pipe => "\"|\"".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen(_) => "\")\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Comma => "\",\"".into(),
    }
}

/// Go number literals: decimal, hex/octal/binary integers, underscores, floats.
fn parse_number(s: &str) -> Option<Value> {
    let clean: String = s.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let radix_int = |digits: &str, radix: u32| i64::from_str_radix(digits, radix).ok();
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        radix_int(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        radix_int(o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        radix_int(b, 2)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit())
    {
        radix_int(&lower[1..], 8)
    } else {
        lower.parse::<i64>().ok()
    };
    if let Some(n) = int {
        return Some(Value::from(if neg { -n } else { n }));
    }
    let f: f64 = lower.parse().ok()?;
    serde_json::Number::from_f64(if neg { -f } else { f }).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::super::lex::lex;
    use super::*;

    fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
        Parser::new(src, lex(src)?).parse()
    }

    #[test]
    fn parses_controls() {
        let nodes = parse("{{if .A}}x{{else if .B}}y{{else}}z{{end}}").unwrap();
        let Node::If(c) = &nodes[0] else {
            panic!("not if")
        };
        let Some(els) = &c.els else { panic!("no else") };
        assert!(matches!(els[0], Node::If(_)));
        assert!(parse("{{range $i, $e := .L}}{{$i}}{{break}}{{end}}").is_ok());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x1F"), Some(Value::from(31)));
        assert_eq!(parse_number("-3"), Some(Value::from(-3)));
        assert_eq!(parse_number("1_000"), Some(Value::from(1000)));
        assert_eq!(parse_number("1.5"), Some(serde_json::json!(1.5)));
        assert_eq!(parse_number("1x"), None);
    }

    #[test]
    fn parse_errors_like_go() {
        let e = parse("{{foo .A}}").unwrap_err().to_string();
        assert_eq!(e, r#"template: :1: function "foo" not defined"#);
        assert_eq!(
            parse("{{end}}").unwrap_err().to_string(),
            "template: :1: unexpected {{end}}"
        );
        assert!(parse("{{if .A}}")
            .unwrap_err()
            .to_string()
            .contains("unexpected EOF"));
        assert!(parse("{{}}")
            .unwrap_err()
            .to_string()
            .contains("missing value for command"));
        assert!(parse("{{break}}").is_err());
        assert!(parse("{{(.A}}").is_err());
    }
}
