//! Loader tests: a table of bad configs (each asserting file, line and
//! field), include composition, variables, defaults, secrets, reload
//! fingerprints and run-time registration.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vitalis_core::{Impact, Level, Source};

use crate::*;

fn opts() -> LoadOptions {
    LoadOptions::without_env()
        .var("VITALIS_TOKEN", "s3cret-token-value")
        .var("PG_PASSWORD", "pg-pass-123")
}

/// A component `db` with one tcp check; `extra` goes into the check table.
fn db(extra: &str) -> String {
    format!(
        "[[component]]\nid = \"db\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = \"127.0.0.1:5432\"\n{extra}\n"
    )
}

/// Writes `files` into a temp dir and loads the first.
fn load_files(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
    let r = load(&dir.path().join(files[0].0), &opts());
    (dir, r)
}

/// The 1-based line of the `#!` marker in `text`.
fn marker_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.contains("#!"))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no #! marker in:\n{text}"))
}

struct Case {
    name: &'static str,
    files: Vec<(&'static str, String)>,
    /// The file holding the `#!` marker that the error must point at.
    file: &'static str,
    path: &'static str,
    kind: ErrorKind,
    says: &'static str,
}

fn case(
    name: &'static str,
    text: String,
    path: &'static str,
    kind: ErrorKind,
    says: &'static str,
) -> Case {
    Case {
        name,
        files: vec![("vitalis.toml", text)],
        file: "vitalis.toml",
        path,
        kind,
        says,
    }
}

fn bad_configs() -> Vec<Case> {
    use ErrorKind::*;
    vec![
        case(
            "unknown top-level key",
            "servre = 1 #!\n".into(),
            "servre",
            UnknownKey,
            "did you mean `server`",
        ),
        case(
            "unknown key in server",
            "[server]\nlisten = \"127.0.0.1:8080\"\nlsiten = \"x\" #!\n".into(),
            "server.lsiten",
            UnknownKey,
            "did you mean `listen`",
        ),
        case(
            "unknown key in a token",
            "[[server.token]]\nname = \"ops\"\nvalue = \"x\"\nscopes = [\"read\"]\nscope = [\"admin\"] #!\n".into(),
            "server.token[0].scope",
            UnknownKey,
            "did you mean `scopes`",
        ),
        case(
            "unknown key in a component",
            format!("[[component]]\nid = \"db\"\nownr = \"data\" #!\n{}", &db("")[24..]),
            "component[0].ownr",
            UnknownKey,
            "did you mean `owner`",
        ),
        case(
            "unknown key in a check (neither check nor probe)",
            db("  intervall = \"5s\" #!"),
            "component[0].check[0].intervall",
            UnknownKey,
            "did you mean `interval`",
        ),
        case(
            "unknown key among a probe's keys",
            db("  adress = \"127.0.0.1:1\" #!"),
            "component[0].check[0].adress",
            UnknownKey,
            "neither a check key nor a key of the `tcp` probe",
        ),
        case(
            "unknown key in a check's breaker",
            db("  breaker = { failures = 3, opne_for = \"1s\" } #!"),
            "component[0].check[0].breaker.opne_for",
            UnknownKey,
            "did you mean `open_for`",
        ),
        case(
            "bad duration",
            db("  interval = \"5 parsecs\" #!"),
            "component[0].check[0].interval",
            InvalidValue,
            "is not a duration",
        ),
        case(
            "zero interval",
            db("  interval = \"0s\" #!"),
            "component[0].check[0].interval",
            InvalidValue,
            "greater than 0",
        ),
        case(
            "bad level",
            db("  level = \"deeep\" #!"),
            "component[0].check[0].level",
            InvalidValue,
            "did you mean `deep`",
        ),
        case(
            "bad impact",
            db("  impact = \"fatal\" #!"),
            "component[0].check[0].impact",
            InvalidValue,
            "`fail`, `warn`",
        ),
        case(
            "unknown probe type",
            "[[component]]\nid = \"db\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tpc\" #!\n  address = \"h:1\"\n".into(),
            "component[0].check[0].type",
            UnknownProbeType,
            "known types: ",
        ),
        case(
            "missing check type",
            "[[component]]\nid = \"db\"\n  [[component.check]] #!\n  name = \"port\"\n".into(),
            "component[0].check[0].type",
            MissingKey,
            "missing required key `type`",
        ),
        case(
            "probe refuses a value (located by the probe's key)",
            "[[component]]\nid = \"db\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = \"no-port\" #!\n".into(),
            "component[0].check[0].address",
            InvalidValue,
            "is not host:port",
        ),
        case(
            "probe value of the wrong type (located by its value)",
            "[[component]]\nid = \"db\"\n  [[component.check]]\n  name = \"port\"\n  type = \"tcp\"\n  address = 5432 #!\n".into(),
            "component[0].check[0].address",
            InvalidValue,
            "invalid type",
        ),
        case(
            "unknown dependency",
            format!("{}depends_on = [\"cache\", \"ghost\"] #!\n[[component]]\nid = \"cache\"\n  [[component.check]]\n  name = \"p\"\n  type = \"tcp\"\n  address = \"h:1\"\n", "[[component]]\nid = \"db\"\n"),
            "component[0].depends_on[1]",
            UnknownDependency,
            "depends on 'ghost'",
        )
        .with_checks_for_db(),
        case(
            "dependency cycle",
            "[[component]]\nid = \"a\"\ndepends_on = [\"b\"] #!\n  [[component.check]]\n  name = \"p\"\n  type = \"tcp\"\n  address = \"h:1\"\n[[component]]\nid = \"b\"\ndepends_on = [\"a\"]\n  [[component.check]]\n  name = \"p\"\n  type = \"tcp\"\n  address = \"h:1\"\n".into(),
            "component[0].depends_on[0]",
            Cycle,
            "dependency cycle: a -> b -> a",
        ),
        case(
            "a component depending on its own group",
            "[[component]]\nid = \"a\"\ngroup = \"g\"\ndepends_on = [\"g\"] #!\n  [[component.check]]\n  name = \"p\"\n  type = \"tcp\"\n  address = \"h:1\"\n".into(),
            "component[0].depends_on[0]",
            Cycle,
            "dependency cycle",
        ),
        case(
            "duplicate component",
            format!("{}{}", db(""), db("").replace("id = \"db\"", "id = \"db\" #!")),
            "component[1].id",
            Duplicate,
            "duplicate id 'db'",
        ),
        case(
            "component and group share an id",
            format!("[[group]]\nid = \"db\"\n{}", db("").replace("id = \"db\"", "id = \"db\" #!")),
            "component[0].id",
            Duplicate,
            "share one namespace",
        ),
        case(
            "duplicate check",
            db("  [[component.check]]\n  name = \"port\" #!\n  type = \"tcp\"\n  address = \"h:2\""),
            "component[0].check[1].name",
            Duplicate,
            "duplicate check name 'port'",
        ),
        case(
            "component without checks",
            "[[component]] #!\nid = \"db\"\n".into(),
            "component[0].check",
            MissingKey,
            "has no checks",
        ),
        case(
            "invalid component id",
            db("").replace("id = \"db\"", "id = \"Trading DB\" #!"),
            "component[0].id",
            InvalidValue,
            "component id 'Trading DB' is invalid",
        ),
        case(
            "unset variable",
            "[[server.token]]\nname = \"ops\"\nvalue = \"${NOT_SET_ANYWHERE}\" #!\nscopes = [\"read\"]\n".into(),
            "server.token[0].value",
            UnsetVariable,
            "variable `NOT_SET_ANYWHERE` is not set",
        ),
        case(
            "malformed variable reference",
            db("").replace("\"127.0.0.1:5432\"", "\"${DB HOST}:5432\" #!"),
            "component[0].check[0].address",
            InvalidValue,
            "is not a variable reference",
        ),
        case(
            "bad include glob",
            "include = [\"packs/[.toml\"] #!\n".into(),
            "include[0]",
            Include,
            "bad include glob",
        ),
        case(
            "included file missing",
            "include = [\"nope.toml\"] #!\n".into(),
            "include[0]",
            Include,
            "does not exist",
        ),
        case(
            "min_passing 0",
            "[[group]]\nid = \"feeds\"\nmin_passing = 0 #!\n".into(),
            "group[0].min_passing",
            InvalidValue,
            "at least 1",
        ),
        case(
            "bad active window day",
            db("  active = [{ days = \"funday\", from = \"09:30\", to = \"16:00\" }] #!"),
            "component[0].check[0].active[0].days",
            InvalidValue,
            "'funday' is not a day",
        ),
        case(
            "bad active window time zone",
            db("  active = [\n    { days = \"mon\" },\n    { days = \"mon-fri\", tz = \"Mars/Olympus\" }, #!\n  ]"),
            "component[0].check[0].active[1].tz",
            InvalidValue,
            "not a known time zone",
        ),
        case(
            "bad active window time",
            db("  active = [{ days = \"mon\", from = \"9h\" }] #!"),
            "component[0].check[0].active[0].from",
            InvalidValue,
            "not a time of day",
        ),
        case(
            "route without default_sinks",
            "[alert] #!\nfor = \"1m\"\n\n[[alert.sink]]\nname = \"oncall\"\ntype = \"log\"\n\n[[alert.route]]\nmatch = { group = \"risk\" }\nsinks = [\"oncall\"]\n".into(),
            "alert.default_sinks",
            MissingKey,
            "`default_sinks` is required",
        ),
        case(
            "route naming an unknown sink",
            "[alert]\ndefault_sinks = [\"oncall\"]\n[[alert.sink]]\nname = \"oncall\"\ntype = \"log\"\n[[alert.route]]\nsinks = [\"oncal\", \"pager\"] #!\n".into(),
            "alert.route[0].sinks[0]",
            InvalidValue,
            "did you mean 'oncall'",
        ),
        case(
            "webhook sink without url",
            "[alert]\ndefault_sinks = [\"hook\"]\n[[alert.sink]] #!\nname = \"hook\"\ntype = \"webhook\"\n".into(),
            "alert.sink[0].url",
            MissingKey,
            "`webhook` sink needs one",
        ),
        case(
            "bad token scope",
            "[[server.token]]\nname = \"ops\"\nvalue = \"${VITALIS_TOKEN}\"\nscopes = [\"read\", \"reed\"] #!\n".into(),
            "server.token[0].scopes[1]",
            InvalidValue,
            "expected one of `read`, `heartbeat`, `write`, `admin`",
        ),
        case(
            "bad listen address",
            "[server]\nlisten = \"localhost\" #!\n".into(),
            "server.listen",
            InvalidValue,
            "not an ip:port address",
        ),
        case(
            "details misspelled",
            "[server]\ndetails = \"when_authorized\" #!\n".into(),
            "server.details",
            InvalidValue,
            "did you mean `when-authorized`",
        ),
        case(
            "registration of command allowed",
            "[server.registration]\nallowed_types = [\"tcp\", \"command\"] #!\n".into(),
            "server.registration.allowed_types[1]",
            InvalidValue,
            "never accepted through the API",
        ),
        case(
            "unknown key in defaults",
            "[defaults]\nintreval = \"5s\" #!\n".into(),
            "defaults.intreval",
            UnknownKey,
            "did you mean `interval`",
        ),
        case(
            "defaults threshold 0",
            "[defaults]\nfailure_threshold = 0 #!\n".into(),
            "defaults.failure_threshold",
            InvalidValue,
            "at least 1",
        ),
        case(
            "breaker open longer than its cap",
            "[breaker]\nopen_for = \"2m\"\nmax_open_for = \"1m\" #!\n".into(),
            "breaker.max_open_for",
            InvalidValue,
            "shorter than open_for",
        ),
        case(
            "history url with another scheme",
            "[history]\nurl = \"mysql://u:hunter2@h/db\" #!\n".into(),
            "history.url",
            InvalidValue,
            "neither sqlite:// nor postgres://",
        ),
        case(
            "bad severity",
            db("").replace("id = \"db\"", "id = \"db\"\nseverity = \"page\" #!"),
            "component[0].severity",
            InvalidValue,
            "`critical`, `warning`, `info`",
        ),
        case(
            "discovery file without path",
            "[[discovery]] #!\ntype = \"file\"\n".into(),
            "discovery[0].path",
            MissingKey,
            "missing required key `path`",
        ),
        case(
            "labels must be strings",
            db("").replace("id = \"db\"", "id = \"db\"\nlabels = { tier = 1 } #!"),
            "component[0].labels.tier",
            InvalidValue,
            "expected a string, found integer `1`",
        ),
        case(
            "invalid TOML",
            "[server]\nlisten = 127.0.0.1:8080 #!\n".into(),
            "",
            Syntax,
            "invalid TOML",
        ),
        Case {
            name: "table defined in two files",
            files: vec![
                (
                    "vitalis.toml",
                    "include = [\"extra.toml\"]\n\n[server]\nlisten = \"127.0.0.1:8080\" #!\n".into(),
                ),
                ("extra.toml", "[server]\ndetails = \"always\"\n".into()),
            ],
            file: "vitalis.toml",
            path: "server",
            kind: Conflict,
            says: "extra.toml:2:1",
        },
        Case {
            name: "error inside an included file names that file",
            files: vec![
                ("vitalis.toml", "include = [\"packs/*.toml\"]\n".into()),
                ("packs/a.toml", db("")),
                ("packs/b.toml", db("  max_latncy = \"5ms\" #!").replace("\"db\"", "\"db2\"")),
            ],
            file: "packs/b.toml",
            path: "component[0].check[0].max_latncy",
            kind: UnknownKey,
            says: "did you mean `max_latency`",
        },
        Case {
            name: "duplicate component across files",
            files: vec![
                ("vitalis.toml", format!("include = [\"packs/*.toml\"]\n{}", db("").replace("id = \"db\"", "id = \"db\" #!"))),
                ("packs/a.toml", db("")),
            ],
            file: "vitalis.toml",
            path: "component[0].id",
            kind: Duplicate,
            says: "first declared at",
        },
        Case {
            name: "include cycle",
            files: vec![
                ("vitalis.toml", "include = [\"a.toml\"]\n".into()),
                ("a.toml", "include = [\"vitalis.toml\"] #!\n".into()),
            ],
            file: "a.toml",
            path: "include[0]",
            kind: Include,
            says: "is already read",
        },
        Case {
            name: "include glob in a missing directory",
            files: vec![("vitalis.toml", "include = [\"pack/*.toml\"] #!\n".into())],
            file: "vitalis.toml",
            path: "include[0]",
            kind: Include,
            says: "does not exist",
        },
    ]
}

impl Case {
    /// Adds a check to the first component (`db`) of the case's text.
    fn with_checks_for_db(mut self) -> Self {
        let text = &mut self.files[0].1;
        *text = text.replacen(
            "[[component]]\nid = \"cache\"",
            "  [[component.check]]\n  name = \"p\"\n  type = \"tcp\"\n  address = \"h:1\"\n[[component]]\nid = \"cache\"",
            1,
        );
        self
    }
}

#[test]
fn bad_configs_name_the_file_the_line_and_the_field() {
    let cases = bad_configs();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for c in &cases {
        let files: Vec<(&str, &str)> = c.files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let (_dir, result) = load_files(&files);
        let Err(e) = result else {
            failures.push(format!("{}: loaded without error", c.name));
            continue;
        };
        let text = &c.files.iter().find(|(n, _)| *n == c.file).unwrap().1;
        let line = marker_line(text);
        let shown = e.to_string();
        if std::env::var_os("VITALIS_SHOW_ERRORS").is_some() {
            eprintln!("{:<50} {shown}", c.name);
        }
        let mut problems = Vec::new();
        if !e.file().is_some_and(|f| f.ends_with(c.file)) {
            problems.push(format!("file {:?}", e.file()));
        }
        if e.line() != Some(line) {
            problems.push(format!("line {:?}, want {line}", e.line()));
        }
        if e.path() != c.path {
            problems.push(format!("path {:?}, want {:?}", e.path(), c.path));
        }
        if e.kind() != c.kind {
            problems.push(format!("kind {:?}, want {:?}", e.kind(), c.kind));
        }
        if !shown.contains(c.says) {
            problems.push(format!("message lacks {:?}", c.says));
        }
        let prefix = format!("{}:{line}:", Path::new(c.file).display());
        if !shown.contains(&prefix)
            || (!c.path.is_empty() && !shown.contains(&format!(": {}: ", c.path)))
        {
            problems.push("display lacks file:line: path:".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} — {shown}", c.name, problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn columns_point_at_the_key_or_the_value() {
    let text = db("  adress = \"x\"\n");
    let e = load_str(&text, "v.toml", &opts()).unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(7), Some(3)));
    let text = db("  level = \"deeep\"\n");
    let e = load_str(&text, "v.toml", &opts()).unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(7), Some(11)));
    assert_eq!(
        e.to_string(),
        "v.toml:7:11: component[0].check[0].level: invalid value `deeep`: expected one of `live`, `ready`, `deep` (hint: did you mean `deep`?)"
    );
}

