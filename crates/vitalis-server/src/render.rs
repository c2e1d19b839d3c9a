//! Snapshot → response bodies: the IETF health+json document, components,
//! groups, and the Kubernetes-style verbose text. Pure functions of a
//! snapshot (and, for `?exclude=`, a re-aggregated view).

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use vitalis_core::{Aggregate, CheckState, Snapshot, Status, View};

/// What a status request selected.
pub(crate) struct Selection<'a> {
    pub(crate) snap: &'a Snapshot,
    pub(crate) view: View,
    /// The verdict (precomputed, or re-aggregated for `?exclude=`).
    pub(crate) agg: &'a Aggregate,
    /// Excluded components, by index.
    pub(crate) excluded: &'a [usize],
    /// Checks re-run by a refresh that did not finish by its deadline.
    pub(crate) running: &'a HashSet<usize>,
}

impl Selection<'_> {
    /// Checks counted in this selection, by index.
    fn counted(&self) -> impl Iterator<Item = usize> + '_ {
        let topo = &self.snap.topology;
        (0..topo.checks.len()).filter(move |&k| {
            let info = &topo.checks[k];
            !self.excluded.contains(&info.component)
                && self.snap.checks[k].counted(self.view, info.level).is_some()
        })
    }

    /// Whether any counted check reads `unknown` (readiness is not green then).
    pub(crate) fn any_unknown(&self) -> bool {
        self.counted()
            .any(|k| self.snap.checks[k].status == Status::Unknown)
    }
}

/// The IETF `status` word: `unknown` is written as `warn`.
fn ietf_status(s: Status) -> &'static str {
    match s {
        Status::Unknown => "warn",
        s => s.as_str(),
    }
}

/// The IETF `componentType` of a probe type.
fn component_type(kind: &str) -> &'static str {
    match kind {
        "postgres" | "redis" | "sqlite" => "datastore",
        "vitalis" => "system",
        _ => "component",
    }
}

