//! Template functions: Go's builtins (except `and`/`or`, which short-circuit in the evaluator)
//! and the docker CLI's `json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`.

use serde_json::Value;

use super::value::{go_json, go_print, go_quote, go_type, Val};

/// Calls a function on evaluated arguments; `Err` is the text after "error calling NAME: " or a
/// type error. In header mode docker's formatting functions return their first argument.
pub(crate) fn call(name: &str, args: &[Val], header: bool) -> Result<Val, String> {
    if header
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "pad" | "truncate"
        )
    {
        return args.first().cloned().ok_or_else(|| wrong_count(name, 1, 0));
    }
    match name {
        "not" => {
            let [a] = exact::<1>(name, args)?;
            Ok(Val::Json(Value::Bool(!a.truthy())))
        }
        "len" => {
            let [a] = exact::<1>(name, args)?;
            let n = match a {
                Val::Json(Value::String(s)) => s.len(),
                Val::Json(Value::Array(v)) => v.len(),
                Val::Json(Value::Object(m)) => m.len(),
                other => return Err(format!("error calling len: len of type {}", go_type(other))),
            };
            Ok(Val::Json(Value::from(n)))
        }
        "index" => {
            let (first, rest) = args.split_first().ok_or_else(|| wrong_count(name, 1, 0))?;
            let mut cur = first.clone();
            for key in rest {
                cur = index_one(&cur, key).map_err(|e| format!("error calling index: {e}"))?;
            }
            Ok(cur)
        }
        "slice" => slice(args).map_err(|e| format!("error calling slice: {e}")),
        "print" => Ok(str_val(sprint(args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(print_arg).collect();
            Ok(str_val(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            let (fmt, rest) = args.split_first().ok_or_else(|| wrong_count(name, 1, 0))?;
            let fmt = want_str(fmt)?;
            Ok(str_val(sprintf(&fmt, rest)))
        }
        "eq" => {
            let (first, rest) = args
                .split_first()
                .ok_or_else(|| "missing argument for comparison".to_string())?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            for r in rest {
                if equal(first, r)? {
                    return Ok(Val::Json(Value::Bool(true)));
                }
            }
            Ok(Val::Json(Value::Bool(false)))
        }
        "ne" => {
            let [a, b] = exact::<2>(name, args)?;
            Ok(Val::Json(Value::Bool(!equal(a, b)?)))
        }
        "lt" | "le" | "gt" | "ge" => {
            let [a, b] = exact::<2>(name, args)?;
            let ord = compare(a, b)?;
            let r = match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            };
            Ok(Val::Json(Value::Bool(r)))
        }
        "html" => Ok(str_val(html_escape(&sprint(args)))),
        "js" => Ok(str_val(js_escape(&sprint(args)))),
        "urlquery" => Ok(str_val(
            wharf_client::encode_component(&sprint(args)).replace("%20", "+"),
        )),
        "call" => Err("error calling call: call of nil".into()),
        "json" => {
            let [a] = exact::<1>(name, args)?;
            Ok(str_val(go_json(&a.as_json())))
        }
        "split" => {
            let [s, sep] = exact::<2>(name, args)?;
            let (s, sep) = (want_str(s)?, want_str(sep)?);
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Val::Json(Value::Array(parts)))
        }
        "join" => {
            let [list, sep] = exact::<2>(name, args)?;
            let sep = want_str(sep)?;
            let items = match list {
                Val::Json(Value::Array(a)) => a.iter().map(go_print).collect::<Vec<_>>(),
                Val::Missing | Val::Json(Value::Null) => Vec::new(),
                other => {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        go_type(other)
                    ))
                }
            };
            Ok(str_val(items.join(&sep)))
        }
        "title" => {
            let [s] = exact::<1>(name, args)?;
            Ok(str_val(title(&want_str(s)?)))
        }
        "lower" => {
            let [s] = exact::<1>(name, args)?;
            Ok(str_val(want_str(s)?.to_lowercase()))
        }
        "upper" => {
            let [s] = exact::<1>(name, args)?;
            Ok(str_val(want_str(s)?.to_uppercase()))
        }
        "pad" => {
            let [s, pre, post] = exact::<3>(name, args)?;
            let s = want_str(s)?;
            if s.is_empty() {
                return Ok(str_val(s));
            }
            let (pre, post) = (want_int(pre)?, want_int(post)?);
            Ok(str_val(format!(
                "{}{s}{}",
                " ".repeat(usize::try_from(pre).unwrap_or(0)),
                " ".repeat(usize::try_from(post).unwrap_or(0))
            )))
        }
        "truncate" => {
            let [s, n] = exact::<2>(name, args)?;
            let s = want_str(s)?;
            let n = usize::try_from(want_int(n)?).unwrap_or(0);
            // Go slices bytes; cut on a char boundary so we never split a character.
            if s.len() < n {
                return Ok(str_val(s));
            }
            let mut cut = n;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Ok(str_val(s[..cut].to_string()))
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

fn str_val(s: String) -> Val {
    Val::Json(Value::String(s))
}

fn wrong_count(name: &str, want: usize, got: usize) -> String {
    format!("wrong number of args for {name}: want {want} got {got}")
}

fn exact<'a, const N: usize>(name: &str, args: &'a [Val]) -> Result<&'a [Val; N], String> {
    args.try_into()
        .map_err(|_| wrong_count(name, N, args.len()))
}

