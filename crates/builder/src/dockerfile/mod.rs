//! The Dockerfile frontend: lexing ([`lexer`]), typed instructions ([`instructions`]) and
//! word expansion ([`expand`]). Pure: no I/O. Instructions keep raw words; the engine expands
//! them per stage, late, as Docker does.

pub mod expand;
pub mod instructions;
pub mod lexer;

pub use instructions::{Command, CopyArgs, HealthcheckArgs, Instruction, RunArgs, Stage};
pub use lexer::Heredoc;

/// Lines `start..=end` (1-based) an instruction spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A parse error, printed as Docker prints it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(line: usize, message: String) -> ParseError {
        ParseError { line, message }
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub span: Span,
    /// The joined source line (`Step n/m : <original>`).
    pub original: String,
    pub instruction: Instruction,
}

/// A parsed Dockerfile: ARGs before the first FROM, then the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub meta_args: Vec<Spanned>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// Index of the stage named `name` (case-insensitive) or numbered `name`.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name.parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len())
            })
    }
}

/// Parses a whole Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let lexed = lexer::lex(src)?;
    if lexed.lines.is_empty() {
        return Err(ParseError::at(1, "the Dockerfile cannot be empty".into()));
    }
    let mut df = Dockerfile {
        escape: lexed.escape,
        meta_args: Vec::new(),
        stages: Vec::new(),
        warnings: lexed.warnings,
    };
    for line in lexed.lines {
        let instruction = instructions::parse_line(&line, lexed.escape)?;
        let sp = Spanned {
            span: line.span,
            original: line.original,
            instruction,
        };
        match (&sp.instruction, df.stages.last_mut()) {
            (
                Instruction::From {
                    image,
                    name,
                    platform,
                },
                _,
            ) => df.stages.push(Stage {
                span: sp.span,
                original: sp.original.clone(),
                base: image.clone(),
                name: name.clone(),
                platform: platform.clone(),
                commands: Vec::new(),
            }),
            (_, Some(stage)) => stage.commands.push(sp),
            (Instruction::Arg(_), None) => df.meta_args.push(sp),
            (_, None) => {
                return Err(ParseError::at(
                    sp.span.start,
                    "no build stage in current context".into(),
                ))
            }
        }
    }
    if df.stages.is_empty() {
        return Err(ParseError::at(
            1,
            "dockerfile contains no stages to build".into(),
        ));
    }
    Ok(df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    /// Every `testdata/parse/<case>/Dockerfile` parses to exactly `<case>/result` (one line per
    /// instruction, `{:?}` of it, prefixed by its span; meta ARGs first) or fails with exactly
    /// the message in `<case>/error`.
    #[test]
    fn parse_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dockerfile/testdata/parse");
        let mut n = 0;
        for entry in fs::read_dir(&dir).expect("testdata dir") {
            let case = entry.expect("entry").path();
            let src = fs::read_to_string(case.join("Dockerfile")).expect("Dockerfile");
            let got = parse(&src);
            if let Ok(want) = fs::read_to_string(case.join("error")) {
                assert_eq!(
                    got.map(|_| ()).map_err(|e| e.to_string()),
                    Err(want.trim().to_string()),
                    "{}",
                    case.display()
                );
            } else {
                let df = got.unwrap_or_else(|e| panic!("{}: {e}", case.display()));
                let mut lines = Vec::new();
                for a in &df.meta_args {
                    lines.push(format!(
                        "{}-{} {:?}",
                        a.span.start, a.span.end, a.instruction
                    ));
                }
                for s in &df.stages {
                    lines.push(format!(
                        "{}-{} FROM {} AS {:?}",
                        s.span.start, s.span.end, s.base, s.name
                    ));
                    for c in &s.commands {
                        lines.push(format!(
                            "{}-{} {:?}",
                            c.span.start, c.span.end, c.instruction
                        ));
                    }
                }
                let got = lines.join("\n");
                let result = case.join("result");
                if std::env::var_os("UPDATE_GOLDEN").is_some() {
                    fs::write(&result, format!("{got}\n")).expect("write golden");
                }
                let want = fs::read_to_string(&result).expect("result file");
                assert_eq!(got, want.trim_end(), "{}", case.display());
            }
            n += 1;
        }
        assert!(n >= 10, "only {n} cases");
    }
}