#[test]
fn io_errors_name_the_file() {
    let e = load(Path::new("/nonexistent/vitalis.toml"), &opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/vitalis.toml: cannot read the file")
    );
    assert!(std::error::Error::source(&e).is_some());
}

/// The example of SPEC section 5 (with tcp standing in for postgres).
const SPEC_EXAMPLE: &str = r#"
[server]
listen = "127.0.0.1:8080"
grpc_listen = "127.0.0.1:50051"       # optional
details = "when-authorized"

[[server.token]]
name = "ops"
value = "${VITALIS_TOKEN}"
scopes = ["read", "admin"]

[defaults]
interval = "5s"
deep_interval = "60s"
timeout = "2s"
cache_ttl = "5s"
failure_threshold = 1
success_threshold = 1

[breaker]
failures = 5
open_for = "10s"
max_open_for = "60s"

[history]
url = "postgres://vitalis:${PG_PASSWORD}@127.0.0.1/vitalis"
raw_retention = "48h"
retention = "400d"

[[group]]
id = "exchange"
critical = true
min_passing = 1

[[component]]
id = "trading-db"
name = "Trading database"
group = "data"
critical = true
owner = "data-eng"
runbook_url = "https://runbooks.example/trading-db"
labels = { tier = "core" }

  [[component.check]]
  name = "fills-fresh"
  level = "deep"
  type = "tcp"
  address = "127.0.0.1:5432"
  impact = "warn"
  on_demand = true
  failure_threshold = 3
  severity = "critical"
  breaker = { failures = 2 }
  active = [{ days = "mon-fri", from = "09:30", to = "16:00", tz = "America/New_York" }]

