//! The `webhook` sink: each notification is POSTed to `url` as JSON
//! (the body is documented in `docs/alerting.md`), with the sink's
//! `headers` and an `Idempotency-Key` header equal to `dedup_key`. A failed
//! delivery is retried with backoff; notifications are delivered in order.

use serde_json::{Value, json};

use super::DeliveryOptions;
use crate::model::Notification;

/// The JSON body of one notification.
///
/// `{"version": 1, "state", "dedup_key", "resolution", "flap_percent", "url", "alert": {…}}`.
pub fn body(n: &Notification, opts: &DeliveryOptions) -> Value {
    json!({
        "version": 1,
        "state": n.state,
        "dedup_key": n.dedup_key,
        "resolution": n.resolution,
        "flap_percent": n.flap_percent,
        "url": opts.link(n),
        "alert": n.alert,
    })
}
