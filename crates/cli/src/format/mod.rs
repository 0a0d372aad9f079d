//! Output formatting shared by the commands: `--format` handling (table/json/template), the
//! docker formatter contexts for containers and images, units, and tabwriter layout.

pub(crate) mod container;
pub(crate) mod image;
pub(crate) mod jsonfmt;
pub(crate) mod prune;
pub(crate) mod tabwriter;
pub(crate) mod units;
pub(crate) mod volume;

use serde_json::{Map, Value};

use crate::commands::StatusError;
use crate::template::{ExecOptions, Template, TemplateError};

/// A list formatter context: the rows, what the header row shows, and the Go type for errors.
pub(crate) struct ListContext<'a> {
    /// One JSON object per row (the formatter "struct").
    pub rows: Vec<Value>,
    /// Methods per row taking one key (`.Label "k"`), parallel to `rows`.
    pub methods: Vec<Map<String, Value>>,
    /// Field name to header text.
    pub header: &'a [(&'a str, &'a str)],
    /// Go type of a row, for "can't evaluate field" errors.
    pub root_type: &'a str,
}

/// Resolves `--format`: `table` → default table, `json` → `{{json .}}`, `table X` stays a table.
pub(crate) fn resolve_format(format: Option<&str>, default_table: &str) -> String {
    match format.map(str::trim) {
        None | Some("") | Some("table") => default_table.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    }
}

/// Renders rows with a resolved format, the way the docker CLI's formatter does: a `table`
/// format gets a header row and tabwriter alignment; others print one line per row.
pub(crate) fn render_list(format: &str, ctx: &ListContext<'_>) -> anyhow::Result<String> {
    render_list_inner(format, ctx).map_err(|e| match e {
        TemplateError::Parse(m) => StatusError::exit(1, format!("failed to parse template: {m}")),
        TemplateError::Exec(m) => StatusError::exit(1, format!("failed to execute template: {m}")),
    })
}

fn render_list_inner(format: &str, ctx: &ListContext<'_>) -> Result<String, TemplateError> {
    let (is_table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest),
        None => (false, format),
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = Template::parse(&body)?;
    let mut out = String::new();
    for (row, methods) in ctx.rows.iter().zip(&ctx.methods) {
        let opts = ExecOptions {
            header: false,
            root_type: Some(ctx.root_type),
            methods: Some(methods),
            escape_root_json: true,
        };
        out.push_str(&tmpl.execute_with(row, &opts)?);
        out.push('\n');
    }
    if !is_table {
        return Ok(out);
    }
    let header: Map<String, Value> = ctx
        .header
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    let header_methods: Map<String, Value> = ctx
        .methods
        .first()
        .map(|m| {
            m.keys()
                .map(|k| (k.clone(), Value::Object(Map::new())))
                .collect()
        })
        .unwrap_or_default();
    let opts = ExecOptions {
        header: true,
        root_type: None,
        methods: Some(&header_methods),
        escape_root_json: false,
    };
    let head = tmpl.execute_with(&Value::Object(header), &opts)?;
    Ok(tabwriter::align(&format!("{head}\n{out}")))
}

/// Executes a single-object template (inspect, version, info) with map semantics.
/// A parse error exits 64 with docker's "template parsing error" prefix.
pub(crate) fn render_one(format: &str, data: &Value) -> anyhow::Result<String> {
    let body = format.replace("\\t", "\t").replace("\\n", "\n");
    let tmpl = Template::parse(&body)
        .map_err(|e| StatusError::exit(64, format!("template parsing error: {e}")))?;
    Ok(tmpl.execute(data)?)
}

/// Docker's `TruncateID`: drop an `algo:` prefix, keep 12 characters.
pub(crate) fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, h)| h);
    id.chars().take(12).collect()
}

/// Docker's `Ellipsis`: at most `max` display columns, the last one `…` when cut.
pub(crate) fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 1 {
        return s.chars().take(1).collect();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H: &[(&str, &str)] = &[("ID", "CONTAINER ID"), ("Names", "NAMES")];

    fn ctx(rows: Vec<Value>) -> ListContext<'static> {
        let methods = rows.iter().map(|_| Map::new()).collect();
        ListContext {
            rows,
            methods,
            header: H,
            root_type: "*formatter.ContainerContext",
        }
    }

    #[test]
    fn table_with_header_and_alignment() {
        let c = ctx(vec![
            json!({"ID": "abc", "Names": "web"}),
            json!({"ID": "defdefdefdef", "Names": "db"}),
        ]);
        let out = render_list("table {{.ID}}\\t{{.Names}}", &c).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   NAMES\nabc            web\ndefdefdefdef   db\n"
        );
        let empty = render_list("table {{.ID}}\\t{{.Names}}", &ctx(vec![])).unwrap();
        assert_eq!(empty, "CONTAINER ID   NAMES\n");
    }

    #[test]
    fn plain_template_and_json() {
        let c = ctx(vec![json!({"ID": "abc", "Names": "web"})]);
        assert_eq!(
            render_list("{{.Names}}: {{.ID}}", &c).unwrap(),
            "web: abc\n"
        );
        assert_eq!(
            render_list(&resolve_format(Some("json"), ""), &c).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
        let lt = ctx(vec![json!({"ID": "<none>", "Names": "a&b"})]);
        assert_eq!(
            render_list("{{json .}} {{json .ID}}", &lt).unwrap(),
            "{\"ID\":\"\\u003cnone\\u003e\",\"Names\":\"a\\u0026b\"} \"<none>\"\n"
        );
        assert!(render_list("{{.Bogus}}", &c)
            .unwrap_err()
            .to_string()
            .contains("can't evaluate field Bogus"));
    }

    #[test]
    fn format_resolution() {
        assert_eq!(resolve_format(None, "D"), "D");
        assert_eq!(resolve_format(Some("table"), "D"), "D");
        assert_eq!(resolve_format(Some("table {{.ID}}"), "D"), "table {{.ID}}");
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(
            ellipsis("sh -c 'exit 3; sleep 100'", 20),
            "sh -c 'exit 3; slee…"
        );
        assert_eq!(ellipsis("short", 20), "short");
    }
}
