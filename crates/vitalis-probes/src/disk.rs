//! `disk`: free space of the filesystem that holds `path`, on the Vitalis
//! host.
//!
//! ```toml
//! type = "disk"
//! path = "/var/lib/postgresql"
//! warn_below = "20%"
//! fail_below = "5GiB"
//! ```
//!
//! *Free* is what an unprivileged process can still write (`statvfs`'s
//! available blocks, so root's reserve does not count), and the percentage
//! is `free / (used + free)`, as `df` computes it. Thresholds are a
//! percentage (`"10%"`) or a size (`"5GiB"`, see [`crate::size`]). The
//! observed value is the free percentage (`percent`) — or the free bytes
//! (`bytes`) when `fail_below` (else `warn_below`) is a size. Free inodes
//! are reported too, and an exhausted inode table fails the check: no file
//! can be created then, whatever the free space.

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Perfdata, Status};

use crate::size::{Size, format_bytes};
use crate::{BuildCx, BuildError, ProbeConfig};

/// Free space of the filesystem holding `path`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Any path on the filesystem to watch (a directory or a file).
    pub path: PathBuf,
    /// Warn when free space is below this: `"20%"` or a size (`"10GiB"`).
    #[serde(default)]
    pub warn_below: Option<Threshold>,
    /// Fail when free space is below this: `"10%"` or a size (`"5GiB"`).
    #[serde(default)]
    pub fail_below: Option<Threshold>,
}

/// A free-space threshold.
#[derive(Debug, Clone, Copy, PartialEq, JsonSchema)]
#[schemars(with = "ThresholdSchema")]
pub enum Threshold {
    /// A percentage of the filesystem (`"10%"`).
    Percent(f64),
    /// A size (`"5GiB"`).
    Bytes(Size),
}

/// The schema of a threshold: `"10%"`, `"5GiB"`, or a number of bytes.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ThresholdSchema {
    Text(String),
    Bytes(u64),
}

impl Threshold {
    /// Parses `"10%"`, `"12.5%"` or a size.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        match text.trim().strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(Threshold::Percent(v)),
                _ => Err(format!("'{text}' is not a percentage between 0% and 100%")),
            },
            None => Size::parse(text)
                .map(Threshold::Bytes)
                .map_err(|e| format!("{e}, or a percentage like \"10%\"")),
        }
    }

    fn holds(self, free: &Free) -> bool {
        match self {
            Threshold::Percent(p) => free.percent() >= p,
            Threshold::Bytes(b) => free.available >= b.0,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Percent(p) => write!(f, "{p}%"),
            Threshold::Bytes(b) => write!(f, "{}", format_bytes(b.0)),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(Threshold::Bytes(Size(b))),
            Raw::Text(t) => Threshold::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl ProbeConfig for DiskConfig {
    const NAME: &'static str = "disk";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::key(
                "path",
                "path is empty; give a path on the filesystem to watch",
            ));
        }
        let order = match (self.warn_below, self.fail_below) {
            (Some(Threshold::Percent(w)), Some(Threshold::Percent(f))) => Some(w >= f),
            (Some(Threshold::Bytes(w)), Some(Threshold::Bytes(f))) => Some(w >= f),
            _ => None,
        };
        if order == Some(false) {
            return Err(BuildError::key(
                "warn_below",
                format!(
                    "warn_below {} is below fail_below {}: the warning could never show; swap them",
                    self.warn_below.map(|t| t.to_string()).unwrap_or_default(),
                    self.fail_below.map(|t| t.to_string()).unwrap_or_default()
                ),
            ));
        }
        Ok(Arc::new(self))
    }
}

/// What `statvfs` said.
#[derive(Debug, Clone, Copy)]
struct Free {
    /// Bytes an unprivileged process can still write.
    available: u64,
    /// Bytes in use.
    used: u64,
    /// Bytes in the filesystem.
    total: u64,
    /// Free inodes and all inodes (0 when the filesystem has no fixed table).
    inodes_free: u64,
    inodes: u64,
}

impl Free {
    fn percent(&self) -> f64 {
        let usable = self.used + self.available;
        if usable == 0 {
            0.0
        } else {
            self.available as f64 * 100.0 / usable as f64
        }
    }
}

