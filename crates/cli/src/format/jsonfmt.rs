//! Re-indents raw JSON without reordering keys, as Go's `json.MarshalIndent` over a
//! `json.RawMessage` does for `docker inspect` (4-space indent, `<>&` escaped).

/// Indents `raw` (a valid JSON document) with `indent` per level, starting at `depth`.
pub(crate) fn indent(raw: &[u8], prefix_depth: usize, unit: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = prefix_depth;
    let mut in_str = false;
    let mut escaped = false;
    let s = String::from_utf8_lossy(raw);
    let chars: Vec<char> = s.chars().collect();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            match c {
                _ if escaped => {
                    escaped = false;
                    out.push(c);
                }
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_str = false;
                    out.push(c);
                }
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                // Empty containers stay on one line.
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_ascii_whitespace() {
                    j += 1;
                }
                if chars.get(j) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                out.push(c);
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// `docker inspect`'s default output: a JSON array of the raw objects, indented.
pub(crate) fn inspect_array(objects: &[Vec<u8>]) -> String {
    if objects.is_empty() {
        return "[]".to_string();
    }
    let mut out = String::from("[");
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n    ");
        out.push_str(&indent(o, 1, "    "));
    }
    out.push_str("\n]");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_indents_like_go() {
        let raw = br#"{"Id":"x","Args":[],"Config":{"Cmd":["a > b"],"Labels":{}},"N":1}"#;
        assert_eq!(
            inspect_array(&[raw.to_vec()]),
            "[\n    {\n        \"Id\": \"x\",\n        \"Args\": [],\n        \"Config\": {\n            \"Cmd\": [\n                \"a \\u003e b\"\n            ],\n            \"Labels\": {}\n        },\n        \"N\": 1\n    }\n]"
        );
        assert_eq!(inspect_array(&[]), "[]");
    }

    #[test]
    fn escapes_inside_strings_are_kept() {
        assert_eq!(
            indent(br#"{"a":"q\"{,}"}"#, 0, "  "),
            "{\n  \"a\": \"q\\\"{,}\"\n}"
        );
    }
}
