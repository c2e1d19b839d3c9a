//! Test support for Vitalis: real servers on free loopback ports, each in
//! its own temp dir, stopped and removed when dropped.
//!
//! Every server module starts the real program from the machine's
//! packages. When a program is missing the calling test panics with what
//! to install (`apt-get install …`), under `CI=true` and elsewhere: a test
//! never passes silently for lack of a server.
//!
//! # Example
//!
//! ```no_run
//! let pg = vitalis_testkit::postgres::Postgres::start();
//! pg.psql("CREATE TABLE fills (ts timestamptz)");
//! let url = pg.url(); // postgres://vitalis:…@127.0.0.1:<port>/vitalis
//! # let _ = url;
//! ```
//!
//! This file is only a list of modules: add a server as a module of its own.

pub mod alertmanager;
pub mod dnsmasq;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod support;
