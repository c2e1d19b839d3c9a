//! A real PostgreSQL server on a free loopback port, in its own temp dir.
//!
//! ```no_run
//! use vitalis_testkit::postgres::Postgres;
//! let mut pg = Postgres::start();
//! pg.psql("CREATE TABLE fills (ts timestamptz NOT NULL DEFAULT now())");
//! let url = pg.url();        // postgres://vitalis:…@127.0.0.1:<port>/vitalis
//! pg.stop();                 // the target vanishes (clients are disconnected)
//! pg.start_again();          // same port, same data
//! # let _ = url;
//! ```
//!
//! * Programs: Debian's `postgresql` package (`/usr/lib/postgresql/<major>/bin`,
//!   newest major first), else `postgres`/`initdb`/`psql` on `PATH`.
//! * PostgreSQL refuses to run as root: when the tests run as root, the data
//!   dir belongs to the `postgres` user and the server runs as that user.
//! * The cluster has a database [`DATABASE`] owned by [`USER`] (password
//!   [`PASSWORD`]) and the superuser [`ADMIN_USER`] (password
//!   [`ADMIN_PASSWORD`]). TCP connections (`127.0.0.1` only) need the
//!   password (`scram-sha-256`); the unix socket in the temp dir trusts
//!   everyone, which is how [`Postgres::psql`] gets in.
//! * Fast start: `initdb` runs once per machine and PostgreSQL version into a
//!   template under the system temp dir (built aside, then renamed into
//!   place, so concurrent test processes never see half a template); each
//!   server copies it. `fsync` is off: the data is disposable.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::support::{self, Lifecycle, ServerProcess};

/// The test database.
pub const DATABASE: &str = "vitalis";
/// The test user, owner of [`DATABASE`].
pub const USER: &str = "vitalis";
/// [`USER`]'s password (distinctive, so tests can assert it never shows).
pub const PASSWORD: &str = "pg-S3cret-vitalis";
/// The superuser.
pub const ADMIN_USER: &str = "postgres";
/// The superuser's password.
pub const ADMIN_PASSWORD: &str = "pg-Adm1n-vitalis";

/// Bump when the template's recipe changes, so old cached templates are not used.
const RECIPE: u32 = 1;

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

const INSTALL: &str = "postgresql";

/// Where the PostgreSQL programs are, and who runs them.
#[derive(Debug, Clone)]
struct Install {
    bin: PathBuf,
    /// `(uid, gid)` of the `postgres` user when running as root.
    run_as: Option<(u32, u32)>,
    version: String,
}