[[discovery]]
type = "file"
path = "registry.d/*.toml"

[[alert.sink]]
name = "oncall"
type = "alertmanager"
url = "http://127.0.0.1:9093"

[[alert.sink]]
name = "hook"
type = "webhook"
url = "https://hooks.example/x"
headers = { Authorization = "Bearer ${VITALIS_TOKEN}" }

[[alert.route]]
match = { group = "risk" }
sinks = ["oncall"]

[alert]
default_sinks = ["oncall"]
"#;

#[test]
fn the_spec_example_loads() {
    let c = load_str(SPEC_EXAMPLE, "conf/vitalis.toml", &opts()).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.grpc_listen.unwrap().port(), 50051);
    assert_eq!(c.server.details, Details::WhenAuthorized);
    assert_eq!(c.server.tokens[0].value.expose(), "s3cret-token-value");
    assert_eq!(c.server.tokens[0].scopes, vec![Scope::Read, Scope::Admin]);
    assert_eq!(c.defaults.breaker.failures, 5);
    assert_eq!(c.groups[0].min_passing, Some(1));
    let h = c.history.as_ref().unwrap();
    assert_eq!(h.backend, HistoryBackend::Postgres);
    assert_eq!(h.raw_retention, Duration::from_secs(48 * 3600));
    let db = &c.components[0];
    assert_eq!(db.component.name, "Trading database");
    assert_eq!(db.component.source, Source::Config);
    assert_eq!(db.component.labels["tier"], "core");
    let header = SPEC_EXAMPLE
        .lines()
        .position(|l| l == "[[component]]")
        .unwrap()
        + 1;
    assert_eq!(db.line, header);
    assert_eq!(db.file, Path::new("conf/vitalis.toml"));
    let check = &db.component.checks[0];
    assert_eq!((check.level, check.impact), (Level::Deep, Impact::Warn));
    assert!(check.settings.on_demand);
    assert_eq!(check.settings.failure_threshold, Some(3));
    assert_eq!(check.settings.severity.as_deref(), Some("critical"));
    let b = check.settings.breaker.unwrap();
    assert_eq!(
        (b.failures, b.open_for, b.enabled),
        (2, Duration::from_secs(10), true)
    );
    assert_eq!(check.settings.active.len(), 1);
    assert_eq!(
        c.discovery[0].source,
        DiscoverySource::File {
            pattern: "conf/registry.d/*.toml".into()
        }
    );
    assert_eq!(c.alert.routes[0].matcher.group.as_deref(), Some("risk"));
    assert_eq!(c.alert.default_sinks, ["oncall"]);
    assert_eq!(c.inactive_sections(), ["discovery"]);

    // Debug hides every secret.
    let debug = format!("{c:?}");
    for secret in ["s3cret-token-value", "pg-pass-123"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("vitalis:***@127.0.0.1"));
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = load_str(&db(""), "v.toml", &opts()).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.details, Details::WhenAuthorized);
    assert!(!c.server.metrics_auth);
    assert!(!c.server.registration.allows_type("command"));
    assert!(c.server.registration.allows_type("tcp"));
    assert_eq!(c.defaults, vitalis_core::Defaults::default());
    assert_eq!(c.max_concurrency, ConcurrencyLimits::default());
    assert!(c.history.is_none());
    assert_eq!(c.alert, AlertConfig::default());
    assert!(c.inactive_sections().is_empty());
    assert_eq!(c.sections(), ["component"]);
    let check = &c.components[0].component.checks[0];
    assert_eq!((check.level, check.impact), (Level::Ready, Impact::Fail));
    assert_eq!(check.settings, vitalis_core::CheckSettings::default());
}

