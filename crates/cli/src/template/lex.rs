//! Lexer for Go's text/template: splits text from `{{ }}` actions and tokenises actions.

use super::TemplateError;

/// A token inside an action, with its byte offset in the template source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    /// `.A.B` (a field chain on dot); `.` alone is `Dot`.
    Field(Vec<String>),
    Dot,
    /// `$name` or `$` with a trailing field chain (`$x.A`).
    Var(String, Vec<String>),
    /// A function name or keyword.
    Ident(String),
    Str(String),
    Number(String),
    Char(char),
    Pipe,
    LParen,
    /// `)` possibly followed by a field chain: `(index . 0).Name`.
    RParen(Vec<String>),
    Declare,
    Assign,
    Comma,
}

/// A token with the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub tok: Tok,
    pub pos: usize,
}

/// Splits the source into items.
pub(crate) fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    let mut trim_next_text = false;
    while i < bytes.len() {
        if !src[i..].starts_with("{{") {
            i += src[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        // Text before the action, honouring `{{-` (trim trailing space) and a previous `-}}`.
        let mut text = &src[text_start..i];
        let trim_left = src[i + 2..].starts_with("- ")
            || src[i + 2..].starts_with("-\t")
            || src[i + 2..].starts_with("-\n")
            || src[i + 2..].starts_with("-\r");
        if trim_next_text {
            text = text.trim_start_matches(is_space);
        }
        if trim_left {
            text = text.trim_end_matches(is_space);
        }
        if !text.is_empty() {
            items.push(Item {
                tok: Tok::Text(text.to_string()),
                pos: text_start,
            });
        }
        let action_pos = i;
        i += if trim_left { 3 } else { 2 };
        // Comments: {{/* ... */}}
        let rest = src[i..].trim_start_matches(is_space);
        if rest.starts_with("/*") {
            let start = src.len() - rest.len();
            let end = src[start..]
                .find("*/")
                .ok_or_else(|| parse_err(src, action_pos, "unclosed comment"))?;
            let mut j = start + end + 2;
            let after = &src[j..];
            let after_trim = after.trim_start_matches(is_space);
            let (trim_right, close_len) =
                if after_trim.starts_with("-}}") && after_trim.len() < after.len() {
                    (true, after.len() - after_trim.len() + 3)
                } else if after.starts_with("}}") {
                    (false, 2)
                } else {
                    return Err(parse_err(
                        src,
                        action_pos,
                        "comment ends before closing delimiter",
                    ));
                };
            j += close_len;
            i = j;
            text_start = j;
            trim_next_text = trim_right;
            continue;
        }
        items.push(Item {
            tok: Tok::LeftDelim,
            pos: action_pos,
        });
        let (end, trim_right) = lex_action(src, &mut i, &mut items)?;
        items.push(Item {
            tok: Tok::RightDelim,
            pos: end,
        });
        text_start = i;
        trim_next_text = trim_right;
    }
    let mut text = &src[text_start..];
    if trim_next_text {
        text = text.trim_start_matches(is_space);
    }
    if !text.is_empty() {
        items.push(Item {
            tok: Tok::Text(text.to_string()),
            pos: text_start,
        });
    }
    Ok(items)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn line_of(src: &str, pos: usize) -> usize {
    1 + src[..pos.min(src.len())].matches('\n').count()
}

/// Go's parse-error shape: `template: :LINE: message`.
pub(crate) fn parse_err(src: &str, pos: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::Parse(format!("template: :{}: {msg}", line_of(src, pos)))
}

/// Lexes one action body; returns the offset of the closing delimiter and whether it was `-}}`.
fn lex_action(
    src: &str,
    i: &mut usize,
    items: &mut Vec<Item>,
) -> Result<(usize, bool), TemplateError> {
    let bytes = src.as_bytes();
    let start = *i;
    loop {
        let Some(&b) = bytes.get(*i) else {
            return Err(parse_err(src, start, "unclosed action"));
        };
        let pos = *i;
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                // ` -}}` closes with trimming.
                let rest = &src[*i..];
                let trimmed = rest.trim_start_matches(is_space);
                if trimmed.starts_with("-}}") {
                    let end = src.len() - trimmed.len();
                    *i = end + 3;
                    return Ok((end, true));
                }
                *i += 1;
            }
            b'}' => {
                if src[*i..].starts_with("}}") {
                    *i += 2;
                    return Ok((pos, false));
                }
                return Err(parse_err(src, pos, "unexpected \"}\" in operand"));
            }
            b'|' => {
                items.push(Item {
                    tok: Tok::Pipe,
                    pos,
                });
                *i += 1;
            }
            b'(' => {
                items.push(Item {
                    tok: Tok::LParen,
                    pos,
                });
                *i += 1;
            }
            b')' => {
                *i += 1;
                let chain = lex_chain(src, i);
                items.push(Item {
                    tok: Tok::RParen(chain),
                    pos,
                });
            }
            b',' => {
                items.push(Item {
                    tok: Tok::Comma,
                    pos,
                });
                *i += 1;
            }
            b':' => {
                if src[*i..].starts_with(":=") {
                    items.push(Item {
                        tok: Tok::Declare,
                        pos,
                    });
                    *i += 2;
                } else {
                    return Err(parse_err(src, pos, "expected :="));
                }
            }
            b'=' => {
                items.push(Item {
                    tok: Tok::Assign,
                    pos,
                });
                *i += 1;
            }
            b'"' => {
                let s = lex_quoted(src, i)?;
                items.push(Item {
                    tok: Tok::Str(s),
                    pos,
                });
            }
            b'`' => {
                let end = src[*i + 1..]
                    .find('`')
                    .ok_or_else(|| parse_err(src, pos, "unterminated raw quoted string"))?;
                items.push(Item {
                    tok: Tok::Str(src[*i + 1..*i + 1 + end].to_string()),
                    pos,
                });
                *i += end + 2;
            }
            b'\'' => {
                let rest = &src[*i + 1..];
                let mut chars = rest.chars();
                let c = match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('\\') => '\\',
                        Some('\'') => '\'',
                        _ => return Err(parse_err(src, pos, "unterminated character constant")),
                    },
                    Some(c) => c,
                    None => return Err(parse_err(src, pos, "unterminated character constant")),
                };
                if chars.next() != Some('\'') {
                    return Err(parse_err(src, pos, "unterminated character constant"));
                }
                let consumed = rest.len() - chars.as_str().len();
                items.push(Item {
                    tok: Tok::Char(c),
                    pos,
                });
                *i += 1 + consumed;
            }
            b'.' => {
                let next = bytes.get(*i + 1).copied();
                if next.is_some_and(|c| c.is_ascii_digit()) {
                    let n = lex_number(src, i);
                    items.push(Item {
                        tok: Tok::Number(n),
                        pos,
                    });
                } else {
                    let chain = lex_chain(src, i);
                    if chain.is_empty() {
                        *i += 1;
                        items.push(Item { tok: Tok::Dot, pos });
                    } else {
                        items.push(Item {
                            tok: Tok::Field(chain),
                            pos,
                        });
                    }
                }
            }
            b'$' => {
                *i += 1;
                let name_start = *i;
                while bytes
                    .get(*i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    *i += 1;
                }
                let name = format!("${}", &src[name_start..*i]);
                let chain = lex_chain(src, i);
                items.push(Item {
                    tok: Tok::Var(name, chain),
                    pos,
                });
            }
            b'-' | b'+' | b'0'..=b'9' => {
                if (b == b'-' || b == b'+')
                    && !bytes
                        .get(*i + 1)
                        .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    return Err(parse_err(
                        src,
                        pos,
                        format!("bad character {:?}", b as char),
                    ));
                }
                let n = lex_number(src, i);
                items.push(Item {
                    tok: Tok::Number(n),
                    pos,
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while bytes
                    .get(*i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    *i += 1;
                }
                items.push(Item {
                    tok: Tok::Ident(src[pos..*i].to_string()),
                    pos,
                });
            }
            _ => {
                let c = src[*i..].chars().next().unwrap_or('?');
                return Err(parse_err(src, pos, format!("bad character {c:?}")));
            }
        }
    }
}

