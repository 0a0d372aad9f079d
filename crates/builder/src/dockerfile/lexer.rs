//! From text to logical lines: parser directives, comments, line continuations and heredoc
//! bodies, each line keeping its span in the file.

use super::{ParseError, Span};

/// A here-document attached to a RUN, COPY or ADD line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body, each line ending in `\n`.
    pub content: String,
    /// False when any part of the delimiter was quoted: the body is kept raw.
    pub expand: bool,
}

/// One instruction as written: keyword, the rest of its (joined) line, its heredocs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub span: Span,
    /// The keyword as written (`run`, `RUN`).
    pub keyword: String,
    /// Everything after the keyword, trimmed.
    pub rest: String,
    /// The joined line as Docker echoes it in `Step n/m : …`.
    pub original: String,
    pub heredocs: Vec<Heredoc>,
}

/// The lexed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexed {
    pub escape: char,
    pub lines: Vec<RawLine>,
    pub warnings: Vec<String>,
}

/// `# key=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim().strip_prefix('#')?.trim();
    let (k, v) = body.split_once('=')?;
    let k = k.trim();
    let mut chars = k.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    (ok && !v.trim().is_empty()).then(|| (k.to_ascii_lowercase(), v.trim().to_string()))
}

fn parse_directives(lines: &[&str]) -> Result<char, ParseError> {
    let mut escape = '\\';
    let mut seen: Vec<String> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some((k, v)) = directive(l) else { break };
        if !matches!(k.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if seen.contains(&k) {
            return Err(ParseError::at(
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        if k == "escape" {
            escape = match v.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err(ParseError::at(
                        i + 1,
                        format!("invalid escape token '{v}' does not match ` or \\"),
                    ))
                }
            };
        }
        seen.push(k);
    }
    Ok(escape)
}

/// Removes a trailing escape (before optional blanks): `(text, continues)`.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(head) => (head, true),
        None => (line, false),
    }
}

/// Heredoc delimiters on an instruction line: `<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`.
fn heredoc_words(rest: &str) -> Vec<(String, bool, bool)> {
    rest.split_whitespace()
        .filter_map(|w| {
            let w = w.trim_start_matches(|c: char| c.is_ascii_digit());
            let w = w.strip_prefix("<<")?;
            let (chomp, w) = match w.strip_prefix('-') {
                Some(x) => (true, x),
                None => (false, w),
            };
            if w.is_empty() || w.contains('<') {
                return None;
            }
            let quoted = w.contains('"') || w.contains('\'');
            let name: String = w.chars().filter(|c| *c != '"' && *c != '\'').collect();
            (!name.is_empty()).then_some((name, chomp, !quoted))
        })
        .collect()
}

fn takes_heredocs(keyword: &str, rest: &str) -> bool {
    let k = keyword.to_ascii_lowercase();
    match k.as_str() {
        "run" | "copy" | "add" => !rest.trim_start().starts_with('['),
        "onbuild" => {
            let (inner, r) = rest
                .trim_start()
                .split_once(char::is_whitespace)
                .unwrap_or((rest, ""));
            !inner.eq_ignore_ascii_case("onbuild") && takes_heredocs(inner, r)
        }
        _ => false,
    }
}

/// Splits `src` into instructions.
pub fn lex(src: &str) -> Result<Lexed, ParseError> {
    let lines: Vec<&str> = src
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let escape = parse_directives(&lines)?;
    let mut out = Lexed {
        escape,
        lines: Vec::new(),
        warnings: Vec::new(),
    };
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let start = i;
        let (head, mut more) = continuation(first, escape);
        let mut text = head.to_string();
        while more && i < lines.len() {
            let l = lines[i];
            i += 1;
            if l.trim_start().starts_with('#') {
                continue;
            }
            if l.trim().is_empty() {
                out.warnings
                    .push(format!("Empty continuation line found in: {text}"));
                continue;
            }
            let (h, m) = continuation(l, escape);
            text.push_str(h);
            more = m;
        }
        let end = i;
        let text = text.trim_end().to_string();
        let (keyword, rest) = match text.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_string(), r.trim().to_string()),
            None => (text.clone(), String::new()),
        };
        let mut heredocs = Vec::new();
        if takes_heredocs(&keyword, &rest) {
            for (name, chomp, expand) in heredoc_words(&rest) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if chomp { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !closed {
                    return Err(ParseError::at(start, "unterminated heredoc".to_string()));
                }
                heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        out.lines.push(RawLine {
            span: Span {
                start,
                end: if heredocs.is_empty() { end } else { i },
            },
            keyword,
            rest,
            original: text,
            heredocs,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_keeps_inner_whitespace_and_drops_comments() {
        let l = lex("RUN echo a \\\n    b \\\n# c\n  c\n").expect("lex");
        assert_eq!(l.lines[0].rest, "echo a     b   c");
        assert_eq!(l.lines[0].span, Span { start: 1, end: 4 });
    }

    #[test]
    fn escape_directive_and_late_directive_ignored() {
        let l = lex("# escape=`\nFROM x\nRUN a `\n b\n").expect("lex");
        assert_eq!(l.escape, '`');
        assert_eq!(l.lines[1].rest, "a  b");
        let l = lex("\n# escape=`\nFROM x\n").expect("lex");
        assert_eq!(l.escape, '\\');
        assert!(lex("# escape=x\nFROM a").is_err());
    }

    #[test]
    fn heredocs() {
        let l = lex("RUN <<EOF\necho hi\nEOF\nCOPY <<-\"A\" <<B /d/\n\tx $Y\n\tA\ny\nB\n")
            .expect("lex");
        assert_eq!(l.lines[0].heredocs[0].content, "echo hi\n");
        assert_eq!(l.lines[0].span, Span { start: 1, end: 3 });
        let h = &l.lines[1].heredocs;
        assert_eq!(
            (h[0].name.as_str(), h[0].content.as_str(), h[0].expand),
            ("A", "x $Y\n", false)
        );
        assert_eq!(
            (h[1].name.as_str(), h[1].content.as_str(), h[1].expand),
            ("B", "y\n", true)
        );
        let e = lex("FROM a\nRUN <<EOF\necho\n").expect_err("unterminated");
        assert_eq!(
            e.to_string(),
            "dockerfile parse error on line 2: unterminated heredoc"
        );
        assert!(lex("RUN [\"<<EOF\"]\n").expect("json").lines[0]
            .heredocs
            .is_empty());
    }
}
