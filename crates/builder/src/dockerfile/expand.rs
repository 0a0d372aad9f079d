//! Word processing as Docker's shell lexer does it: quote removal, escapes and `$VAR`
//! expansion against the stage's variables, recording which variables a word used (the cache
//! key and the ARG rules depend on that).

use std::collections::BTreeSet;

/// Looks a variable up: `None` when unset (different from set-but-empty).
pub trait Vars {
    /// The variable's value.
    fn get(&self, name: &str) -> Option<&str>;
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        // Later entries win, as a later ENV overrides an earlier one.
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a word could not be processed (Docker's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingle,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDouble,
    #[error("missing '}}'")]
    MissingBrace,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(char),
    #[error("{0}")]
    Required(String),
}

/// The result of processing: the words and the variables they referenced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub words: Vec<String>,
    pub used: BTreeSet<String>,
}

/// Processes `input` as one word (spaces kept): `ENV`, `WORKDIR`, `USER` values.
pub fn word(
    input: &str,
    vars: &dyn Vars,
    escape: char,
) -> Result<(String, BTreeSet<String>), ExpandError> {
    let mut lx = Lexer::new(input, vars, escape, false);
    lx.run(None)?;
    let w = lx.words.pop().unwrap_or_default();
    Ok((w, lx.used))
}

/// Expands a COPY/ADD heredoc body with an unquoted delimiter: `$` expansions and escapes
/// apply (the escape is dropped), quotes are ordinary characters.
pub fn heredoc(input: &str, vars: &dyn Vars, escape: char) -> Result<String, ExpandError> {
    let mut lx = Lexer::new(input, vars, escape, false);
    lx.quotes = false;
    lx.run(None)?;
    Ok(lx.words.concat())
}

/// Processes `input` into words split on unquoted whitespace (also inside unquoted
/// expansions): `EXPOSE`, shell-form `COPY` sources.
pub fn words(input: &str, vars: &dyn Vars, escape: char) -> Result<Expanded, ExpandError> {
    let mut lx = Lexer::new(input, vars, escape, true);
    lx.run(None)?;
    Ok(Expanded {
        words: lx.words,
        used: lx.used,
    })
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    escape: char,
    split: bool,
    words: Vec<String>,
    in_word: bool,
    used: BTreeSet<String>,
    /// Quotes group and protect (false in heredoc bodies).
    quotes: bool,
}

