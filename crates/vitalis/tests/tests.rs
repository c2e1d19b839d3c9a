//! End-to-end tests: the real `vitalis` binary against real local targets
//! (TCP listeners, an HTTP server the test controls, Debian's Nagios plugins).

mod util;

mod alerts;
mod check_cmd;
mod demo;
mod history;
mod serve;