fn want_str(v: &Val) -> Result<String, String> {
    match v {
        Val::Json(Value::String(s)) => Ok(s.clone()),
        Val::Missing => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
    }
}

fn want_int(v: &Val) -> Result<i64, String> {
    match v {
        Val::Json(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("wrong type for value; expected int; got {}", go_type(v))),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            go_type(other)
        )),
    }
}

fn index_one(cur: &Val, key: &Val) -> Result<Val, String> {
    match (cur, key) {
        (Val::Json(Value::Array(a)), Val::Json(Value::Number(n))) => {
            let i = n
                .as_i64()
                .ok_or("cannot index slice/array with non-integer")?;
            usize::try_from(i)
                .ok()
                .and_then(|i| a.get(i))
                .map(|v| Val::Json(v.clone()))
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        (Val::Json(Value::String(s)), Val::Json(Value::Number(n))) => {
            let i = n.as_i64().ok_or("cannot index string with non-integer")?;
            usize::try_from(i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Val::Json(Value::from(*b)))
                .ok_or_else(|| format!("index out of range: {i}"))
        }
        (Val::Json(Value::Object(m)), Val::Json(Value::String(k))) => {
            Ok(m.get(k).map_or(Val::Missing, |v| Val::Json(v.clone())))
        }
        (Val::Json(Value::Object(_)), other) => Err(format!(
            "value has type {}; should be string",
            go_type(other)
        )),
        (Val::Missing | Val::Json(Value::Null), _) => Err("index of untyped nil".into()),
        (other, _) => Err(format!("can't index item of type {}", go_type(other))),
    }
}

fn slice(args: &[Val]) -> Result<Val, String> {
    let (first, idx) = args.split_first().ok_or("missing argument")?;
    let idx: Vec<usize> = idx
        .iter()
        .map(|v| {
            want_int(v)
                .and_then(|i| usize::try_from(i).map_err(|_| format!("index out of range: {i}")))
        })
        .collect::<Result<_, _>>()?;
    match first {
        Val::Json(Value::String(s)) => {
            let (lo, hi) = bounds(&idx, s.len())?;
            s.get(lo..hi)
                .map(|p| str_val(p.to_string()))
                .ok_or_else(|| "invalid slice index".into())
        }
        Val::Json(Value::Array(a)) => {
            let (lo, hi) = bounds(&idx, a.len())?;
            Ok(Val::Json(Value::Array(a[lo..hi].to_vec())))
        }
        other => Err(format!("can't slice item of type {}", go_type(other))),
    }
}

fn bounds(idx: &[usize], len: usize) -> Result<(usize, usize), String> {
    let lo = idx.first().copied().unwrap_or(0);
    let hi = idx.get(1).copied().unwrap_or(len);
    if idx.len() > 2 {
        return Err("too many slice indexes".into());
    }
    if lo > hi || hi > len {
        return Err(format!("index out of range: {hi}"));
    }
    Ok((lo, hi))
}

fn equal(a: &Val, b: &Val) -> Result<bool, String> {
    Ok(match (a.as_json(), b.as_json()) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_), _)
        | (Value::Object(_), _)
        | (_, Value::Array(_))
        | (_, Value::Object(_)) => return Err("non-comparable type".into()),
        _ => return Err("incompatible types for comparison".into()),
    })
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    match (a.as_json(), b.as_json()) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => x
                .as_f64()
                .zip(y.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                .ok_or_else(|| "invalid type for comparison".to_string()),
        },
        (Value::String(x), Value::String(y)) => Ok(x.cmp(&y)),
        (Value::String(_), _)
        | (_, Value::String(_))
        | (Value::Number(_), _)
        | (_, Value::Number(_)) => Err("incompatible types for comparison".into()),
        _ => Err("invalid type for comparison".into()),
    }
}

