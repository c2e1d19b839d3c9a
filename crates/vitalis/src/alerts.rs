//! Alerting in the daemon: `vitalis_alert::Alerting` over the engine, fed
//! by the config's `[alert]` section and swapped on reload.

use std::net::SocketAddr;

use vitalis_alert::{Alerting, DeliveryOptions};
use vitalis_config::Config;
use vitalis_core::Engine;

/// Starts alerting for `cfg` on the current runtime.
pub(crate) fn start(engine: &Engine, cfg: &Config) -> Alerting {
    let delivery = DeliveryOptions {
        external_url: external_url(cfg.server.listen),
        ..DeliveryOptions::default()
    };
    log_setup(cfg);
    Alerting::builder(engine.clone())
        .config(&cfg.alert)
        .delivery(delivery)
        .start()
}

/// Applies a reloaded `[alert]` section; alert state is kept.
pub(crate) fn reload(alerting: &Alerting, cfg: &Config) {
    alerting.reload(&cfg.alert);
    log_setup(cfg);
}

fn log_setup(cfg: &Config) {
    let a = &cfg.alert;
    if a.sinks.is_empty() {
        tracing::info!(
            target: "vitalis::alert",
            "no [[alert.sink]] configured: alerts are written to this log as undeliverable (sink \"none\")"
        );
    } else {
        let sinks: Vec<String> = a
            .sinks
            .iter()
            .map(|s| format!("{}({})", s.name, s.kind.as_str()))
            .collect();
        tracing::info!(
            target: "vitalis::alert",
            sinks = %sinks.join(", "),
            routes = a.routes.len(),
            default_sinks = %a.default_sinks.join(", "),
            "alerting active"
        );
    }
}

/// Vitalis' own URL for links in alerts, when the listen address names one.
fn external_url(listen: SocketAddr) -> Option<String> {
    (listen.port() != 0 && !listen.ip().is_unspecified()).then(|| format!("http://{listen}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_only_for_a_concrete_address() {
        let url = |s: &str| external_url(s.parse().unwrap());
        assert_eq!(
            url("127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(url("127.0.0.1:0"), None);
        assert_eq!(url("0.0.0.0:8080"), None);
    }
}
