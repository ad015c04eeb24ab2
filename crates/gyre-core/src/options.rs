//! Reading options from JSON values, as JavaScript sends them (camelCase objects), with serde
//! through `serde_path_to_error`: an error names the option by its path (`optimizer.learningRate`,
//! `layers[1].hiddenSize`) and says what it accepts and what it got, in gyre's words rather than
//! serde's or the parser's. The training options (`train::config`) and the model spec
//! (`model::config`) are read with these helpers.
//!
//! An object with a `type` ([`tagged`]) is read in two steps, its `type` first and then its other
//! fields as the plain struct of that type, so that the paths inside it are kept.

use crate::error::{CoreError, Result};
use serde::de::{self, DeserializeOwned, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A count that must be at least 1 (`epochs`, `hiddenSize`, ...): anything else is refused
/// while reading, as `hiddenSize must be a positive integer, got 0` (or `-3`, `2.5`, `"3"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Count(pub(crate) usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Positive;
        impl Visitor<'_> for Positive {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a positive integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Count, E> {
                match usize::try_from(v) {
                    Ok(n) if n > 0 => Ok(Count(n)),
                    _ => Err(E::invalid_value(Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Count, E> {
                match u64::try_from(v) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
                }
            }
        }
        deserializer.deserialize_u64(Positive)
    }
}

/// Parses JSON text into a value to read with [`read`]; `what` names the text in the error.
pub(crate) fn json_value(what: &str, json: &str) -> Result<Value> {
    serde_json::from_str(json).map_err(|e| CoreError::invalid(what, "valid JSON", e))
}

/// Reads `value`, the option at `path`, as `T`; an error names the option by its path under
/// `path` (`""` for the options themselves).
pub(crate) fn read<T: DeserializeOwned>(path: &str, value: Value) -> Result<T> {
    read_in("the options", path, value)
}

/// [`read`] for the object `root` names in an error (`the model spec`), at its top level.
pub(crate) fn read_root<T: DeserializeOwned>(root: &str, value: Value) -> Result<T> {
    read_in(root, "", value)
}

fn read_in<T: DeserializeOwned>(root: &str, path: &str, value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let full = match (path, at.as_str()) {
            (p, ".") => p.to_string(),
            ("", a) => a.to_string(),
            (p, a) => format!("{p}.{a}"),
        };
        option_error(root, &full, &e.inner().to_string())
    })
}

/// serde's message about the option at `path` in gyre's words: `path must be <what it
/// accepts>, got <value>`, `unknown option path.x; expected one of ...`, `path.x is required`.
fn option_error(root: &str, path: &str, message: &str) -> CoreError {
    let join = |field: &str| {
        if path.is_empty() || path == field || path.ends_with(&format!(".{field}")) {
            if path.is_empty() {
                field.to_string()
            } else {
                path.to_string()
            }
        } else {
            format!("{path}.{field}")
        }
    };
    let ticked = |s: &str| s.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = ticked(rest);
        let field = names.first().cloned().unwrap_or_default();
        let expected = if names.len() > 1 { format!("one of {}", names[1..].join(", ")) } else { "no options".into() };
        return CoreError::UnknownOption { what: join(&field), expected };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = ticked(rest).first().cloned().unwrap_or_default();
        let within = if path.is_empty() { format!("in {root}") } else { format!("in {path}") };
        return CoreError::Missing { what: join(&field), context: within };
    }
    let what = if path.is_empty() { "options" } else { path };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some((got, expected)) = rest.split_once(", expected ") {
                return CoreError::invalid(what, accepts(expected), received(got));
            }
        }
    }
    CoreError::invalid(what, "a valid option", message)
}

/// What serde says a type expects, in the words of the options' docs.
fn accepts(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" => "a non-negative integer".into(),
        "f64" | "f32" => "a number".into(),
        other => other.into(),
    }
}

/// serde's description of a received value as the value: `boolean `true`` → `true`.
fn received(got: &str) -> String {
    for prefix in ["boolean ", "integer ", "floating point "] {
        if let Some(v) = got.strip_prefix(prefix) {
            return v.trim_matches('`').to_string();
        }
    }
    if let Some(v) = got.strip_prefix("string ") {
        return v.to_string();
    }
    match got {
        "map" => "an object".into(),
        "sequence" => "an array".into(),
        "unit value" => "null".into(),
        other => other.into(),
    }
}