impl<'a> Lexer<'a> {
    fn new(input: &str, vars: &'a dyn Vars, escape: char, split: bool) -> Self {
        Lexer {
            chars: input.chars().collect(),
            pos: 0,
            vars,
            escape,
            split,
            words: Vec::new(),
            in_word: false,
            used: BTreeSet::new(),
            quotes: true,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Adds a character that is part of a word whatever it is (quoted or escaped).
    fn raw(&mut self, c: char) {
        if !self.in_word || self.words.is_empty() {
            self.words.push(String::new());
            self.in_word = true;
        }
        if let Some(w) = self.words.last_mut() {
            w.push(c);
        }
    }

    /// Adds an unquoted character: whitespace ends the word when splitting.
    fn plain(&mut self, c: char) {
        if self.split && c.is_whitespace() {
            self.in_word = false;
        } else {
            self.raw(c);
        }
    }

    /// Marks that a word exists even if empty (`""`).
    fn touch(&mut self) {
        if !self.in_word {
            self.words.push(String::new());
            self.in_word = true;
        }
    }

    /// Main loop; with `stop`, returns at that (unquoted) character, consumed.
    fn run(&mut self, stop: Option<char>) -> Result<(), ExpandError> {
        if !self.split {
            self.touch();
        }
        while let Some(c) = self.next() {
            if Some(c) == stop {
                return Ok(());
            }
            match c {
                '\'' | '"' if !self.quotes => self.raw(c),
                '\'' => {
                    self.touch();
                    loop {
                        match self.next() {
                            None => return Err(ExpandError::UnterminatedSingle),
                            Some('\'') => break,
                            Some(ch) => self.raw(ch),
                        }
                    }
                }
                '"' => {
                    self.touch();
                    loop {
                        match self.next() {
                            None => return Err(ExpandError::UnterminatedDouble),
                            Some('"') => break,
                            Some('$') => {
                                let v = self.dollar()?;
                                v.chars().for_each(|ch| self.raw(ch));
                            }
                            Some(ch) if ch == self.escape => match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    self.pos += 1;
                                    self.raw(n);
                                }
                                _ => self.raw(ch),
                            },
                            Some(ch) => self.raw(ch),
                        }
                    }
                }
                '$' => {
                    let v = self.dollar()?;
                    v.chars().for_each(|ch| self.plain(ch));
                }
                ch if ch == self.escape => match self.next() {
                    Some(n) => self.raw(n),
                    None => break,
                },
                ch => self.plain(ch),
            }
        }
        if stop.is_some() {
            return Err(ExpandError::MissingBrace);
        }
        Ok(())
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        if let Some(c) = self.peek() {
            if c.is_ascii_digit() || "@*#?$!-".contains(c) {
                self.pos += 1;
                return c.to_string();
            }
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        self.vars.get(name).map(str::to_string)
    }

    /// A nested word after a modifier, up to the closing brace, expanded.
    fn sub_word(&mut self) -> Result<String, ExpandError> {
        let mut inner = Lexer::new("", self.vars, self.escape, false);
        inner.chars = self.chars[self.pos..].to_vec();
        inner.run(Some('}'))?;
        self.pos += inner.pos;
        self.used.extend(inner.used);
        Ok(inner.words.concat())
    }

    /// After a `$`: the expansion's value.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.peek() != Some('{') {
            let n = self.name();
            if n.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&n).unwrap_or_default());
        }
        self.pos += 1;
        let n = self.name();
        if n.is_empty() {
            return Err(ExpandError::BadSubstitution);
        }
        match self.next() {
            None => Err(ExpandError::MissingBrace),
            Some('}') => Ok(self.lookup(&n).unwrap_or_default()),
            Some(m) => {
                let colon = m == ':';
                let m = if colon {
                    self.next().ok_or(ExpandError::MissingBrace)?
                } else {
                    m
                };
                if !matches!(m, '-' | '+' | '?') {
                    return Err(ExpandError::UnsupportedModifier(m));
                }
                let w = self.sub_word()?;
                let v = self.lookup(&n);
                let set = if colon {
                    v.as_deref().is_some_and(|s| !s.is_empty())
                } else {
                    v.is_some()
                };
                Ok(match m {
                    '-' if set => v.unwrap_or_default(),
                    '-' => w,
                    '+' if set => w,
                    '+' => String::new(),
                    _ if set => v.unwrap_or_default(),
                    _ => {
                        let msg = if !w.is_empty() {
                            w
                        } else if colon {
                            "is not allowed to be empty".to_string()
                        } else {
                            "is not allowed to be unset".to_string()
                        };
                        return Err(ExpandError::Required(format!("{n}: {msg}")));
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("EMPTY", ""),
            ("X", "a b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `testdata/envvar.txt`: `input|expected` per line (`#` comments); expected `ERROR` means
    /// processing must fail. Same layout as BuildKit's `envVarTest`.
    #[test]
    fn envvar_table() {
        let table = include_str!("testdata/envvar.txt");
        let mut n = 0;
        for (i, line) in table.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (input, want) = line.rsplit_once('|').expect("case has a |");
            let got = word(input, &env(), '\\');
            if want == "ERROR" {
                assert!(
                    got.is_err(),
                    "line {}: {input:?} should fail, got {got:?}",
                    i + 1
                );
            } else {
                assert_eq!(
                    got.map(|g| g.0).as_deref(),
                    Ok(want),
                    "line {}: {input:?}",
                    i + 1
                );
            }
            n += 1;
        }
        assert!(n > 30);
    }

    /// `testdata/words.txt`: `input|word1;word2;…` (empty list: no words).
    #[test]
    fn words_table() {
        for line in include_str!("testdata/words.txt").lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (input, want) = line.rsplit_once('|').expect("case has a |");
            let want: Vec<&str> = if want.is_empty() {
                vec![]
            } else {
                want.split(';').collect()
            };
            let got = words(input, &env(), '\\').expect(input);
            assert_eq!(got.words, want, "{input:?}");
        }
    }

    #[test]
    fn records_used_variables() {
        let (_, used) = word("$PWD ${NOPE:-$SHELL} '$X'", &env(), '\\').expect("ok");
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["NOPE", "PWD", "SHELL"]
        );
    }

    #[test]
    fn heredoc_bodies_keep_quotes() {
        let got = heredoc("echo \"$PWD\" '$SHELL' \\$X a\\nb\n", &env(), '\\').expect("ok");
        assert_eq!(got, "echo \"/home\" 'bash' $X anb\n");
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(word("a`$PWD", &env(), '`').expect("ok").0, "a$PWD");
        assert_eq!(word("a\\$PWD", &env(), '`').expect("ok").0, "a\\/home");
    }
}