#[test]
fn defaults_and_breaker_fold_into_core_defaults() {
    let text = format!(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"500ms\"\nmax_concurrency = 64\nmax_concurrency_per_host = 4\n[breaker]\nfailures = 3\nmax_open_for = \"5m\"\n{}",
        db("  breaker = { open_for = \"30s\" }")
    );
    let c = load_str(&text, "v.toml", &opts()).unwrap();
    assert_eq!(c.defaults.interval, Duration::from_secs(1));
    assert_eq!(c.defaults.timeout, Duration::from_millis(500));
    assert_eq!(c.defaults.deep_interval, Duration::from_secs(60));
    assert_eq!(c.defaults.breaker.failures, 3);
    assert_eq!(c.defaults.breaker.max_open_for, Duration::from_secs(300));
    assert_eq!(c.max_concurrency.global, Some(64));
    assert_eq!(c.max_concurrency.per_host, Some(4));
    // A check's breaker overrides key by key over [breaker].
    let b = c.components[0].component.checks[0]
        .settings
        .breaker
        .unwrap();
    assert_eq!(
        (b.failures, b.open_for, b.max_open_for),
        (3, Duration::from_secs(30), Duration::from_secs(300))
    );
}

#[test]
fn includes_compose_arrays_and_keep_plain_tables_in_one_file() {
    let main = "include = [\"packs/*.toml\"]\n\n[server]\nlisten = \"127.0.0.1:9000\"\n\n[alert]\ndefault_sinks = [\"log\"]\n\n[[alert.sink]]\nname = \"log\"\ntype = \"log\"\n";
    let risk = format!(
        "[[group]]\nid = \"risk\"\n\n[[server.token]]\nname = \"pack\"\nvalue = \"${{PACK_TOKEN:-pack-default}}\"\nscopes = [\"heartbeat\"]\n\n[[alert.route]]\nmatch = {{ group = \"risk\" }}\nsinks = [\"log\"]\n\n{}",
        db("").replace("\"db\"", "\"risk-engine\"\ngroup = \"risk\"")
    );
    let data = format!("include = [\"../more/extra.toml\"]\n{}", db(""));
    let extra = db("").replace("\"db\"", "\"backups\"");
    let (_dir, r) = load_files(&[
        ("vitalis.toml", main),
        ("packs/risk.toml", &risk),
        ("packs/data.toml", &data),
        ("more/extra.toml", &extra),
    ]);
    let c = r.unwrap();
    let ids: Vec<&str> = c.declarations().map(|c| c.id.as_str()).collect();
    // Glob order (data before risk); a file's includes before its own.
    assert_eq!(ids, ["backups", "db", "risk-engine"]);
    assert_eq!(c.files.len(), 4);
    assert!(c.files[0].ends_with("vitalis.toml"));
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.tokens[0].value.expose(), "pack-default");
    assert_eq!(c.alert.routes.len(), 1);
    assert_eq!(c.groups[0].id, "risk");
    assert!(
        c.component("backups")
            .unwrap()
            .file
            .ends_with("more/extra.toml")
    );
    assert!(
        c.component("risk-engine")
            .unwrap()
            .file
            .ends_with("packs/risk.toml")
    );
}

