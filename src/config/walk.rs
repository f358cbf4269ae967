//! Walks the raw YAML tree against the key table (`keys.rs`) and collects
//! every unknown key, wrong type and missing required key in one pass.
//!
//! The tree is cleaned as it goes: unknown keys and badly typed optional
//! values are removed (so their defaults apply), badly typed or missing
//! required values are filled with an empty value, and null values count as
//! absent. The cleaned tree then deserializes into `schema::Config`, so the
//! value checks that follow still run and everything is reported together.
//! Paths that already have an error are remembered in `bad` so the value
//! checks do not add a second, confusing error about a filled-in value.

use super::duration::parse_duration;
use super::keys::{self, Kind};
use serde_norway::{Mapping, Value};

#[derive(Debug, Default)]
pub struct Findings {
    /// (concrete path, message)
    pub errors: Vec<(String, String)>,
    /// (generic path, first concrete path) of v1.1 keys present.
    pub inert: Vec<(&'static str, String)>,
    /// Concrete paths whose value was removed or filled in.
    pub bad: Vec<String>,
}

impl Findings {
    fn error(&mut self, path: &str, message: String) {
        self.errors.push((path.to_string(), message));
        self.bad.push(path.to_string());
    }

    /// Whether an error about `path` would only repeat an earlier one.
    pub fn covers(&self, path: &str) -> bool {
        self.bad.iter().any(|b| {
            path == b
                || path
                    .strip_prefix(b.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }
}

pub fn walk(root: &mut Value, out: &mut Findings) {
    if root.is_null() {
        *root = Value::Mapping(Mapping::new());
    }
    match root {
        Value::Mapping(map) => {
            walk_mapping(map, "", "", out);
        }
        other => out.errors.push((
            String::new(),
            format!(
                "the file must hold a mapping of keys, found {}",
                describe(other)
            ),
        )),
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Returns false when a required key is missing (the caller marks the item).
fn walk_mapping(map: &mut Mapping, generic: &str, concrete: &str, out: &mut Findings) -> bool {
    let valid = keys::children(generic);
    let mut remove: Vec<Value> = Vec::new();
    let mut fill: Vec<(Value, Value)> = Vec::new();
    for (k, v) in map.iter_mut() {
        let Some(name) = k.as_str() else {
            out.error(
                concrete,
                format!("keys must be strings, found {}", describe(k)),
            );
            remove.push(k.clone());
            continue;
        };
        let g = join(generic, name);
        let c = join(concrete, name);
        let Some(key) = keys::find(&g) else {
            let hint = keys::did_you_mean(name, &valid)
                .map(|s| format!(" (did you mean \"{s}\"?)"))
                .unwrap_or_default();
            out.error(&c, format!("unknown key{hint}"));
            remove.push(k.clone());
            continue;
        };
        if v.is_null() {
            remove.push(k.clone());
            continue;
        }
        if key.inert && !out.inert.iter().any(|(p, _)| *p == key.path) {
            out.inert.push((key.path, c.clone()));
        }
        if !check(v, key.kind, &g, &c, out) {
            if key.required {
                fill.push((k.clone(), empty(key.kind)));
            } else {
                remove.push(k.clone());
            }
        }
    }
    for k in remove {
        map.remove(&k);
    }
    for (k, v) in fill {
        map.insert(k, v);
    }
    let mut complete = true;
    for name in &valid {
        let Some(key) = keys::find(&join(generic, name)) else {
            continue;
        };
        if key.required && !map.contains_key(*name) {
            out.errors.push((
                concrete.to_string(),
                format!("missing required key \"{name}\""),
            ));
            map.insert(Value::String((*name).to_string()), empty(key.kind));
            complete = false;
        }
    }
    if !complete {
        out.bad.push(concrete.to_string());
    }
    complete
}

fn empty(kind: Kind) -> Value {
    match kind {
        Kind::U16 | Kind::U32 | Kind::Usize => Value::Number(0.into()),
        _ => Value::String(String::new()),
    }
}

/// Checks one value; false means it was reported and must not be used.
fn check(v: &mut Value, kind: Kind, g: &str, c: &str, out: &mut Findings) -> bool {
    let wrong = |out: &mut Findings, v: &Value, want: &str| {
        out.error(c, format!("expected {want}, found {}", describe(v)));
        false
    };
    match kind {
        Kind::Any => true,
        Kind::Section => match v {
            Value::Mapping(map) => {
                walk_mapping(map, g, c, out);
                true
            }
            other => wrong(out, other, "a mapping of keys"),
        },
        Kind::List | Kind::NamedList => match v {
            Value::Sequence(items) => {
                let item_g = format!("{g}[]");
                for (i, item) in items.iter_mut().enumerate() {
                    let item_c = format!("{c}[{i}]");
                    if kind == Kind::NamedList
                        && let Value::String(name) = item
                    {
                        let mut map = Mapping::new();
                        map.insert(Value::String("name".into()), Value::String(name.clone()));
                        *item = Value::Mapping(map);
                    }
                    match item {
                        Value::Mapping(map) => {
                            walk_mapping(map, &item_g, &item_c, out);
                        }
                        other => {
                            out.error(
                                &item_c,
                                format!("expected a mapping of keys, found {}", describe(other)),
                            );
                            *other = Value::Mapping(Mapping::new());
                            if let Value::Mapping(map) = other {
                                walk_mapping(map, &item_g, &item_c, &mut Findings::default());
                            }
                        }
                    }
                }
                true
            }
            other => wrong(out, other, "a list"),
        },
        Kind::Str => v.is_string() || wrong(out, v, "a string"),
        Kind::Bool => v.is_bool() || wrong(out, v, "true or false"),
        Kind::CountOrPercent => {
            let ok = int_in(v, u64::from(u32::MAX))
                || v.as_str().is_some_and(|s| {
                    s.trim().ends_with('%') && super::MinHealthy::parse(s).is_ok()
                });
            ok || wrong(out, v, "a count like 2 or a percentage like \"50%\"")
        }
        Kind::U16 => int_in(v, u64::from(u16::MAX)) || wrong(out, v, "an integer from 0 to 65535"),
        Kind::U32 => {
            int_in(v, u64::from(u32::MAX)) || wrong(out, v, "an integer from 0 to 4294967295")
        }
        Kind::Usize => int_in(v, u64::from(u32::MAX)) || wrong(out, v, "a non-negative integer"),
        Kind::F64 => v.as_f64().is_some() || wrong(out, v, "a number"),
        Kind::Dur => match v {
            Value::Number(n) if n.as_u64().is_some() => true,
            Value::String(s) => match parse_duration(s) {
                Ok(_) => true,
                Err(e) => {
                    out.error(c, e);
                    false
                }
            },
            other => wrong(out, other, "a duration such as 500ms, 10s, 5m or 1h"),
        },
        Kind::StrList | Kind::U16List => match v {
            Value::Sequence(items) => {
                let before = out.errors.len();
                for (i, item) in items.iter().enumerate() {
                    let ok = if kind == Kind::StrList {
                        item.is_string()
                    } else {
                        int_in(item, u64::from(u16::MAX))
                    };
                    if !ok {
                        let want = if kind == Kind::StrList {
                            "a string"
                        } else {
                            "an integer from 0 to 65535"
                        };
                        out.error(
                            &format!("{c}[{i}]"),
                            format!("expected {want}, found {}", describe(item)),
                        );
                    }
                }
                out.errors.len() == before
            }
            other => wrong(out, other, "a list"),
        },
        Kind::StrMap => match v {
            Value::Mapping(map) => {
                let before = out.errors.len();
                for (k, val) in map.iter() {
                    match k.as_str() {
                        Some(name) if val.is_string() => {
                            let _ = name;
                        }
                        Some(name) => out.error(
                            &join(c, name),
                            format!("expected a string, found {}", describe(val)),
                        ),
                        None => {
                            out.error(c, format!("keys must be strings, found {}", describe(k)))
                        }
                    }
                }
                out.errors.len() == before
            }
            other => wrong(out, other, "a mapping of names to strings"),
        },
        Kind::Enum(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => true,
            Some(s) => {
                let hint = keys::did_you_mean(s, allowed)
                    .map(|h| format!(" (did you mean \"{h}\"?)"))
                    .unwrap_or_default();
                out.error(
                    c,
                    format!(
                        "invalid value \"{s}\"{hint}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
                false
            }
            None => wrong(out, v, &format!("one of: {}", allowed.join(", "))),
        },
    }
}

fn int_in(v: &Value, max: u64) -> bool {
    v.as_u64().is_some_and(|n| n <= max)
}

pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> (Value, Findings) {
        let mut v: Value = serde_norway::from_str(yaml).unwrap();
        let mut out = Findings::default();
        walk(&mut v, &mut out);
        (v, out)
    }

    #[test]
    fn reports_everything_and_cleans() {
        let (v, out) = run(
            "dns:\n  listen_adress: ':53'\n  default_ttl: lots\nregions:\n  - name: eu\n    servers:\n      - address: 10.0.0.1\n        port: eighty\n      - port: 80\n    countries: [DE]\noverwatch:\n  gossip:\n    probe_interval: 1s\nlogging:\n  format: jsn\n",
        );
        let msgs: Vec<String> = out
            .errors
            .iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect();
        assert!(
            msgs[0]
                .starts_with("dns.listen_adress: unknown key (did you mean \"listen_address\"?)"),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("dns.default_ttl: expected an integer"))
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("regions[0].servers[0].port: expected"))
        );
        assert!(
            msgs.iter()
                .any(|m| m == "regions[0].servers[1]: missing required key \"address\"")
        );
        assert!(msgs.iter().any(|m| m.contains("did you mean \"json\"")));
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert_eq!(
            out.inert,
            vec![(
                "overwatch.gossip.probe_interval",
                "overwatch.gossip.probe_interval".to_string()
            )]
        );
        assert!(out.covers("regions[0].servers[1].address"));
        assert!(!out.covers("regions[0].name"));
        // The cleaned tree deserializes.
        let cfg: super::super::Config = serde_norway::from_value(v).unwrap();
        assert_eq!(cfg.dns.default_ttl, 60);
        assert_eq!(cfg.regions[0].servers.len(), 2);
    }

    #[test]
    fn bad_list_items_and_maps() {
        let (_, out) =
            run("dns:\n  zones: [a, 3]\noverwatch:\n  agent_tokens:\n    web: 5\nregions: 7\n");
        let paths: Vec<&str> = out.errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["dns.zones[1]", "overwatch.agent_tokens.web", "regions"]
        );
    }
}
