//! The JSON Schema of the config file, from the same types the loader
//! deserializes, with each probe's keys merged into the check table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};
use vitalis_probes::ProbeKind;

use crate::raw::{CheckDecl, CheckKeys, RawConfig};

/// The JSON Schema (draft 2020-12) of the config file, as `vitalis schema`
/// prints it.
///
/// A check is `oneOf` one object per probe type, selected by `type`: the
/// check's own keys plus that probe's keys, nothing else.
///
/// ```
/// let schema = vitalis_config::schema();
/// assert_eq!(schema["title"], "Vitalis configuration");
/// assert!(schema["properties"]["component"].is_object());
/// ```
pub fn schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut value = generator.into_root_schema_for::<RawConfig>().to_value();
    strip_null(&mut value);
    value
}

/// TOML has no null, and registration JSON refuses it: an optional key is
/// one that may be left out, so `null` alternatives are removed.
fn strip_null(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if obj.get("default") == Some(&Value::Null) {
                obj.remove("default");
            }
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    obj.insert("type".into(), only);
                }
            }
            let null = json!({ "type": "null" });
            if let Some(Value::Array(alts)) = obj.get("anyOf")
                && alts.len() == 2
                && alts.contains(&null)
            {
                let other = alts.iter().find(|a| **a != null).cloned();
                obj.remove("anyOf");
                if let Some(Value::Object(other)) = other {
                    for (k, x) in other {
                        obj.entry(k).or_insert(x);
                    }
                }
            }
            for x in obj.values_mut() {
                strip_null(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Follows a `$ref` into the generator's definitions.
fn resolve(generator: &SchemaGenerator, schema: Schema) -> Value {
    let value = schema.to_value();
    if let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        if let Some(def) = generator.definitions().get(name) {
            return def.clone();
        }
    }
    value
}

/// The keys of a probe's table, when its schema is a closed object
/// (`additionalProperties: false`); `None` leaves unknown keys to the probe.
pub(crate) fn probe_keys(kind: &dyn ProbeKind) -> Option<&'static [String]> {
    static KEYS: OnceLock<HashMap<&'static str, Option<Vec<String>>>> = OnceLock::new();
    let map = KEYS.get_or_init(|| {
        vitalis_probes::KINDS
            .iter()
            .map(|k| {
                let mut generator = SchemaSettings::draft2020_12().into_generator();
                let schema = k.schema(&mut generator);
                let value = resolve(&generator, schema);
                let closed = value.get("additionalProperties") == Some(&Value::Bool(false));
                let keys = value
                    .get("properties")
                    .and_then(Value::as_object)
                    .filter(|_| closed)
                    .map(|p| p.keys().cloned().collect());
                (k.name(), keys)
            })
            .collect()
    });
    map.get(kind.name()).and_then(|k| k.as_deref())
}

impl JsonSchema for CheckDecl {
    fn schema_name() -> Cow<'static, str> {
        "Check".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let own = CheckKeys::json_schema(generator).to_value();
        let own_props = own
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut variants = Vec::new();
        for kind in vitalis_probes::KINDS {
            let probe = kind.schema(generator);
            let reference = probe
                .get("$ref")
                .and_then(Value::as_str)
                .map(str::to_string);
            let probe = resolve(generator, probe);
            // Inlined below: drop the probe's own top-level definition.
            if let Some(name) = reference.as_deref().and_then(|r| r.rsplit('/').next()) {
                generator.definitions_mut().remove(name);
            }
            let mut props: Map<String, Value> = own_props.clone();
            props.insert(
                "type".into(),
                json!({ "const": kind.name(), "description": "The probe type." }),
            );
            let mut required = vec![json!("name"), json!("type")];
            match probe.get("properties").and_then(Value::as_object) {
                Some(probe_props) => {
                    for (k, v) in probe_props {
                        props.insert(k.clone(), v.clone());
                    }
                    if let Some(r) = probe.get("required").and_then(Value::as_array) {
                        required.extend(r.iter().cloned());
                    }
                    let mut variant = json!({
                        "title": kind.name(),
                        "type": "object",
                        "properties": props,
                        "required": required,
                        "additionalProperties": false,
                    });
                    if let Some(d) = probe.get("description") {
                        variant["description"] = d.clone();
                    }
                    variants.push(variant);
                }
                None => variants.push(json!({
                    "title": kind.name(),
                    "allOf": [
                        { "type": "object", "properties": props, "required": required },
                        probe,
                    ],
                })),
            }
        }
        let names: Vec<&str> = vitalis_probes::kind_names();
        json_schema!({
            "description": "A check: its own keys (name, level, type, impact, interval, …) and the keys of its probe type, in one table.",
            "type": "object",
            "required": ["name", "type"],
            "properties": { "type": { "enum": names } },
            "oneOf": variants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_keys_match_the_struct() {
        let mut generator = SchemaSettings::draft2020_12().into_generator();
        let own = CheckKeys::json_schema(&mut generator).to_value();
        let mut from_schema: Vec<&str> = own["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = crate::raw::CHECK_KEYS.to_vec();
        from_schema.sort();
        listed.sort();
        assert_eq!(from_schema, listed);
    }

    #[test]
    fn the_schema_combines_check_and_probe_keys_by_type() {
        let s = schema();
        let check = &s["$defs"]["Check"];
        let variants = check["oneOf"].as_array().unwrap();
        assert_eq!(variants.len(), vitalis_probes::KINDS.len());
        let tcp = variants.iter().find(|v| v["title"] == "tcp").unwrap();
        assert_eq!(tcp["properties"]["type"]["const"], "tcp");
        assert!(tcp["properties"]["address"].is_object());
        assert!(tcp["properties"]["interval"].is_object());
        assert_eq!(tcp["additionalProperties"], false);
        let required: Vec<&str> = tcp["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(required.contains(&"address") && required.contains(&"name"));
        assert!(s["$defs"].get("TcpConfig").is_none());
        // No null anywhere: optional keys are left out.
        assert!(!s.to_string().contains("null"));
        // Sections are closed objects too.
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["$defs"]["Server"]["additionalProperties"], false);
    }

    #[test]
    fn probe_keys_come_from_the_probe_schema() {
        let tcp = vitalis_probes::kind("tcp").unwrap();
        let keys = probe_keys(tcp).unwrap();
        assert!(keys.iter().any(|k| k == "address"));
        assert!(keys.iter().any(|k| k == "max_latency"));
    }
}
