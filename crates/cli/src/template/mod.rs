//! Go `text/template`, as the docker CLI's `--format` uses it, over `serde_json::Value` data.
//!
//! Supports text and actions with trim markers and comments; fields `.A.B`, `$vars` (`:=`,
//! `=`), pipelines, parenthesised sub-pipelines; `if`/`else if`/`with`/`range` (with
//! `break`/`continue`); Go's builtins and the docker CLI's extra functions. `define`/`template`
//! are not supported (docker formats never use them). Values print as Go prints decoded JSON.

mod exec;
mod funcs;
mod lex;
mod parse;
mod value;

use serde_json::{Map, Value};

pub(crate) use value::go_quote;

/// A template that failed to parse or execute; the message has Go's shape.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// `template: :1: ...`
    #[error("{0}")]
    Parse(String),
    /// `template: :1:2: executing "" at <.X>: ...`
    #[error("{0}")]
    Exec(String),
}

/// How to execute: docker's formatter contexts are Go structs, so unknown fields on the root are
/// errors naming `root_type`, and some "fields" are methods taking a key (`.Label "k"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ExecOptions<'a> {
    /// Render the table header: docker's formatting functions return their argument unchanged.
    pub header: bool,
    /// Go type name of the root, e.g. `*formatter.ContainerContext`; `None` means map semantics.
    pub root_type: Option<&'a str>,
    /// Root methods taking one string key, each backed by a JSON object of answers.
    pub methods: Option<&'a Map<String, Value>>,
    /// `json .` on the root escapes `<>&` like Go's `json.Marshal`: docker's formatter contexts
    /// marshal themselves, while their fields go through an encoder that does not escape.
    pub escape_root_json: bool,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses Go template source.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let items = lex::lex(src)?;
        let nodes = parse::Parser::new(src, items).parse()?;
        Ok(Template {
            src: src.to_string(),
            nodes,
        })
    }

    /// Executes with map semantics (missing keys print `<no value>`).
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        self.execute_with(data, &ExecOptions::default())
    }

    /// Executes with explicit options.
    pub fn execute_with(
        &self,
        data: &Value,
        opts: &ExecOptions<'_>,
    ) -> Result<String, TemplateError> {
        exec::State::new(&self.src, opts, data).run(&self.nodes, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, data: Value) -> String {
        Template::parse(src).unwrap().execute(&data).unwrap()
    }

    fn run_err(src: &str, data: Value) -> String {
        Template::parse(src)
            .unwrap()
            .execute(&data)
            .unwrap_err()
            .to_string()
    }

    fn inspect() -> Value {
        json!({
            "Id": "abc123",
            "Name": "/web",
            "State": {"Running": true, "Status": "running", "ExitCode": 0, "Pid": 42, "Health": null},
            "Config": {"Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Env": ["A=1", "B=2"],
                        "Labels": {"b": "2", "a": "1"}},
            "Mounts": [{"Source": "/x", "Destination": "/y"}, {"Source": "/p", "Destination": "/q"}],
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}
        })
    }

    #[test]
    fn fields_and_nesting() {
        assert_eq!(
            run("{{.Name}} {{.State.Running}} {{.State.Pid}}", inspect()),
            "/web true 42"
        );
        assert_eq!(run("{{.Config.Cmd}}", inspect()), "[sh -c echo hi]");
        assert_eq!(run("{{.Config.Labels}}", inspect()), "map[a:1 b:2]");
        assert_eq!(run("{{.Nope}}", inspect()), "<no value>");
        assert_eq!(run("{{.State.Nope}}", inspect()), "<no value>");
        assert_eq!(run("{{.State.Health}}", inspect()), "<no value>");
        assert_eq!(run("{{.}}", json!("x")), "x");
    }

    #[test]
    fn json_function() {
        assert_eq!(
            run("{{json .Config.Cmd}}", inspect()),
            r#"["sh","-c","echo hi"]"#
        );
        assert_eq!(run("{{json .State.Health}}", inspect()), "null");
        assert_eq!(
            run("{{json .Config.Labels}}", inspect()),
            r#"{"a":"1","b":"2"}"#
        );
    }

    #[test]
    fn range_if_with() {
        assert_eq!(
            run(
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
                inspect()
            ),
            "/x:/y /p:/q "
        );
        assert_eq!(
            run(
                "{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}};{{end}}",
                inspect()
            ),
            "0=/x;1=/p;"
        );
        assert_eq!(
            run(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}",
                inspect()
            ),
            "a=1,b=2,"
        );
        assert_eq!(
            run(
                "{{range $n, $c := .NetworkSettings.Networks}}{{$n}} {{$c.IPAddress}}{{end}}",
                inspect()
            ),
            "bridge 172.17.0.2"
        );
        assert_eq!(
            run("{{range .Nope}}x{{else}}empty{{end}}", inspect()),
            "empty"
        );
        assert_eq!(
            run("{{if .State.Running}}up{{else}}down{{end}}", inspect()),
            "up"
        );
        assert_eq!(
            run(
                "{{if eq .State.ExitCode 1}}a{{else if eq .State.ExitCode 0}}b{{else}}c{{end}}",
                inspect()
            ),
            "b"
        );
        assert_eq!(
            run("{{with .State}}{{.Status}}{{end}}", inspect()),
            "running"
        );
        assert_eq!(run("{{with .Nope}}x{{else}}none{{end}}", inspect()), "none");
        assert_eq!(
            run(
                "{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}} {{end}}",
                inspect()
            ),
            "A=1 "
        );
        assert_eq!(
            run(
                "{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}",
                inspect()
            ),
            "B=2"
        );
        assert_eq!(run("{{range 3}}{{.}}{{end}}", json!(null)), "012");
    }

    #[test]
    fn variables_and_pipes() {
        assert_eq!(
            run("{{$n := .Name}}{{$n}}-{{$n | upper}}", inspect()),
            "/web-/WEB"
        );
        assert_eq!(
            run("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", json!({})),
            "2"
        );
        assert_eq!(
            run("{{range .Mounts}}{{$.Name}}{{end}}", inspect()),
            "/web/web"
        );
        assert_eq!(
            run("{{.Config.Image | printf \"%s:latest\"}}", inspect()),
            "busybox:latest"
        );
        assert_eq!(run("{{(index .Mounts 1).Source}}", inspect()), "/p");
        assert_eq!(run("{{index .Config.Labels \"a\"}}", inspect()), "1");
        assert_eq!(run("{{len .Mounts}}", inspect()), "2");
        assert_eq!(run("{{join .Config.Env \",\"}}", inspect()), "A=1,B=2");
        assert_eq!(run("{{split \"a:b\" \":\"}}", json!({})), "[a b]");
        assert_eq!(
            run("{{truncate .Name 3}}", json!({"Name": "abcdef"})),
            "abc"
        );
        // Go appends the piped value last, so this passes 3 as the string.
        assert!(run_err("{{.Name | truncate 3}}", json!({"Name": "abcdef"}))
            .contains("expected string; got float64"));
        assert_eq!(run("{{lower \"ABC\" | title}}", json!({})), "Abc");
        assert_eq!(run("{{println .Name}}", inspect()), "/web\n");
        assert_eq!(
            run("{{and 1 0 2}} {{or 0 \"\" 3}} {{not true}}", json!({})),
            "0 3 false"
        );
        assert_eq!(
            run(
                "{{if and .State.Running (eq .State.Status \"running\")}}ok{{end}}",
                inspect()
            ),
            "ok"
        );
    }

    #[test]
    fn whitespace_trimming() {
        assert_eq!(run("a  {{- .Name -}}  \n b", inspect()), "a/webb");
        assert_eq!(run("{{/* comment */}}x", json!({})), "x");
    }

    #[test]
    fn exec_errors_like_go() {
        assert_eq!(
            run_err("{{.State.Health.Status}}", inspect()),
            "template: :1:2: executing \"\" at <.State.Health.Status>: nil pointer evaluating interface {}.Status"
        );
        assert_eq!(
            run_err("x{{index .Mounts 5}}", inspect()),
            "template: :1:3: executing \"\" at <index .Mounts 5>: error calling index: index out of range: 5"
        );
        assert_eq!(
            run_err("{{.Name.X}}", inspect()),
            "template: :1:2: executing \"\" at <.Name.X>: can't evaluate field X in type string"
        );
        assert!(run_err("{{$nope}}", json!({})).contains("undefined variable: $nope"));
    }

    #[test]
    fn struct_root_semantics() {
        let labels = json!({"Label": {"com.x": "y"}});
        let opts = ExecOptions {
            header: false,
            root_type: Some("*formatter.ContainerContext"),
            methods: labels.as_object(),
            escape_root_json: false,
        };
        let t = Template::parse("{{.ID}} {{.Label \"com.x\"}}|{{.Label \"nope\"}}|").unwrap();
        assert_eq!(
            t.execute_with(&json!({"ID": "abc"}), &opts).unwrap(),
            "abc y||"
        );
        let t = Template::parse("{{.Foo}}").unwrap();
        assert_eq!(
            t.execute_with(&json!({"ID": "abc"}), &opts).unwrap_err().to_string(),
            "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type *formatter.ContainerContext"
        );
    }

    #[test]
    fn header_mode_keeps_names() {
        let t = Template::parse("{{.Names | upper}}\t{{truncate .ID 3}}").unwrap();
        let opts = ExecOptions {
            header: true,
            ..Default::default()
        };
        assert_eq!(
            t.execute_with(&json!({"Names": "NAMES", "ID": "CONTAINER ID"}), &opts)
                .unwrap(),
            "NAMES\tCONTAINER ID"
        );
    }
}
