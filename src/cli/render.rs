//! Turning API JSON into tables and key: value lines for people. Pure:
//! `Value` in, `String` out. Absent values print as `-`.

use serde_json::Value;

/// A JSON scalar as a table cell.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.replace(['\n', '\t'], " "),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces, header first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_cells).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Rows of `items` (an array of objects), one column per key.
pub fn rows(items: Option<&Value>, keys: &[&str]) -> Vec<Vec<String>> {
    items
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| keys.iter().map(|k| cell(item.get(*k))).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// `key: value` lines of an object; nested objects as `k=v, k=v`.
pub fn key_values(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return format!("{}\n", cell(Some(v)));
    };
    let width = map.keys().map(|k| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in map {
        let text = match v {
            Value::Object(inner) if inner.is_empty() => "-".to_string(),
            Value::Object(inner) => inner
                .iter()
                .map(|(ik, iv)| format!("{ik}={}", cell(Some(iv))))
                .collect::<Vec<_>>()
                .join(", "),
            other => cell(Some(other)),
        };
        out.push_str(&format!("{:<width$} {text}\n", format!("{k}:")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_show_dashes() {
        let items = json!([{"a": "x", "b": null}, {"a": "longer", "b": 3}]);
        let t = table(&["A", "B"], &rows(Some(&items), &["a", "b"]));
        assert_eq!(t, "A       B\nx       -\nlonger  3\n");
    }

    #[test]
    fn key_value_lines() {
        let v = json!({"n": 1, "by": {"app": 2, "api": 1}, "e": {}});
        assert_eq!(key_values(&v), "by: api=1, app=2\ne:  -\nn:  1\n");
    }
}
