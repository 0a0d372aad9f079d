//! The build context's `.dockerignore` rules, shared by the client that filters a context
//! before sending it and the builder that applies them to what it received: Docker's pattern
//! syntax (`*`, `?`, `[...]`, `**` across directories, `\` escapes), `!` exceptions, last
//! match wins, and a path is excluded when it or one of its parent directories matches.

/// Shell-style match of one path segment: `*`, `?`, `[...]` (with `^`/`!` negation and
/// ranges), `\` escapes. Never matches across `/`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    glob_chars(&p, &s)
}

fn glob_chars(pat: &[char], s: &[char]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some('*') => {
            let run = s.iter().position(|c| *c == '/').unwrap_or(s.len());
            (0..=run).any(|i| glob_chars(&pat[1..], &s[i..]))
        }
        Some('?') => !s.is_empty() && s[0] != '/' && glob_chars(&pat[1..], &s[1..]),
        Some('[') => {
            let Some(end) = pat.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return !s.is_empty() && s[0] == '[' && glob_chars(&pat[1..], &s[1..]);
            };
            let Some(c) = s.first() else { return false };
            let (neg, set) = match &pat[1..end] {
                ['^' | '!', rest @ ..] => (true, rest),
                set => (false, set),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= set[i] <= *c && *c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == *c;
                    i += 1;
                }
            }
            hit != neg && glob_chars(&pat[end + 1..], &s[1..])
        }
        Some('\\') if pat.len() > 1 => {
            !s.is_empty() && s[0] == pat[1] && glob_chars(&pat[2..], &s[1..])
        }
        Some(p) => !s.is_empty() && s[0] == *p && glob_chars(&pat[1..], &s[1..]),
    }
}

/// One pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
    exception: bool,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

/// Lexically cleans a slash path: no empty, `.` or leading `/` parts; `..` pops.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

fn segments_match(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|i| segments_match(&pat[1..], &path[i..])),
        Some(p) => {
            !path.is_empty() && glob_match(p, path[0]) && segments_match(&pat[1..], &path[1..])
        }
    }
}

impl Patterns {
    /// Parses the file's text: one pattern per line, `#` comments, blank lines ignored.
    pub fn parse(text: &str) -> Patterns {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exception, body) = match l.strip_prefix('!') {
                    Some(b) => (true, b.trim()),
                    None => (false, l),
                };
                let segments = clean(body);
                (!segments.is_empty()).then_some(Pattern {
                    segments,
                    exception,
                })
            })
            .collect();
        Patterns { patterns }
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any exception could re-include something under an excluded directory.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether the context-relative path `path` is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let parts = clean(path);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or any parent directory.
            let hit = (1..=parts.len()).any(|n| segments_match(&p.segments, &parts[..n]));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules() {
        let p = Patterns::parse(
            "# comment\n*.log\n!keep.log\nsecret/\n**/*.tmp\n/build\ndocs/**/draft*\n",
        );
        assert!(p.excluded("a.log"));
        assert!(!p.excluded("keep.log"));
        assert!(!p.excluded("sub/a.log"), "* does not cross directories");
        assert!(p.excluded("secret/key"));
        assert!(p.excluded("secret"));
        assert!(p.excluded("x/y/z.tmp"));
        assert!(p.excluded("z.tmp"));
        assert!(p.excluded("build/out/bin"));
        assert!(p.excluded("docs/a/b/draft1.md"));
        assert!(!p.excluded("docs/final.md"));
        assert!(!p.excluded("src/main.rs"));
        assert!(p.has_exceptions());
    }

    #[test]
    fn last_match_wins_and_parents_count() {
        let p = Patterns::parse("dir\n!dir/keep\n");
        assert!(p.excluded("dir/other"));
        assert!(!p.excluded("dir/keep"));
        assert!(!p.excluded("dir/keep/inner"));
        let p = Patterns::parse("!x\n*\n");
        assert!(p.excluded("x"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "a/b.txt"));
        assert!(glob_match("?b[a-c]", "xbb"));
        assert!(!glob_match("[!a]", "a"));
        assert!(glob_match("a\\*", "a*"));
    }
}