fn statvfs(path: &std::path::Path) -> nix::Result<Free> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let frsize = s.fragment_size() as u64;
    let blocks = s.blocks() as u64;
    let free = s.blocks_free() as u64;
    let available = s.blocks_available() as u64;
    Ok(Free {
        available: available * frsize,
        used: blocks.saturating_sub(free) * frsize,
        total: blocks * frsize,
        inodes_free: s.files_available() as u64,
        inodes: s.files() as u64,
    })
}

impl Check for DiskConfig {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let what = format!("disk {}", self.path.display());
            let path = self.path.clone();
            // statvfs blocks, and on a hung network filesystem it may never return.
            let task = tokio::task::spawn_blocking(move || statvfs(&path));
            let free = match tokio::time::timeout_at(cx.deadline(), task).await {
                Err(_) => {
                    return Outcome::fail(format!(
                        "{what}: statvfs did not return within {} (the check's timeout); is the filesystem (NFS, a FUSE mount) hung?",
                        vitalis_core::duration::format(cx.timeout())
                    ));
                }
                Ok(Err(e)) => return Outcome::unknown(format!("{what}: statvfs panicked: {e}")),
                Ok(Ok(Err(e))) => {
                    let hint = match e {
                        nix::errno::Errno::ENOENT => {
                            "the path does not exist; is it right, and is the filesystem mounted?"
                        }
                        nix::errno::Errno::EACCES => {
                            "Vitalis' user may not reach it; it needs search permission on its directories"
                        }
                        _ => "look at the path and its filesystem",
                    };
                    return Outcome::fail(format!(
                        "{what}: cannot read the filesystem: {e}; {hint}"
                    ));
                }
                Ok(Ok(Ok(free))) => free,
            };
            self.judge(&what, &free)
        })
    }
}

