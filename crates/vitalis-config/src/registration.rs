//! Run-time registration: one component in the config file's schema, as JSON.

use vitalis_core::{Component, Defaults, Source, Topology};

use crate::compile::{Cx, Mode, Ptr};
use crate::config::RegistrationConfig;
use crate::error::{ConfigError, ErrorKind};
use crate::node::{Entry, Node, Sources, Val, from_json};
use crate::raw::RawComponent;

/// Options for [`component_from_json`].
///
/// Variables (`${VAR}`) are never expanded in JSON: a registering client
/// must not be able to read the daemon's environment.
#[derive(Debug, Clone)]
pub struct JsonOptions {
    /// The defaults the checks will run with (for their timeout at build time).
    pub defaults: Defaults,
    /// `Registered` for the API, `Discovered` for discovery sources.
    pub source: Source,
    /// The store heartbeat checks read (share it with the push endpoint).
    pub heartbeats: vitalis_probes::Heartbeats,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            defaults: Defaults::default(),
            source: Source::Registered,
            heartbeats: vitalis_probes::Heartbeats::default(),
        }
    }
}

/// Builds a component from its JSON declaration (`PUT /v1/components/{id}`).
///
/// The body uses the config file's component schema: `{"id": "late",
/// "group": "core", "check": [{"name": "tcp", "type": "tcp", "address":
/// "…"}]}`. `id` may be left out; when present it must equal
/// `id_from_path`. `command` checks are always refused; other types must be
/// in `registration.allowed_types`, and when `registration.allowed_hosts` is
/// set every check's target host must be in it. Dependencies are not
/// resolved here: the engine checks them against the running registry.
///
/// Errors carry the field path (`check[0].address`) but no file or line.
///
/// ```
/// use vitalis_config::{component_from_json, JsonOptions, RegistrationConfig};
/// let body = serde_json::json!({
///     "group": "core",
///     "check": [{ "name": "port", "type": "tcp", "address": "127.0.0.1:5432" }]
/// });
/// let c = component_from_json(&body, "late", &RegistrationConfig::default(), &JsonOptions::default())?;
/// assert_eq!(c.id, "late");
/// assert_eq!(c.source, vitalis_core::Source::Registered);
///
/// let bad = serde_json::json!({ "check": [{ "name": "x", "type": "tcp", "adress": "h:1" }] });
/// let e = component_from_json(&bad, "late", &RegistrationConfig::default(), &JsonOptions::default())
///     .unwrap_err();
/// assert_eq!(e.path(), "check[0].adress");
/// # Ok::<(), vitalis_config::ConfigError>(())
/// ```
pub fn component_from_json(
    value: &serde_json::Value,
    id_from_path: &str,
    registration: &RegistrationConfig,
    opts: &JsonOptions,
) -> Result<Component, ConfigError> {
    let mut node = from_json(value, "", 0)?;
    let Val::Table(entries) = &mut node.val else {
        return Err(ConfigError::new(
            ErrorKind::Syntax,
            "",
            "expected a JSON object with the component's keys (id, group, check, …)",
        ));
    };
    match entries.iter().find(|e| e.key == "id") {
        Some(e) => {
            if e.node.str() != Some(id_from_path) {
                return Err(ConfigError::new(
                    ErrorKind::InvalidValue,
                    "id",
                    format!("the body's id does not match the id in the URL, '{id_from_path}'"),
                ));
            }
        }
        None => entries.insert(
            0,
            Entry {
                key: "id".into(),
                key_loc: None,
                node: Node {
                    val: Val::Str(id_from_path.to_string()),
                    loc: None,
                    ord: 0,
                },
            },
        ),
    }
    let sources = Sources::default();
    let cx = Cx {
        sources: &sources,
        heartbeats: &opts.heartbeats,
    };
    let raw: RawComponent = cx.de(&node, "")?;
    let at = Ptr::root(&node);
    let component = cx.component(
        raw,
        &at,
        &opts.defaults,
        Mode::Registered(registration),
        opts.source,
    )?;
    // Ids, check names and duplicates; dependencies are the engine's business.
    let mut alone = component.clone();
    alone.depends_on.clear();
    if let Err(e) = Topology::build(&[], std::slice::from_ref(&alone)) {
        return Err(cx.registry_error(e, &[], &[], std::slice::from_ref(&alone), &[at]));
    }
    Ok(component)
}