#[test]
fn a_glob_matching_nothing_in_an_existing_directory_is_fine() {
    let (_dir, r) = load_files(&[
        ("vitalis.toml", "include = [\"conf.d/*.toml\"]\n"),
        ("conf.d/README", "not toml"),
    ]);
    assert!(r.unwrap().components.is_empty());
}

#[test]
fn variables_expand_in_values_only_and_cannot_inject_toml() {
    let injected = "x\"\n[server]\nlisten = \"0.0.0.0:1\"\n";
    let o = LoadOptions::without_env()
        .var("NAME", injected)
        .var("KEY", "not-a-key");
    let text = format!(
        "[[component]]\nid = \"db\"\nname = \"${{NAME}}\"\nlabels = {{ \"${{KEY}}\" = \"${{KEY}}\" }}\n{}",
        &db("")[24..]
    );
    let c = load_str(&text, "v.toml", &o).unwrap();
    let comp = &c.components[0].component;
    assert_eq!(comp.name, injected);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    // Keys are never expanded.
    assert_eq!(comp.labels["${KEY}"], "not-a-key");
}

#[test]
fn line_numbers_survive_multi_line_values() {
    let o = opts().var("BIG", "a\nb\nc\nd\ne");
    let text = "[[component]]\nid = \"db\"\nname = \"\"\"\n${BIG}\n\"\"\"\nownr = 1\n";
    let e = load_str(text, "v.toml", &o).unwrap_err();
    assert_eq!(e.line(), Some(6));
    // An unset variable inside a multi-line string: the line of the reference.
    let text = "[[component]]\nid = \"db\"\nname = \"\"\"\nfirst\nsecond ${MISSING}\n\"\"\"\n";
    let e = load_str(text, "v.toml", &o).unwrap_err();
    assert_eq!((e.line(), e.column()), (Some(5), Some(8)));
    assert_eq!(e.kind(), ErrorKind::UnsetVariable);
    assert!(e.hint().unwrap().contains("${MISSING:-value}"));
}