impl DiskConfig {
    fn judge(&self, what: &str, free: &Free) -> Outcome {
        let pct = free.percent();
        let summary = format!(
            "{} free of {} ({pct:.1}%)",
            format_bytes(free.available),
            format_bytes(free.total)
        );
        let inodes_pct =
            (free.inodes > 0).then(|| free.inodes_free as f64 * 100.0 / free.inodes as f64);
        let mut status = Status::Pass;
        let mut problems = Vec::new();
        for (level, key, threshold) in [
            (Status::Fail, "fail_below", self.fail_below),
            (Status::Warn, "warn_below", self.warn_below),
        ] {
            if let Some(t) = threshold
                && !t.holds(free)
                && status == Status::Pass
            {
                status = level;
                problems.push(format!("{summary}, below {key} {t}"));
            }
        }
        if free.inodes > 0 && free.inodes_free == 0 {
            status = Status::Fail;
            problems.push(format!(
                "no free inodes left (of {}): no file can be created; look for directories with very many small files",
                free.inodes
            ));
        }
        let mut outcome = if problems.is_empty() {
            let mut text = format!("{what}: {summary}");
            if let Some(i) = inodes_pct {
                text.push_str(&format!(", inodes {i:.1}% free"));
            }
            Outcome::pass(text)
        } else {
            let message = format!(
                "{what}: {}; free space (old logs, backups, WAL or temp files) or grow the filesystem",
                problems.join("; ")
            );
            match status {
                Status::Warn => Outcome::warn(message),
                _ => Outcome::fail(message),
            }
        };
        let by_size = matches!(
            self.fail_below.or(self.warn_below),
            Some(Threshold::Bytes(_))
        );
        outcome = if by_size {
            outcome.observed(free.available as f64, "bytes")
        } else {
            outcome.observed((pct * 100.0).round() / 100.0, "percent")
        };
        let perf = |label: &str, value: f64, unit: &str, max: Option<f64>| Perfdata {
            label: label.into(),
            value,
            unit: unit.into(),
            warn: None,
            crit: None,
            min: Some(0.0),
            max,
        };
        outcome.perfdata.push(perf(
            "free",
            free.available as f64,
            "B",
            Some(free.total as f64),
        ));
        outcome
            .perfdata
            .push(perf("free_percent", pct, "%", Some(100.0)));
        if let Some(i) = inodes_pct {
            outcome
                .perfdata
                .push(perf("inodes_free_percent", i, "%", Some(100.0)));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn build(path: &str, rest: &str) -> Arc<dyn Check> {
        let mut t: toml::Table = toml::from_str(rest).unwrap();
        t.insert("path".into(), path.into());
        crate::kind("disk")
            .unwrap()
            .build(t, &BuildCx::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn run(path: &str, rest: &str) -> Outcome {
        build(path, rest)
            .run(CheckCx::new(Duration::from_secs(5)))
            .await
    }

    #[tokio::test]
    async fn measures_the_real_filesystem_against_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let real = statvfs(dir.path()).unwrap();
        assert!(real.total > 0 && real.available <= real.total);

        let o = run(path, "warn_below = \"0%\"\nfail_below = \"0%\"").await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(o.observed_unit.as_deref(), Some("percent"));
        let pct = o.observed_value.unwrap();
        assert!((0.0..=100.0).contains(&pct));
        assert!(
            o.output.starts_with(&format!("disk {path}: ")) && o.output.contains(" free of "),
            "{}",
            o.output
        );

        // Thresholds above what is free: warn, then fail.
        let o = run(path, "warn_below = \"100%\"").await;
        assert_eq!(o.status, Status::Warn, "{o:?}");
        let err = o.error.unwrap();
        assert!(err.contains("below warn_below 100%"), "{err}");
        assert!(err.contains("free space (old logs"), "{err}");
        let o = run(path, "warn_below = \"100%\"\nfail_below = \"100%\"").await;
        assert_eq!(o.status, Status::Fail);
        assert!(o.error.unwrap().contains("below fail_below 100%"));

        // Sizes: bytes are observed.
        let o = run(path, "fail_below = \"1000TiB\"").await;
        assert_eq!(o.status, Status::Fail);
        assert_eq!(o.observed_unit.as_deref(), Some("bytes"));
        assert!(o.error.unwrap().contains("below fail_below 1000.0 TiB"));
        let o = run(path, "warn_below = \"1MB\"\nfail_below = 1").await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        let free = o.observed_value.unwrap();
        assert!(free > 0.0);
        assert!(o.perfdata.iter().any(|p| p.label == "free_percent"));
    }

    #[tokio::test]
    async fn a_missing_path_fails_clearly() {
        let o = run("/nonexistent/vitalis/disk", "fail_below = \"5%\"").await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.starts_with("disk /nonexistent/vitalis/disk: cannot read the filesystem"),
            "{err}"
        );
        assert!(err.contains("the path does not exist"), "{err}");
    }

    #[test]
    fn thresholds_parse_and_are_checked() {
        assert_eq!(Threshold::parse("10%").unwrap(), Threshold::Percent(10.0));
        assert_eq!(
            Threshold::parse("5GiB").unwrap(),
            Threshold::Bytes(Size(5 << 30))
        );
        assert!(Threshold::parse("120%").is_err());
        assert!(Threshold::parse("lots").unwrap_err().contains("percentage"));
        let bad = |rest: &str| {
            let mut t: toml::Table = toml::from_str(rest).unwrap();
            t.insert("path".into(), "/".into());
            crate::kind("disk")
                .unwrap()
                .build(t, &BuildCx::default())
                .err()
                .unwrap()
        };
        let e = bad("warn_below = \"5%\"\nfail_below = \"10%\"");
        assert_eq!(e.key.as_deref(), Some("warn_below"));
        assert!(e.message.contains("swap them"));
        let e = bad("fail_below = \"ten percent\"");
        assert!(e.message.contains("not a size"), "{e}");
        let e = bad("free_below = \"10%\"");
        assert_eq!(e.key.as_deref(), Some("free_below"));
        let schema = serde_json::to_string(&schemars::schema_for!(DiskConfig)).unwrap();
        assert!(schema.contains("fail_below"));
    }

    #[test]
    fn an_exhausted_inode_table_fails() {
        let c: DiskConfig = toml::from_str("path = \"/\"").unwrap();
        let free = Free {
            available: 10 << 30,
            used: 10 << 30,
            total: 20 << 30,
            inodes_free: 0,
            inodes: 1000,
        };
        let o = c.judge("disk /", &free);
        assert_eq!(o.status, Status::Fail);
        assert!(o.error.unwrap().contains("no free inodes left"));
    }
}
