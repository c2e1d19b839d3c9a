//! Fault injection: which component is broken, and how.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use tokio::sync::watch;

/// How a component is broken. Written in kebab-case (`limits-off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// The service stops listening (connections are refused).
    Down,
    /// The service answers, slowly (1.5 s per request).
    Slow,
    /// The service answers `500` with an error body.
    Erroring,
    /// The service answers, but its data stops moving (positions, features, fills, backups).
    Stale,
    /// Risk engine: the pre-trade limit check lets an over-limit canary through.
    LimitsOff,
    /// Risk engine: a position past its stop produces no stop order.
    StopLossOff,
    /// Risk engine: the circuit-breaker trip test does not trip.
    BreakersStuck,
    /// Model server: the model is unloaded (not ready, inference refused).
    ModelUnloaded,
    /// Model server: the drift detector stops running.
    DriftStalled,
    /// Model server: the accuracy monitor measures a low accuracy.
    AccuracyDegraded,
    /// Market-data feed: connections stay open but no tick arrives.
    FeedSilent,
    /// Exchange REST: every request is refused with `429` and the weight is at its limit.
    RateLimited,
    /// Market-data failover feed: down (same as `down` on `market-data-failover`).
    FailoverDown,
}

/// Every mode, in the order `--help` lists them.
pub const MODES: &[Mode] = &[
    Mode::Down,
    Mode::Slow,
    Mode::Erroring,
    Mode::Stale,
    Mode::LimitsOff,
    Mode::StopLossOff,
    Mode::BreakersStuck,
    Mode::ModelUnloaded,
    Mode::DriftStalled,
    Mode::AccuracyDegraded,
    Mode::FeedSilent,
    Mode::RateLimited,
    Mode::FailoverDown,
];

impl Mode {
    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Down => "down",
            Mode::Slow => "slow",
            Mode::Erroring => "erroring",
            Mode::Stale => "stale",
            Mode::LimitsOff => "limits-off",
            Mode::StopLossOff => "stop-loss-off",
            Mode::BreakersStuck => "breakers-stuck",
            Mode::ModelUnloaded => "model-unloaded",
            Mode::DriftStalled => "drift-stalled",
            Mode::AccuracyDegraded => "accuracy-degraded",
            Mode::FeedSilent => "feed-silent",
            Mode::RateLimited => "rate-limited",
            Mode::FailoverDown => "failover-down",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MODES
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown fault mode '{s}' (known: {})",
                    MODES
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// The components faults can be injected into (their ids in the packs), with
/// the modes each supports.
pub const COMPONENTS: &[(&str, &[Mode])] = &[
    (
        "risk-engine",
        &[
            Mode::Down,
            Mode::Slow,
            Mode::Erroring,
            Mode::Stale,
            Mode::LimitsOff,
            Mode::StopLossOff,
            Mode::BreakersStuck,
        ],
    ),
    (
        "model-server",
        &[
            Mode::Down,
            Mode::Slow,
            Mode::Erroring,
            Mode::ModelUnloaded,
            Mode::DriftStalled,
            Mode::AccuracyDegraded,
        ],
    ),
    ("feature-pipeline", &[Mode::Stale]),
    (
        "exchange-api",
        &[Mode::Down, Mode::Slow, Mode::Erroring, Mode::RateLimited],
    ),
    (
        "market-data",
        &[Mode::Down, Mode::FeedSilent, Mode::FailoverDown],
    ),
    ("market-data-failover", &[Mode::Down, Mode::FeedSilent]),
    ("trading-db", &[Mode::Down, Mode::Slow, Mode::Stale]),
    ("backups", &[Mode::Down, Mode::Erroring]),
];

/// `component:mode` lines for help texts.
pub fn catalogue() -> String {
    COMPONENTS
        .iter()
        .map(|(c, modes)| {
            format!(
                "{c}: {}",
                modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `component:mode`, checking the component supports the mode.
pub fn parse_fault(s: &str) -> Result<(String, Mode), String> {
    let (c, m) = s
        .split_once(':')
        .ok_or_else(|| format!("fault '{s}' is not <component>:<mode>"))?;
    let mode: Mode = m.parse()?;
    check(c, mode)?;
    Ok((c.to_string(), mode))
}

pub(crate) fn check(component: &str, mode: Mode) -> Result<(), String> {
    let Some((_, modes)) = COMPONENTS.iter().find(|(c, _)| *c == component) else {
        return Err(format!(
            "unknown component '{component}' (known: {})",
            COMPONENTS
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !modes.contains(&mode) {
        return Err(format!(
            "component '{component}' has no fault mode '{mode}' (its modes: {})",
            modes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// The current faults, shared by every simulated service.
#[derive(Debug, Clone)]
pub(crate) struct Faults {
    tx: watch::Sender<BTreeMap<String, Mode>>,
}

impl Faults {
    pub(crate) fn new() -> Self {
        Faults {
            tx: watch::Sender::new(BTreeMap::new()),
        }
    }

    pub(crate) fn get(&self, component: &str) -> Option<Mode> {
        self.tx.borrow().get(component).copied()
    }

    pub(crate) fn is(&self, component: &str, mode: Mode) -> bool {
        self.get(component) == Some(mode)
    }

    pub(crate) fn set(&self, component: &str, mode: Mode) {
        self.tx.send_modify(|m| {
            m.insert(component.to_string(), mode);
        });
    }

    pub(crate) fn clear(&self, component: &str) -> bool {
        let mut had = false;
        self.tx.send_modify(|m| had = m.remove(component).is_some());
        had
    }

    pub(crate) fn all(&self) -> BTreeMap<String, Mode> {
        self.tx.borrow().clone()
    }

    /// Waits until `f` holds for the component's fault.
    pub(crate) async fn wait_for(&self, component: &str, f: impl Fn(Option<Mode>) -> bool) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|m| f(m.get(component).copied())).await;
    }
}
