//! `vitalis`: the daemon and CLI. Glue only: the libraries do the work.

mod alerts;
mod check;
mod daemon;
mod demo;
mod history;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Vitalis — one trustworthy view of the health of every component.
#[derive(Debug, Parser)]
#[command(name = "vitalis", version, about, long_about = None)]
struct Cli {
    /// Log level filter (also RUST_LOG), e.g. `info`, `debug`, `vitalis=debug`.
    #[arg(long, global = true, default_value = "info", env = "VITALIS_LOG")]
    log: String,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: checks on their schedules, the HTTP API.
    ///
    /// Example: `vitalis serve --config /etc/vitalis/vitalis.toml`
    ///
    /// SIGHUP (or `POST /v1/reload`) re-reads the config; a bad file keeps the
    /// running one. SIGTERM turns /readyz 503, lets in-flight requests finish,
    /// then exits.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Time between /readyz turning 503 and the listener closing on SIGTERM.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        drain: std::time::Duration,
    },
    /// Run the demo: a simulated trading platform watched by Vitalis with the four packs.
    ///
    /// Example: `vitalis demo --fault trading-db:down`
    ///
    /// Starts a risk engine, a KServe v2 model server, a feature pipeline, an
    /// exchange (REST + a primary and a failover WebSocket feed), a trading
    /// app, a trading database (SQLite in the data dir) and its backup job,
    /// all on loopback, then Vitalis with packs/{risk,ml,exchange,data}.toml,
    /// and prints the URLs. Break a component with `--fault` or the fault API
    /// (`POST /faults/{component}/{mode}`, `DELETE /faults/{component}`) and
    /// watch the root cause. Ctrl-C stops it.
    ///
    /// Fault modes, by component:
    ///   risk-engine: down, slow, erroring, stale, limits-off, stop-loss-off, breakers-stuck
    ///   model-server: down, slow, erroring, model-unloaded, drift-stalled, accuracy-degraded
    ///   feature-pipeline: stale
    ///   exchange-api: down, slow, erroring, rate-limited
    ///   market-data: down, feed-silent, failover-down
    ///   market-data-failover: down, feed-silent
    ///   trading-db: down, slow (PostgreSQL only), stale
    ///   backups: down, erroring
    #[command(verbatim_doc_comment)]
    Demo {
        /// Address of the Vitalis API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Inject a fault at start, `<component>:<mode>` (repeatable).
        #[arg(long = "fault", value_parser = demo::parse_fault)]
        faults: Vec<(String, vitalis_sim::Mode)>,
        /// Where the demo keeps its config, packs, databases and backups
        /// (default: vitalis-demo in the system temp dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Use this PostgreSQL database (`postgres://user:pass@host:port/db`)
        /// as the trading database, with packs/data.toml, instead of SQLite.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Run every check once, print the results, exit with the system status.
    ///
    /// Example: `vitalis check --config vitalis.toml --format json`
    ///
    /// Exit codes: 0 pass, 1 warn or unknown, 2 fail, 3 unusable config or
    /// other error. Heartbeat checks and checks outside their active windows
    /// are reported as skipped. For cron jobs and CI pipelines.
    Check {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = check::Format::Text)]
        format: check::Format,
    },
    /// Check a config file: exit 0, or 3 with the file, line and field at fault.
    ///
    /// Example: `vitalis validate --config vitalis.toml`
    Validate {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file.
    ///
    /// Example: `vitalis schema > vitalis.schema.json`
    Schema,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    vitalis_core::duration::parse(s)
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match cli.command {
        Command::Serve { config, drain } => runtime()
            .and_then(|rt| rt.block_on(daemon::serve(config, drain)))
            .map(|()| 0),
        Command::Demo {
            listen,
            faults,
            data_dir,
            postgres,
        } => runtime()
            .and_then(|rt| {
                rt.block_on(demo::run(demo::DemoArgs {
                    listen,
                    faults,
                    data_dir,
                    postgres,
                }))
            })
            .map(|()| 0),
        Command::Check { config, format } => {
            runtime().and_then(|rt| rt.block_on(check::run(config, format)))
        }
        Command::Validate { config } => validate(&config),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&vitalis_config::schema()).expect("schema serializes")
            );
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vitalis: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vitalis-io")
        .enable_all()
        .build()?)
}

fn validate(config: &std::path::Path) -> anyhow::Result<u8> {
    let cfg = vitalis_config::load(config, &vitalis_config::LoadOptions::new())?;
    let checks: usize = cfg
        .components
        .iter()
        .map(|c| c.component.checks.len())
        .sum();
    println!(
        "{}: ok ({} components, {} checks, {} groups, {} files)",
        config.display(),
        cfg.components.len(),
        checks,
        cfg.groups.len(),
        cfg.files.len()
    );
    Ok(0)
}