/// `{ type, ...rest }` at `path`: the type, one of `kinds` (`default` when absent, if there is
/// one), and the other fields.
pub(crate) fn tagged(path: &str, value: Value, kinds: &[&str], default: Option<&str>) -> Result<(String, Value)> {
    let Value::Object(mut fields) = value else {
        return Err(CoreError::invalid(
            path,
            format!("an object {{ type: {}, ... }}", quoted(kinds)),
            describe(&value),
        ));
    };
    match fields.remove("type") {
        Some(Value::String(kind)) if kinds.contains(&kind.as_str()) => Ok((kind, Value::Object(fields))),
        Some(other) => {
            Err(CoreError::invalid(format!("{path}.type"), format!("one of {}", quoted(kinds)), describe(&other)))
        }
        None => match default {
            Some(kind) => Ok((kind.to_string(), Value::Object(fields))),
            None => {
                Err(CoreError::Missing { what: format!("{path}.type"), context: format!("(one of {})", quoted(kinds)) })
            }
        },
    }
}

/// `'a', 'b', 'c'`.
pub(crate) fn quoted(kinds: &[&str]) -> String {
    kinds.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
}

/// A JSON value as an error message shows it: `true`, `2.5`, `"abc"`, `an object`.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// `e` with its option named under `path` (`lr` → `optimizer.learningRate`).
pub(crate) fn prefixed(path: &str, e: CoreError) -> CoreError {
    match e {
        CoreError::InvalidArgument { what, expected, got } => {
            CoreError::InvalidArgument { what: format!("{path}.{}", camel(&what)), expected, got }
        }
        other => other,
    }
}

/// `weight_decay` → `weightDecay`, `lr` → `learningRate` (the option names of the JSON form).
fn camel(s: &str) -> String {
    if s == "lr" {
        return "learningRate".into();
    }
    let mut out = String::new();
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Sizes {
        hidden_size: Count,
        #[serde(default)]
        seed: u64,
    }

    fn err(json: &str) -> String {
        read::<Sizes>("layers[1]", json_value("test", json).expect("json")).expect_err("refused").to_string()
    }

    #[test]
    fn counts_are_positive_integers_and_messages_name_the_path() {
        for (given, got) in [("0", "0"), ("-3", "-3"), ("2.5", "2.5"), (r#""3""#, r#""3""#), ("true", "true")] {
            assert_eq!(
                err(&format!(r#"{{"hiddenSize":{given}}}"#)),
                format!("layers[1].hiddenSize must be a positive integer, got {got}")
            );
        }
        assert_eq!(err(r#"{"hiddenSize":1,"seed":-1}"#), "layers[1].seed must be a non-negative integer, got -1");
        assert_eq!(err(r#"{"seed":1}"#), "layers[1].hiddenSize is required in layers[1]");
        assert_eq!(
            err(r#"{"hiddenSize":1,"hidden":1}"#),
            "unknown option layers[1].hidden; expected one of hiddenSize, seed"
        );
        let root = read_root::<Sizes>("the model spec", serde_json::json!({})).expect_err("refused").to_string();
        assert_eq!(root, "hiddenSize is required in the model spec");
        let ok: Sizes = read("", serde_json::json!({ "hiddenSize": 7 })).expect("valid");
        assert_eq!((ok.hidden_size, ok.seed), (Count(7), 0));
        assert_eq!(serde_json::to_string(&Count(7)).expect("serialize"), "7");
    }

    #[test]
    fn a_tagged_object_gives_its_type_and_the_other_fields() {
        let kinds = ["a", "b"];
        let (kind, rest) = tagged("x", serde_json::json!({ "type": "b", "n": 1 }), &kinds, None).expect("tagged");
        assert_eq!((kind.as_str(), rest), ("b", serde_json::json!({ "n": 1 })));
        let e = |v: Value| tagged("x", v, &kinds, None).expect_err("refused").to_string();
        assert_eq!(e(serde_json::json!({ "type": "c" })), r#"x.type must be one of 'a', 'b', got "c""#);
        assert_eq!(e(serde_json::json!({})), "x.type is required (one of 'a', 'b')");
        assert_eq!(e(Value::Null), "x must be an object { type: 'a', 'b', ... }, got null");
    }
}
