//! Go's view of JSON-decoded values: how `fmt` prints them, truthiness, type names.

use serde_json::Value;

/// A template value: a JSON value, or Go's "no value" (a missing map key, nil interface).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Missing,
    Json(Value),
}

impl Val {
    /// The value as `any`: missing becomes nil, as reflect.Zero of an interface does.
    pub(crate) fn as_json(&self) -> Value {
        match self {
            Val::Missing => Value::Null,
            Val::Json(v) => v.clone(),
        }
    }

    /// Go's truth: false, 0, nil, and empty strings, slices and maps are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Val::Missing => false,
            Val::Json(v) => match v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            },
        }
    }
}

/// The Go type a JSON value decodes to, for error messages.
pub(crate) fn go_type(v: &Val) -> &'static str {
    match v {
        Val::Missing => "<nil>",
        Val::Json(Value::Null) => "<nil>",
        Val::Json(Value::Bool(_)) => "bool",
        Val::Json(Value::Number(_)) => "float64",
        Val::Json(Value::String(_)) => "string",
        Val::Json(Value::Array(_)) => "[]interface {}",
        Val::Json(Value::Object(_)) => "map[string]interface {}",
    }
}

/// `fmt.Sprint(v)` for what a template action prints.
pub(crate) fn print_val(v: &Val) -> String {
    match v {
        Val::Missing => "<no value>".to_string(),
        Val::Json(Value::Null) => "<no value>".to_string(),
        Val::Json(j) => go_print(j),
    }
}

/// `%v` of a JSON-decoded value (nil inside containers prints `<nil>`).
pub(crate) fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_print).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(o) => {
            // fmt sorts map keys.
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_print(&o[k.as_str()])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON as Go's `json.Encoder` with `SetEscapeHTML(false)` writes it (compact, keys sorted).
pub(crate) fn go_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// Go's `json.Marshal` HTML escaping of `<`, `>` and `&` (safe on JSON text: they only occur
/// inside strings).
pub(crate) fn escape_html(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_go() {
        assert_eq!(go_print(&json!(["a", 1, true, null])), "[a 1 true <nil>]");
        assert_eq!(
            go_print(&json!({"b": 1, "a": {"c": []}})),
            "map[a:map[c:[]] b:1]"
        );
        assert_eq!(print_val(&Val::Missing), "<no value>");
        assert_eq!(go_print(&json!(1.5)), "1.5");
    }

    #[test]
    fn truthiness() {
        assert!(!Val::Json(json!(0)).truthy());
        assert!(!Val::Json(json!("")).truthy());
        assert!(!Val::Json(json!([])).truthy());
        assert!(Val::Json(json!({"a": 1})).truthy());
        assert!(!Val::Missing.truthy());
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("sh -c 'a \"b\"'\n"), r#""sh -c 'a \"b\"'\n""#);
        assert_eq!(go_quote("x…"), "\"x…\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }
}
