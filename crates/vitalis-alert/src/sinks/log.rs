//! The `log` sink: one line per notification on Vitalis' own log, target
//! `vitalis::alert` — `warn` for firing and updates, `info` for resolutions.
//!
//! ```text
//! WARN vitalis::alert: alert firing: Trading database (trading-db) is failing: open: … ; impacts backups, feature-pipeline
//!   sink=log state=firing severity=critical subject=component/trading-db status=fail
//!   root_cause="trading-db" impacts="backups,feature-pipeline" dedup_key="component:trading-db:1717171717171:firing"
//! ```

use std::sync::Arc;

use tokio::sync::mpsc;
use vitalis_config::AlertSink;

use super::{Outcome, SinkCounters};
use crate::model::{Notification, State};

/// Writes one line for `n`.
pub fn write(sink: &str, n: &Notification) {
    let a = &n.alert;
    let root_cause = a.root_causes.join(",");
    let impacts = a.impacts.join(",");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "vitalis::alert",
                sink = %sink,
                state = %n.state.as_str(),
                severity = %a.severity,
                subject = %a.subject,
                status = %a.status,
                root_cause = %root_cause,
                impacts = %impacts,
                dedup_key = %n.dedup_key,
                "alert {}: {}",
                n.state.as_str(),
                a.summary
            )
        };
    }
    match n.state {
        State::Firing | State::Update | State::Flapping => line!(warn),
        State::Resolved | State::Settled => line!(info),
    }
}

pub(crate) async fn run(
    spec: AlertSink,
    mut rx: mpsc::Receiver<Arc<Notification>>,
    counters: Arc<SinkCounters>,
) {
    while let Some(n) = rx.recv().await {
        write(&spec.name, &n);
        counters.add(n.alert.severity, Outcome::Delivered);
    }
}
