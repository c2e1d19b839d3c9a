//! Routing: which sinks an alert goes to.
//!
//! Routes are evaluated in order; the first that matches wins unless it
//! says `continue = true`, in which case later routes are evaluated too and
//! every matching route's sinks receive the alert. An alert that matches no
//! route goes to `alert.default_sinks`. A route matches on the alert's
//! group, component, severity and labels (every given field must match;
//! the system's alert has no group, component or labels, so only routes
//! without those keys match it).

use vitalis_config::AlertConfig;

use crate::model::Alert;

/// The sink names `alert` goes to under `config`, each once, in route
/// order. Empty only when the config declares no sinks at all.
pub fn route(config: &AlertConfig, alert: &Alert) -> Vec<String> {
    let mut sinks: Vec<String> = Vec::new();
    let mut matched = false;
    for r in &config.routes {
        if !r.matcher.matches(
            alert.group.as_deref(),
            alert.component.as_deref(),
            alert.severity.to_config(),
            &alert.labels,
        ) {
            continue;
        }
        matched = true;
        for s in &r.sinks {
            if !sinks.contains(s) {
                sinks.push(s.clone());
            }
        }
        if !r.continue_matching {
            break;
        }
    }
    if !matched {
        for s in &config.default_sinks {
            if !sinks.contains(s) {
                sinks.push(s.clone());
            }
        }
    }
    sinks
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use vitalis_config::{AlertRoute, RouteMatch};
    use vitalis_core::Status;

    use super::*;
    use crate::model::{Severity, Subject};

    fn alert(group: Option<&str>, component: Option<&str>, severity: Severity) -> Alert {
        Alert {
            id: "x".into(),
            subject: component.map_or(Subject::System, |c| Subject::Component(c.into())),
            name: "x".into(),
            group: group.map(str::to_string),
            component: component.map(str::to_string),
            status: Status::Fail,
            severity,
            summary: String::new(),
            root_causes: vec![],
            impacts: vec![],
            checks: vec![],
            labels: BTreeMap::from([("tier".to_string(), "core".to_string())]),
            owner: None,
            runbook_url: None,
            started_at: Timestamp::UNIX_EPOCH,
            ended_at: None,
        }
    }

    fn r(m: RouteMatch, sinks: &[&str], cont: bool) -> AlertRoute {
        AlertRoute {
            matcher: m,
            sinks: sinks.iter().map(|s| s.to_string()).collect(),
            continue_matching: cont,
        }
    }

    fn config(routes: Vec<AlertRoute>) -> AlertConfig {
        AlertConfig {
            routes,
            default_sinks: vec!["default".into()],
            ..AlertConfig::default()
        }
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let risk = RouteMatch {
            group: Some("risk".into()),
            ..RouteMatch::default()
        };
        let critical = RouteMatch {
            severity: Some(vitalis_config::Severity::Critical),
            ..RouteMatch::default()
        };
        let cfg = config(vec![
            r(risk.clone(), &["risk-team"], false),
            r(critical.clone(), &["pager"], false),
        ]);
        let a = alert(Some("risk"), Some("risk-engine"), Severity::Critical);
        assert_eq!(route(&cfg, &a), ["risk-team"]);
        let cfg = config(vec![
            r(risk, &["risk-team"], true),
            r(critical, &["pager", "risk-team"], false),
        ]);
        assert_eq!(route(&cfg, &a), ["risk-team", "pager"]);
        // Severity must match too.
        let w = alert(Some("data"), Some("db"), Severity::Warning);
        assert_eq!(route(&cfg, &w), ["default"]);
    }

    #[test]
    fn labels_and_components_match_and_the_rest_goes_to_default() {
        let core = RouteMatch {
            labels: BTreeMap::from([("tier".to_string(), "core".to_string())]),
            ..RouteMatch::default()
        };
        let db = RouteMatch {
            component: Some("db".into()),
            ..RouteMatch::default()
        };
        let cfg = config(vec![r(db, &["dba"], false), r(core, &["core"], false)]);
        assert_eq!(
            route(&cfg, &alert(None, Some("db"), Severity::Warning)),
            ["dba"]
        );
        assert_eq!(
            route(&cfg, &alert(None, Some("api"), Severity::Warning)),
            ["core"]
        );
        // The system's alert has no labels, group or component.
        let mut sys = alert(None, None, Severity::Critical);
        sys.labels.clear();
        assert_eq!(route(&cfg, &sys), ["default"]);
        // No config at all: nowhere (the caller reports it).
        assert!(route(&AlertConfig::default(), &sys).is_empty());
    }
}