/// Reads `.A.B.C` starting at `*i` (which may not point at a dot, giving an empty chain).
fn lex_chain(src: &str, i: &mut usize) -> Vec<String> {
    let bytes = src.as_bytes();
    let mut chain = Vec::new();
    while bytes.get(*i) == Some(&b'.') {
        let start = *i + 1;
        let mut j = start;
        while bytes
            .get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            j += 1;
        }
        if j == start {
            break;
        }
        chain.push(src[start..j].to_string());
        *i = j;
    }
    chain
}

fn lex_number(src: &str, i: &mut usize) -> String {
    let bytes = src.as_bytes();
    let start = *i;
    if matches!(bytes.get(*i), Some(b'-') | Some(b'+')) {
        *i += 1;
    }
    while bytes
        .get(*i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
    {
        // An exponent sign belongs to the number.
        if matches!(bytes[*i], b'e' | b'E') && matches!(bytes.get(*i + 1), Some(b'-') | Some(b'+'))
        {
            *i += 1;
        }
        *i += 1;
    }
    src[start..*i].to_string()
}

fn lex_quoted(src: &str, i: &mut usize) -> Result<String, TemplateError> {
    let start = *i;
    let mut out = String::new();
    let mut chars = src[*i + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => {
                *i = start + 1 + off + 1;
                return Ok(out);
            }
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut hex = String::new();
                        for _ in 0..len {
                            if let Some((_, h)) = chars.next() {
                                hex.push(h);
                            }
                        }
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| {
                                parse_err(src, start, "invalid escape in quoted string")
                            })?;
                        out.push(ch);
                    }
                    _ => return Err(parse_err(src, start, "invalid syntax in quoted string")),
                }
            }
            c => out.push(c),
        }
    }
    Err(parse_err(src, start, "unterminated quoted string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|i| i.tok).collect()
    }

    #[test]
    fn text_and_fields() {
        assert_eq!(
            toks("a {{.B.C}} d"),
            vec![
                Tok::Text("a ".into()),
                Tok::LeftDelim,
                Tok::Field(vec!["B".into(), "C".into()]),
                Tok::RightDelim,
                Tok::Text(" d".into()),
            ]
        );
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(
            toks("a  {{- .X -}}  b{{/* c */}}"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Field(vec!["X".into()]),
                Tok::RightDelim,
                Tok::Text("b".into()),
            ]
        );
    }

    #[test]
    fn strings_numbers_vars() {
        assert_eq!(
            toks(r#"{{$x := printf "%d\n" -3 `raw` 'a' (.A).B}}"#),
            vec![
                Tok::LeftDelim,
                Tok::Var("$x".into(), vec![]),
                Tok::Declare,
                Tok::Ident("printf".into()),
                Tok::Str("%d\n".into()),
                Tok::Number("-3".into()),
                Tok::Str("raw".into()),
                Tok::Char('a'),
                Tok::LParen,
                Tok::Field(vec!["A".into()]),
                Tok::RParen(vec!["B".into()]),
                Tok::RightDelim,
            ]
        );
    }

    #[test]
    fn errors() {
        assert!(lex("{{.A").is_err());
        assert!(lex("{{\"abc}}").is_err());
        assert!(lex("{{ # }}").is_err());
    }
}