#[test]
fn the_embedding_programs_variables_win_over_the_environment() {
    // HOME and PATH exist in any test environment.
    let text = db("").replace("127.0.0.1:5432", "${DB:-127.0.0.1}:5432");
    let o = LoadOptions::new().var("DB", "10.0.0.9");
    let c = load_str(&text, "v.toml", &o).unwrap();
    assert_eq!(
        c.components[0].component.checks[0]
            .check
            .target_host()
            .as_deref(),
        Some("10.0.0.9")
    );
    let text = db("").replace("\"db\"", "\"db\"\nowner = \"${PATH}\"");
    assert!(load_str(&text, "v.toml", &LoadOptions::new()).is_ok());
    let e = load_str(&text, "v.toml", &LoadOptions::without_env()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsetVariable);
}

#[test]
fn fingerprints_tell_a_reload_what_changed() {
    let two = |db_addr: &str, cache_extra: &str| {
        format!(
            "{}{}",
            db("").replace("127.0.0.1:5432", db_addr),
            db(cache_extra).replace("\"db\"", "\"cache\"")
        )
    };
    let a = load_str(&two("127.0.0.1:5432", ""), "v.toml", &opts()).unwrap();
    // Same declarations, reformatted and reordered: unchanged.
    let reformatted = "# comment\n[[component]]\nid = 'db'\n  [[component.check]]\n  address = '127.0.0.1:5432'\n  type = 'tcp'\n  name = 'port'\n".to_string()
        + &db("").replace("\"db\"", "\"cache\"");
    let b = load_str(&reformatted, "v.toml", &opts()).unwrap();
    assert_eq!(b.diff(&a).unchanged, ["db", "cache"]);
    // A changed value, an added key.
    let c = load_str(
        &two("127.0.0.1:6543", "  max_latency = \"5ms\""),
        "v.toml",
        &opts(),
    )
    .unwrap();
    assert_eq!(c.diff(&a).changed, ["db", "cache"]);
    // A variable's new value changes the component using it.
    let with_var = db("").replace("127.0.0.1:5432", "${DB}:5432");
    let v1 = load_str(&with_var, "v.toml", &opts().var("DB", "h1")).unwrap();
    let v2 = load_str(&with_var, "v.toml", &opts().var("DB", "h2")).unwrap();
    assert_ne!(v1.components[0].fingerprint, v2.components[0].fingerprint);
    // Added and removed.
    let only_cache = load_str(&db("").replace("\"db\"", "\"cache\""), "v.toml", &opts()).unwrap();
    let d = only_cache.diff(&a);
    assert_eq!((d.removed, d.added), (vec!["db".to_string()], vec![]));
    // Changed defaults change every fingerprint.
    let slower = load_str(
        &format!(
            "[defaults]\ninterval = \"9s\"\n{}",
            two("127.0.0.1:5432", "")
        ),
        "v.toml",
        &opts(),
    )
    .unwrap();
    assert_eq!(slower.diff(&a).changed, ["db", "cache"]);
}