fn millis_f64(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The reason a check is not passing, for text and root causes.
fn reason(c: &CheckState) -> String {
    if c.stale {
        return "no result within stale_after (the check is not completing on schedule)"
            .to_string();
    }
    match &c.result {
        None => "not run yet".to_string(),
        Some(r) => r.error.clone().unwrap_or_else(|| r.output.clone()),
    }
}

/// `root_causes`: `[{component, status, error, impacts}]`.
pub(crate) fn root_causes(sel: &Selection<'_>) -> Value {
    let topo = &sel.snap.topology;
    let items: Vec<Value> = sel
        .agg
        .root_causes
        .iter()
        .map(|&r| {
            let node = &topo.components[r];
            let error = node
                .checks
                .clone()
                .filter(|&k| sel.snap.checks[k].counted(sel.view, topo.checks[k].level).is_some())
                .find(|&k| sel.snap.checks[k].status != Status::Pass)
                .map(|k| format!("{}: {}", topo.checks[k].name, reason(&sel.snap.checks[k])));
            let impacts: Vec<&str> = sel.agg.impacts(r).map(|i| &*topo.components[i].info.id).collect();
            json!({"component": &*node.info.id, "status": "fail", "error": error, "impacts": impacts})
        })
        .collect();
    Value::Array(items)
}

/// The `application/health+json` body. Without details: the status only.
pub(crate) fn health(sel: &Selection<'_>, details: bool) -> Value {
    let status = sel.agg.system;
    let mut doc = Map::new();
    doc.insert("status".into(), ietf_status(status).into());
    if status == Status::Unknown {
        doc.insert("vitalis:status".into(), "unknown".into());
    }
    if !details {
        return Value::Object(doc);
    }
    let topo = &sel.snap.topology;
    let mut checks = Map::new();
    for k in sel.counted() {
        let info = &topo.checks[k];
        let comp = &topo.components[info.component].info;
        let c = &sel.snap.checks[k];
        let mut item = Map::new();
        item.insert("componentId".into(), (&*comp.id).into());
        item.insert("componentType".into(), component_type(&info.kind).into());
        item.insert("status".into(), ietf_status(c.status).into());
        if c.status == Status::Unknown {
            item.insert("vitalis:status".into(), "unknown".into());
        }
        if let Some(r) = &c.result {
            if let Some(v) = r.observed_value {
                item.insert("observedValue".into(), json!(v));
            }
            if let Some(u) = &r.observed_unit {
                item.insert("observedUnit".into(), u.as_str().into());
            }
            item.insert("time".into(), r.time.to_string().into());
            item.insert("output".into(), reason_or_output(c).into());
        } else {
            item.insert("output".into(), "not run yet".into());
        }
        if c.stale || sel.running.contains(&k) {
            item.insert("vitalis:stale".into(), true.into());
        }
        checks.insert(
            format!("{}:{}", comp.id, info.name),
            Value::Array(vec![Value::Object(item)]),
        );
    }
    doc.insert("checks".into(), Value::Object(checks));
    doc.insert("root_causes".into(), root_causes(sel));
    doc.insert("vitalis:epoch".into(), sel.snap.epoch.to_string().into());
    doc.insert("vitalis:seq".into(), sel.snap.seq.into());
    Value::Object(doc)
}

fn reason_or_output(c: &CheckState) -> String {
    match (&c.result, c.status) {
        (Some(r), Status::Pass) => r.output.clone(),
        _ => reason(c),
    }
}

/// Kubernetes-style text: one line per check with details, else one line.
pub(crate) fn verbose(sel: &Selection<'_>, details: bool, http_ok: bool) -> String {
    let mut out = String::new();
    if details {
        let topo = &sel.snap.topology;
        for k in sel.counted() {
            let info = &topo.checks[k];
            let comp = &topo.components[info.component].info;
            let c = &sel.snap.checks[k];
            let _ = match c.status {
                Status::Pass => writeln!(out, "[+]{}:{} ok", comp.id, info.name),
                Status::Warn => writeln!(
                    out,
                    "[+]{}:{} warn: {}",
                    comp.id,
                    info.name,
                    one_line(&reason(c))
                ),
                Status::Fail => writeln!(
                    out,
                    "[-]{}:{} failed: {}",
                    comp.id,
                    info.name,
                    one_line(&reason(c))
                ),
                Status::Unknown => writeln!(
                    out,
                    "[-]{}:{} unknown: {}",
                    comp.id,
                    info.name,
                    one_line(&reason(c))
                ),
            };
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if http_ok {
            "[+]system ok"
        } else {
            "[-]system failed"
        }
    );
    out
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// One check in Vitalis' own snake_case JSON.
fn check_json(snap: &Snapshot, k: usize, running: &HashSet<usize>) -> Value {
    let info = &snap.topology.checks[k];
    let c = &snap.checks[k];
    let r = c.result.as_deref();
    json!({
        "name": &*info.name,
        "level": info.level.as_str(),
        "impact": info.impact.as_str(),
        "type": &*info.kind,
        "status": c.status.as_str(),
        "active": c.active,
        "observed_value": r.and_then(|r| r.observed_value),
        "observed_unit": r.and_then(|r| r.observed_unit.as_deref()),
        "duration_ms": r.map(|r| millis_f64(r.duration)),
        "time": r.map(|r| r.time.to_string()),
        "output": r.map(|r| r.output.as_str()),
        "error": if c.stale { Some(reason(c)) } else { r.and_then(|r| r.error.clone()) },
        "perfdata": r.filter(|r| !r.perfdata.is_empty()).map(|r| &r.perfdata),
        "circuit": c.circuit.as_str(),
        "next_run": c.next_run.map(|t| t.to_string()),
        "stale": c.stale || running.contains(&k),
        "consecutive_failures": c.consecutive_failures,
        "in_flight": c.in_flight,
        "since": c.since.to_string(),
    })
}

/// One component with its checks.
pub(crate) fn component(snap: &Snapshot, ci: usize, running: &HashSet<usize>) -> Value {
    let topo = &snap.topology;
    let node = &topo.components[ci];
    let info = &node.info;
    let agg = snap.view(View::All);
    let since = &snap.components[ci];
    json!({
        "id": &*info.id,
        "name": info.name,
        "group": info.group.as_deref(),
        "critical": info.critical,
        "status": since.status.unwrap_or(Status::Pass).as_str(),
        "active": since.status.is_some(),
        "since": since.since.to_string(),
        "depends_on": info.depends_on,
        "impacted_by": agg.impacted_by[ci].iter().map(|&r| &*topo.components[r].info.id).collect::<Vec<_>>(),
        "root_cause": agg.root_causes.contains(&ci),
        "labels": info.labels,
        "owner": info.owner,
        "runbook_url": info.runbook_url,
        "source": info.source.as_str(),
        "checks": node.checks.clone().map(|k| check_json(snap, k, running)).collect::<Vec<_>>(),
    })
}

/// One group with its members.
pub(crate) fn group(snap: &Snapshot, gi: usize) -> Value {
    let topo = &snap.topology;
    let g = &topo.groups[gi];
    json!({
        "id": &*g.id,
        "status": snap.groups[gi].status.unwrap_or(Status::Pass).as_str(),
        "since": snap.groups[gi].since.to_string(),
        "critical": g.critical,
        "min_passing": g.min_passing,
        "members": g.members.iter().map(|&m| json!({
            "id": &*topo.components[m].info.id,
            "status": snap.components[m].status.unwrap_or(Status::Pass).as_str(),
        })).collect::<Vec<_>>(),
    })
}