fn print_arg(v: &Val) -> String {
    match v {
        Val::Missing => "<nil>".into(),
        Val::Json(j) => go_print(j),
    }
}

/// `fmt.Sprint`: a space between operands when neither side is a string.
pub(crate) fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Val| matches!(v, Val::Json(Value::String(_)));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&print_arg(a));
    }
    out
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        let is_word = c.is_alphanumeric() || c == '_' || c == '\'';
        if is_word && !prev_letter {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = is_word;
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A subset of Go's `fmt.Sprintf`: flags `-+0 #`, width, precision and verbs
/// `v s d q f g e x X t c %`; mismatches print Go's `%!verb(type=value)` markers.
pub(crate) fn sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut zero, mut plus, mut space, mut sharp) =
            (false, false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let j = arg.as_json();
        let bad = || format!("%!{verb}({}={})", go_type(arg), print_arg(arg));
        let num_sign = |s: String, neg: bool| -> String {
            if neg {
                s
            } else if plus {
                format!("+{s}")
            } else if space {
                format!(" {s}")
            } else {
                s
            }
        };
        let body = match verb {
            'v' => {
                if sharp {
                    go_json(&j)
                } else {
                    print_arg(arg)
                }
            }
            's' => match &j {
                Value::String(s) => match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s.clone(),
                },
                Value::Array(_) | Value::Object(_) => print_arg(arg),
                _ => bad(),
            },
            'q' => match &j {
                Value::String(s) => go_quote(s),
                _ => bad(),
            },
            'd' => match &j {
                Value::Number(n) if n.as_i64().is_some() => {
                    let i = n.as_i64().unwrap_or_default();
                    num_sign(i.to_string(), i < 0)
                }
                _ => bad(),
            },
            'c' => match j
                .as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .and_then(char::from_u32)
            {
                Some(ch) => ch.to_string(),
                None => bad(),
            },
            'x' | 'X' => {
                let s = match &j {
                    Value::String(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    Value::Number(n) if n.as_i64().is_some() => {
                        let i = n.as_i64().unwrap_or_default();
                        if i < 0 {
                            format!("-{:x}", i.unsigned_abs())
                        } else {
                            format!("{i:x}")
                        }
                    }
                    _ => bad(),
                };
                if verb == 'X' {
                    s.to_uppercase()
                } else {
                    s
                }
            }
            'f' | 'F' => match j.as_f64() {
                Some(f) => num_sign(format!("{:.*}", prec.unwrap_or(6), f), f < 0.0),
                None => bad(),
            },
            'e' => match j.as_f64() {
                Some(f) => num_sign(go_exp(f, prec.unwrap_or(6)), f < 0.0),
                None => bad(),
            },
            'g' => match j.as_f64() {
                Some(f) => num_sign(
                    match prec {
                        Some(p) => crate::format::units::go_g(f, p),
                        None => go_print(&j),
                    },
                    f < 0.0,
                ),
                None => bad(),
            },
            't' => match j {
                Value::Bool(b) => b.to_string(),
                _ => bad(),
            },
            _ => format!("%!{verb}({}={})", go_type(arg), print_arg(arg)),
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.push_str(&" ".repeat(pad));
                } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g' | 'x' | 'X') {
                    let (sign, digits) = match body.strip_prefix('-') {
                        Some(rest) => ("-", rest.to_string()),
                        None => ("", body.clone()),
                    };
                    out.push_str(sign);
                    out.push_str(&"0".repeat(pad));
                    out.push_str(&digits);
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    let extra: Vec<String> = args
        .map(|a| format!("{}={}", go_type(a), print_arg(a)))
        .collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// `%e`: mantissa, `e`, sign and at least two exponent digits.
fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(v: Value) -> Val {
        Val::Json(v)
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            sprintf("%s-%d-%v", &[j(json!("a")), j(json!(3)), j(json!([1, 2]))]),
            "a-3-[1 2]"
        );
        assert_eq!(
            sprintf(
                "%5s|%-5s|%05d",
                &[j(json!("ab")), j(json!("cd")), j(json!(42))]
            ),
            "   ab|cd   |00042"
        );
        assert_eq!(
            sprintf(
                "%.2f %q %x %t",
                &[
                    j(json!(1.23456)),
                    j(json!("hi")),
                    j(json!(255)),
                    j(json!(true))
                ]
            ),
            "1.23 \"hi\" ff true"
        );
        assert_eq!(sprintf("%d", &[j(json!("x"))]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[j(json!("x"))]), "x %!s(MISSING)");
        assert_eq!(sprintf("%%", &[]), "%");
        assert_eq!(sprintf("%e", &[j(json!(1234.5))]), "1.234500e+03");
        assert_eq!(sprintf("x", &[j(json!(1))]), "x%!(EXTRA float64=1)");
    }

    #[test]
    fn docker_functions() {
        assert_eq!(
            call("upper", &[j(json!("ab"))], false).unwrap(),
            j(json!("AB"))
        );
        assert_eq!(
            call("title", &[j(json!("hello wide world"))], false).unwrap(),
            j(json!("Hello Wide World"))
        );
        assert_eq!(
            call("split", &[j(json!("a,b")), j(json!(","))], false).unwrap(),
            j(json!(["a", "b"]))
        );
        assert_eq!(
            call("join", &[j(json!(["a", "b"])), j(json!("|"))], false).unwrap(),
            j(json!("a|b"))
        );
        assert_eq!(
            call("pad", &[j(json!("x")), j(json!(1)), j(json!(2))], false).unwrap(),
            j(json!(" x  "))
        );
        assert_eq!(
            call("pad", &[j(json!("")), j(json!(1)), j(json!(2))], false).unwrap(),
            j(json!(""))
        );
        assert_eq!(
            call("truncate", &[j(json!("abcdef")), j(json!(3))], false).unwrap(),
            j(json!("abc"))
        );
        assert_eq!(
            call("truncate", &[j(json!("ab")), j(json!(3))], false).unwrap(),
            j(json!("ab"))
        );
        assert_eq!(
            call("json", &[j(json!({"b": [1], "a": "<x>"}))], false).unwrap(),
            j(json!(r#"{"a":"<x>","b":[1]}"#))
        );
        assert_eq!(
            call("upper", &[j(json!("NAMES"))], true).unwrap(),
            j(json!("NAMES"))
        );
        assert!(call("upper", &[j(json!(1))], false)
            .unwrap_err()
            .contains("expected string; got float64"));
    }

    #[test]
    fn builtins() {
        assert_eq!(
            call("len", &[j(json!([1, 2, 3]))], false).unwrap(),
            j(json!(3))
        );
        assert_eq!(
            call("len", &[j(json!(3))], false).unwrap_err(),
            "error calling len: len of type float64"
        );
        assert_eq!(
            call(
                "index",
                &[j(json!({"a": [5, 6]})), j(json!("a")), j(json!(1))],
                false
            )
            .unwrap(),
            j(json!(6))
        );
        assert_eq!(
            call("index", &[j(json!({"a": 1})), j(json!("zz"))], false).unwrap(),
            Val::Missing
        );
        assert_eq!(
            call("index", &[j(json!([1])), j(json!(5))], false).unwrap_err(),
            "error calling index: index out of range: 5"
        );
        assert_eq!(
            call(
                "slice",
                &[j(json!("abcdef")), j(json!(1)), j(json!(3))],
                false
            )
            .unwrap(),
            j(json!("bc"))
        );
        assert_eq!(
            call("eq", &[j(json!(1)), j(json!(2)), j(json!(1))], false).unwrap(),
            j(json!(true))
        );
        assert_eq!(
            call("lt", &[j(json!("a")), j(json!("b"))], false).unwrap(),
            j(json!(true))
        );
        assert!(call("lt", &[j(json!("a")), j(json!(1))], false).is_err());
        assert_eq!(
            call("print", &[j(json!("a")), j(json!(1)), j(json!(2))], false).unwrap(),
            j(json!("a1 2"))
        );
        assert_eq!(
            call("println", &[j(json!("a")), j(json!(1))], false).unwrap(),
            j(json!("a 1\n"))
        );
        assert_eq!(
            call("html", &[j(json!("<a&b>"))], false).unwrap(),
            j(json!("&lt;a&amp;b&gt;"))
        );
        assert_eq!(
            call("urlquery", &[j(json!("a b&c"))], false).unwrap(),
            j(json!("a+b%26c"))
        );
    }
}