#[test]
fn load_options_debug_shows_variable_names_only() {
    let o = LoadOptions::without_env().var("API_SECRET", "do-not-print");
    let shown = format!("{o:?}");
    assert!(
        shown.contains("API_SECRET") && !shown.contains("do-not-print"),
        "{shown}"
    );
}

#[test]
fn debug_hides_sink_headers_and_webhook_credentials() {
    let text = "[alert]\ndefault_sinks = [\"slack\"]\n[[alert.sink]]\nname = \"slack\"\ntype = \"slack\"\nurl = \"https://hooks.slack.com/services/T000/B000/SECRETPART\"\nheaders = { X-Key = \"header-secret\" }\n";
    let c = load_str(text, "v.toml", &opts()).unwrap();
    let debug = format!("{:?}", c.alert);
    assert!(
        !debug.contains("SECRETPART") && !debug.contains("header-secret"),
        "{debug}"
    );
    assert_eq!(c.alert.sinks[0].headers["X-Key"].expose(), "header-secret");
}

// === run-time registration ===

fn reg_body() -> serde_json::Value {
    json!({
        "id": "late",
        "group": "core",
        "labels": { "tier": "edge" },
        "check": [{ "name": "tcp", "type": "tcp", "address": "10.1.2.3:80", "level": "live", "interval": "2s" }]
    })
}

