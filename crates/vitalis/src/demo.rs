//! `vitalis demo`: the simulated trading platform (`vitalis-sim`) watched by
//! Vitalis with the four domain packs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use vitalis_config::LoadOptions;
use vitalis_sim::{Mode, SimOptions, Simulator};

/// The packs, embedded so that the binary alone runs the demo.
const PACKS: &[(&str, &str)] = &[
    ("risk.toml", include_str!("../../../packs/risk.toml")),
    ("ml.toml", include_str!("../../../packs/ml.toml")),
    (
        "exchange.toml",
        include_str!("../../../packs/exchange.toml"),
    ),
];
const DATA_POSTGRES: &str = include_str!("../../../packs/data.toml");
const DATA_SQLITE: &str = include_str!("../../../packs/sqlite/data.toml");

/// What `vitalis demo` was asked for.
#[derive(Debug)]
pub(crate) struct DemoArgs {
    pub(crate) listen: SocketAddr,
    pub(crate) faults: Vec<(String, Mode)>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) postgres: Option<String>,
}

/// The demo's main config: short intervals so a fault shows within seconds.
fn main_config(listen: SocketAddr, data_dir: &Path) -> String {
    format!(
        r#"# Written by `vitalis demo`; the packs are in ./packs.
include = ["packs/*.toml"]

[server]
listen = "{listen}"
details = "always"

[defaults]
interval = "1s"
deep_interval = "2s"
timeout = "1s"

[breaker]
failures = 5
open_for = "2s"
max_open_for = "5s"

[history]
url = "sqlite://{db}"

[[alert.sink]]
name = "log"
type = "log"

[alert]
default_sinks = ["log"]
# A degradation must hold this long before it alerts (rides out blips).
for = "2s"
"#,
        db = data_dir.join("vitalis.db").display()
    )
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("vitalis-demo"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let packs = dir.join("packs");
    std::fs::create_dir_all(&packs)
        .with_context(|| format!("cannot create the data dir {}", packs.display()))?;
    let mut opts = SimOptions::new(dir.join("platform"));
    if let Some(url) = &args.postgres {
        opts = opts.postgres(url.clone());
    }
    let sim = Simulator::start(opts)
        .await
        .context("cannot start the simulated platform")?;
    for (c, m) in &args.faults {
        sim.fault(c, *m).map_err(anyhow::Error::msg)?;
    }
    let data = if sim.uses_postgres() {
        DATA_POSTGRES
    } else {
        DATA_SQLITE
    };
    for (name, text) in PACKS.iter().copied().chain([("data.toml", data)]) {
        std::fs::write(packs.join(name), text)
            .with_context(|| format!("cannot write {}", packs.join(name).display()))?;
    }
    let config = dir.join("vitalis.toml");
    std::fs::write(&config, main_config(args.listen, &dir))
        .with_context(|| format!("cannot write {}", config.display()))?;
    let mut load = LoadOptions::without_env();
    for (k, v) in sim.pack_vars() {
        load = load.var(k, v);
    }
    let fault_url = sim.fault_url();
    let faults = args.faults.clone();
    crate::daemon::run_server(config.clone(), load, Duration::from_millis(200), move |addr| {
        println!("health:     http://{addr}/health");
        println!("components: http://{addr}/health/components");
        println!("groups:     http://{addr}/health/groups");
        println!("verbose:    http://{addr}/health?verbose");
        println!("history:    http://{addr}/health/history?component=trading-db");
        println!("uptime:     http://{addr}/health/uptime?window=1h");
        println!("fault API:  {fault_url}/faults");
        println!("alerts:     on stderr, log target vitalis::alert (root causes only, with what they impact)");
        println!(
            "try:        curl -X POST {fault_url}/faults/trading-db/down   (repair: curl -X DELETE {fault_url}/faults/trading-db)"
        );
        println!("config:     {}", config.display());
        for (c, m) in &faults {
            println!("fault:      {c}:{m} (injected at start)");
        }
        println!("Ctrl-C stops the demo.");
    })
    .await?;
    drop(sim);
    Ok(())
}

/// `--fault component:mode`.
pub(crate) fn parse_fault(s: &str) -> Result<(String, Mode), String> {
    vitalis_sim::parse_fault(s)
}