impl Install {
    fn get() -> &'static Install {
        static INSTALL_: OnceLock<Install> = OnceLock::new();
        INSTALL_.get_or_init(Install::find)
    }

    fn find() -> Install {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        // Newest major first.
        dirs.sort_by_key(|d| {
            std::cmp::Reverse(
                d.parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        let bin = dirs
            .into_iter()
            .find(|d| d.join("postgres").is_file() && d.join("initdb").is_file())
            .unwrap_or_else(|| {
                let postgres = support::require_program(&["postgres"], INSTALL);
                postgres.parent().map(Path::to_path_buf).unwrap_or_default()
            });
        for program in ["postgres", "initdb", "psql"] {
            support::require_program(
                &[bin.join(program).to_str().unwrap_or(program), program],
                INSTALL,
            );
        }
        let run_as = nix::unistd::geteuid().is_root().then(|| {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .unwrap_or_else(|| {
                    panic!(
                        "running as root, PostgreSQL needs the `postgres` user to run as: apt-get install {INSTALL} creates it"
                    )
                });
            (user.uid.as_raw(), user.gid.as_raw())
        });
        let version = support::run(Command::new(bin.join("postgres")).arg("--version"))
            .trim()
            .to_string();
        Install {
            bin,
            run_as,
            version,
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        let p = self.bin.join(name);
        if p.is_file() { p } else { PathBuf::from(name) }
    }

    /// A command for a server program, run as the `postgres` user when root.
    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.program(name));
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c.env_remove("PGDATA").env("LC_ALL", "C");
        c
    }

    /// Gives `path` to the user the server runs as.
    fn own(&self, path: &Path) {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    /// The initialized cluster every server copies (built on first use).
    fn template(&self) -> &'static Path {
        static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
        TEMPLATE.get_or_init(|| self.build_template())
    }

    fn build_template(&self) -> PathBuf {
        let major: String = self
            .version
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let uid = nix::unistd::geteuid().as_raw();
        let root = std::env::temp_dir();
        let template = root.join(format!(
            "vitalis-testkit-pg{major}-u{uid}-template-r{RECIPE}"
        ));
        if template.join("complete").is_file() {
            return template;
        }
        let build = tempfile::Builder::new()
            .prefix("vitalis-testkit-pg-build-")
            .tempdir_in(&root)
            .expect("temp dir for the PostgreSQL template");
        self.own(build.path());
        let data = build.path().join("data");
        let log = build.path().join("initdb.log");
        let pwfile = build.path().join("pw");
        std::fs::write(&pwfile, format!("{ADMIN_PASSWORD}\n")).expect("write pwfile");
        self.own(&pwfile);
        let status = self
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ADMIN_USER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(File::create(&log).expect("initdb log"))
            .stderr(File::create(build.path().join("initdb.err")).expect("initdb log"))
            .status()
            .expect("run initdb");
        if !status.success() {
            panic!(
                "initdb failed ({status}): {}",
                support::tail(&build.path().join("initdb.err"), 20)
            );
        }
        // Roles and the test database, in single-user mode (no server, no port).
        let mut single = self
            .command("postgres")
            .args(["--single", "-F", "-c", "exit_on_error=true", "-D"])
            .arg(&data)
            .arg(ADMIN_USER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run postgres --single");
        let sql = format!(
            "CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}';\nCREATE DATABASE {DATABASE} OWNER {USER};\n"
        );
        single
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write to postgres --single");
        let out = single.wait_with_output().expect("postgres --single");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || stderr.contains("ERROR") || stderr.contains("FATAL") {
            panic!(
                "creating the test role and database failed ({}): {stderr}",
                out.status
            );
        }
        let _ = std::fs::remove_file(&pwfile);
        std::fs::write(build.path().join("complete"), &self.version).expect("mark template");
        let build = build.keep();
        if std::fs::rename(&build, &template).is_err() {
            // Another test process finished first: use its template.
            let _ = std::fs::remove_dir_all(&build);
        }
        assert!(
            template.join("complete").is_file(),
            "no PostgreSQL template at {}",
            template.display()
        );
        template
    }
}

/// A running (or stopped) PostgreSQL server; stopped and removed when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: TempDir,
    port: u16,
    process: Option<ServerProcess>,
}

impl Postgres {
    /// Starts a server with a fresh copy of the test cluster.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is not installed (with `apt-get install postgresql`),
    /// or the server does not come up (with its log).
    pub fn start() -> Postgres {
        let install = Install::get();
        let template = install.template();
        let dir = tempfile::Builder::new()
            .prefix("vitalis-testkit-pg-")
            .tempdir()
            .expect("temp dir");
        install.own(dir.path());
        support::run(
            Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(dir.path().join("data")),
        );
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).expect("socket dir");
        install.own(&sock);
        let mut pg = Postgres {
            dir,
            port: 0,
            process: None,
        };
        let started = support::on_free_port("could not bind", |port| {
            pg.port = port;
            pg.launch()
        });
        if let Err(log) = started {
            panic!("PostgreSQL did not start on 127.0.0.1:{}: {log}", pg.port);
        }
        pg
    }

    /// Starts the server process; `Err(log tail)` when it does not get ready.
    fn launch(&mut self) -> Result<(), String> {
        let install = Install::get();
        let pid_file = self.data_dir().join("postmaster.pid");
        let process = support::spawn_server(
            install
                .command("postgres")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-h", "127.0.0.1", "-k"])
                .arg(self.socket_dir())
                .args([
                    "-F",
                    "-c",
                    "shared_buffers=16MB",
                    "-c",
                    "max_connections=40",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "wal_level=minimal",
                    "-c",
                    "max_wal_senders=0",
                    "-c",
                    "autovacuum=off",
                ]),
            &self.dir.path().join("postgres.log"),
            Lifecycle {
                // Fast shutdown: clients are told, then disconnected.
                polite: Signal::SIGINT,
                // Immediate shutdown: nothing here needs to survive.
                abort: Signal::SIGQUIT,
                ready_within: READY_WITHIN,
            },
            || {
                let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
                // Line 8 of postmaster.pid is the server's state.
                text.lines().nth(7).map(str::trim) == Some("ready")
            },
        )?;
        self.process = Some(process);
        Ok(())
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `postgres://vitalis:<password>@127.0.0.1:<port>/vitalis`.
    pub fn url(&self) -> String {
        self.url_as(USER, PASSWORD)
    }

    /// A URL for `user` with `password` (to test bad credentials).
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// The superuser's URL.
    pub fn admin_url(&self) -> String {
        self.url_as(ADMIN_USER, ADMIN_PASSWORD)
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Runs SQL as [`USER`] in [`DATABASE`] (over the unix socket, with
    /// `psql`) and returns its unaligned, tuples-only output.
    ///
    /// # Panics
    ///
    /// When the SQL fails, with psql's error.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as(USER, sql)
    }

    /// Runs SQL as the superuser, like [`Postgres::psql`].
    pub fn psql_admin(&self, sql: &str) -> String {
        self.psql_as(ADMIN_USER, sql)
    }

    fn psql_as(&self, user: &str, sql: &str) -> String {
        let install = Install::get();
        support::run(
            Command::new(install.program("psql"))
                .arg("-h")
                .arg(self.socket_dir())
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", user, "-d", DATABASE])
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .env_remove("PGPASSWORD")
                .stdin(Stdio::null()),
        )
        .trim_end()
        .to_string()
    }

    /// Whether the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| !p.has_exited())
    }

    /// Stops the server (fast shutdown: open sessions are terminated with
    /// `57P01`, then the port closes). Its data stays for [`Postgres::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop();
        }
    }

    /// Kills the server without a shutdown (`SIGKILL` to the postmaster):
    /// sessions see their connection drop without a message.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop_with(Signal::SIGKILL);
        }
        // Backends notice their postmaster's death and exit on their own.
    }

    /// Starts the stopped server again, on the same port with the same data.
    ///
    /// # Panics
    ///
    /// When it does not come up (e.g. something else took the port meanwhile).
    pub fn start_again(&mut self) {
        if self.is_running() {
            return;
        }
        if let Err(log) = self.launch() {
            panic!(
                "PostgreSQL did not start again on 127.0.0.1:{}: {log}",
                self.port
            );
        }
    }

    /// The end of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        support::tail(&self.dir.path().join("postgres.log"), lines)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // Immediate shutdown: nothing here needs to survive.
            p.stop_with(Signal::SIGQUIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_stops_and_starts_again() {
        let mut pg = Postgres::start();
        assert!(support::accepts(pg.port()));
        assert_eq!(pg.psql("SELECT current_user"), USER);
        pg.psql("CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
        assert_eq!(pg.psql("SELECT v FROM t"), "42");
        assert_eq!(
            pg.psql_admin("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"),
            "t"
        );
        assert!(pg.url().contains(&format!("127.0.0.1:{}", pg.port())));
        pg.stop();
        assert!(!pg.is_running());
        assert!(!support::accepts(pg.port()));
        pg.start_again();
        assert_eq!(pg.psql("SELECT v FROM t"), "42", "data survives a restart");
        let dir = pg.data_dir();
        drop(pg);
        assert!(!dir.exists(), "the temp dir is removed");
    }

    #[test]
    fn servers_are_independent() {
        let a = Postgres::start();
        let b = Postgres::start();
        assert_ne!(a.port(), b.port());
        a.psql("CREATE TABLE only_in_a (v int)");
        assert_eq!(
            b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"),
            "0"
        );
    }
}