#[test]
fn registration_builds_a_registered_component() {
    let c = component_from_json(
        &reg_body(),
        "late",
        &RegistrationConfig::default(),
        &JsonOptions::default(),
    )
    .unwrap();
    assert_eq!(c.source, Source::Registered);
    assert_eq!(c.group.as_deref(), Some("core"));
    assert_eq!(c.checks[0].level, Level::Live);
    assert_eq!(c.checks[0].settings.interval, Some(Duration::from_secs(2)));
    // The id may come from the path only.
    let mut body = reg_body();
    body.as_object_mut().unwrap().remove("id");
    assert_eq!(
        component_from_json(
            &body,
            "late",
            &RegistrationConfig::default(),
            &JsonOptions::default()
        )
        .unwrap()
        .id,
        "late"
    );
}

#[test]
fn registration_refuses_what_it_must() {
    let reg = RegistrationConfig::default();
    let o = JsonOptions::default();
    let err = |body: serde_json::Value, reg: &RegistrationConfig| {
        component_from_json(&body, "late", reg, &o).unwrap_err()
    };

    let mut mismatch = reg_body();
    mismatch["id"] = json!("other");
    let e = component_from_json(&mismatch, "late", &reg, &o).unwrap_err();
    assert_eq!((e.path(), e.kind()), ("id", ErrorKind::InvalidValue));

    let mut command = reg_body();
    command["check"][0] = json!({ "name": "x", "type": "command", "command": ["rm", "-rf", "/"] });
    let e = err(command, &reg);
    // Refused whether or not the command probe is built in.
    assert!(
        matches!(e.kind(), ErrorKind::Refused | ErrorKind::UnknownProbeType),
        "{e}"
    );
    assert_eq!(e.path(), "check[0].type");

    let only_http = RegistrationConfig {
        allowed_types: vec!["http".into()],
        allowed_hosts: None,
    };
    let e = err(reg_body(), &only_http);
    assert_eq!((e.kind(), e.path()), (ErrorKind::Refused, "check[0].type"));
    assert!(
        e.to_string()
            .contains("not allowed for run-time registration"),
        "{e}"
    );

    let hosts = RegistrationConfig {
        allowed_hosts: Some(vec!["*.svc.local".into()]),
        ..RegistrationConfig::default()
    };
    let e = err(reg_body(), &hosts);
    assert_eq!((e.kind(), e.path()), (ErrorKind::Refused, "check[0]"));
    assert!(
        e.to_string()
            .contains("'10.1.2.3' is not in server.registration.allowed_hosts"),
        "{e}"
    );
    let mut ok = reg_body();
    ok["check"][0]["address"] = json!("risk.svc.local:80");
    assert!(component_from_json(&ok, "late", &hosts, &o).is_ok());

    let mut typo = reg_body();
    typo["check"][0]["adress"] = json!("x:1");
    let e = err(typo, &reg);
    assert_eq!(
        e.to_string(),
        "check[0].adress: unknown key `adress`: neither a check key nor a key of the `tcp` probe (hint: did you mean `address`?)"
    );
    assert!(e.file().is_none() && e.line().is_none());

    let mut dup = reg_body();
    let first = dup["check"][0].clone();
    dup["check"].as_array_mut().unwrap().push(first);
    let e = err(dup, &reg);
    assert_eq!(
        (e.kind(), e.path()),
        (ErrorKind::Duplicate, "check[1].name")
    );

    let mut null = reg_body();
    null["owner"] = json!(null);
    assert_eq!(err(null, &reg).path(), "owner");

    assert_eq!(err(json!([1]), &reg).kind(), ErrorKind::Syntax);
}

#[test]
fn registration_never_expands_variables() {
    let mut body = reg_body();
    body["name"] = json!("${PATH}");
    let c = component_from_json(
        &body,
        "late",
        &RegistrationConfig::default(),
        &JsonOptions::default(),
    )
    .unwrap();
    assert_eq!(c.name, "${PATH}");
}

#[test]
fn the_schema_describes_every_section() {
    let s = schema();
    let props = s["properties"].as_object().unwrap();
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort();
    let mut top = crate::loader::TOP_KEYS.to_vec();
    top.sort();
    assert_eq!(keys, top);
    let defs = &s["$defs"];
    assert_eq!(
        defs["Server"]["properties"]["details"]["$ref"],
        "#/$defs/Details"
    );
    assert!(defs["Details"]["oneOf"].is_array() || defs["Details"]["enum"].is_array());
    assert!(defs["Alert"]["properties"]["for"].is_object());
    assert!(
        defs["Defaults"]["properties"]["max_concurrency"]["description"]
            .as_str()
            .unwrap()
            .contains("Vitalis addition")
    );
    assert_eq!(
        defs["Component"]["properties"]["check"]["items"]["$ref"],
        "#/$defs/Check"
    );
}
