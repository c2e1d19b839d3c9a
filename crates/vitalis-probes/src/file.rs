//! `file`: existence, age and size of a file — or of the newest file in a
//! directory (backups, exports) — on the Vitalis host.
//!
//! ```toml
//! type = "file"
//! path = "/var/backups/postgres"
//! pattern = "backup-*.sql.gz"
//! max_age = "26h"
//! min_size = "10MiB"
//! ```
//!
//! * `path` a file: that file. `path` a directory: the newest file in it
//!   (by modification time, not recursive) whose name matches `pattern`
//!   (a glob: `*`, `?`, `[abc]`; names starting with `.` only match a
//!   pattern that starts with `.`), or the newest non-hidden file without
//!   `pattern`.
//! * Observed: the file's age in seconds (`s`).
//! * Failures name the file, its age, its modification time and size, and
//!   point at the job that should write it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use glob::{MatchOptions, Pattern};
use schemars::JsonSchema;
use serde::Deserialize;
use vitalis_core::{BoxFuture, Check, CheckCx, Outcome, Perfdata};

use crate::size::{Size, format_bytes};
use crate::{BuildCx, BuildError, ProbeConfig};

/// Checks the age and size of a file, or of the newest matching file in a directory.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// A file, or a directory to search with `pattern`.
    pub path: PathBuf,
    /// A glob for file names in the directory `path` (e.g. `backup-*.sql.gz`);
    /// the newest match is checked.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Fail when the file was last modified longer ago than this (e.g. `26h`).
    #[serde(default, with = "vitalis_core::duration::option")]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
    /// Fail when the file is smaller than this (`"10MiB"`, or bytes).
    #[serde(default)]
    pub min_size: Option<Size>,
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

impl ProbeConfig for FileConfig {
    const NAME: &'static str = "file";

    fn build(self, _cx: &BuildCx) -> Result<Arc<dyn Check>, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::key(
                "path",
                "path is empty; give a file or a directory",
            ));
        }
        let pattern = match &self.pattern {
            None => None,
            Some(p) if p.contains('/') => {
                return Err(BuildError::key(
                    "pattern",
                    format!(
                        "pattern '{p}' matches file names in path, so it cannot hold '/'; put the directory in path"
                    ),
                ));
            }
            Some(p) => Some(Pattern::new(p).map_err(|e| {
                BuildError::key(
                    "pattern",
                    format!("pattern '{p}' is not a glob ({e}); write it like backup-*.sql.gz"),
                )
            })?),
        };
        Ok(Arc::new(FileCheck {
            config: self,
            pattern,
        }))
    }
}

/// A compiled `file` check.
#[derive(Debug)]
struct FileCheck {
    config: FileConfig,
    pattern: Option<Pattern>,
}

/// The file that was found.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    modified: SystemTime,
    size: u64,
}

/// Why no file was found.
#[derive(Debug)]
enum NotFound {
    /// `path` is missing or unreadable.
    Path(std::io::Error),
    /// `path` is a file but `pattern` was given.
    NotADirectory,
    /// The directory holds no matching file; how many other files it holds.
    NoMatch { others: usize },
}

impl Check for FileCheck {
    fn run(&self, cx: CheckCx) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let what = format!("file {}", self.config.path.display());
            let path = self.config.path.clone();
            let pattern = self.pattern.clone();
            // Listing a directory blocks, and on a hung mount it may never return.
            let task = tokio::task::spawn_blocking(move || find(&path, pattern.as_ref()));
            match tokio::time::timeout_at(cx.deadline(), task).await {
                Err(_) => Outcome::fail(format!(
                    "{what}: reading it did not finish within {} (the check's timeout); is the filesystem (NFS, a FUSE mount) hung, or the directory huge?",
                    vitalis_core::duration::format(cx.timeout())
                )),
                Ok(Err(e)) => Outcome::unknown(format!("{what}: the search panicked: {e}")),
                Ok(Ok(Err(missing))) => Outcome::fail(self.not_found(&what, missing)),
                Ok(Ok(Ok(found))) => self.judge(&what, &found),
            }
        })
    }
}

/// The file to judge: `path` itself, or the newest match in it.
fn find(path: &Path, pattern: Option<&Pattern>) -> Result<Found, NotFound> {
    let meta = std::fs::metadata(path).map_err(NotFound::Path)?;
    if !meta.is_dir() {
        if pattern.is_some() {
            return Err(NotFound::NotADirectory);
        }
        return Ok(Found {
            path: path.to_path_buf(),
            modified: meta.modified().map_err(NotFound::Path)?,
            size: meta.len(),
        });
    }
    let mut newest: Option<Found> = None;
    let mut others = 0;
    for entry in std::fs::read_dir(path).map_err(NotFound::Path)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let matches = match pattern {
            Some(p) => p.matches_with(&name, OPTIONS),
            None => !name.starts_with('.'),
        };
        // Follows symlinks: a `latest` link to a backup counts as that file.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if !matches {
            others += 1;
            continue;
        }
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if newest.as_ref().is_none_or(|n| modified > n.modified) {
            newest = Some(Found {
                path: entry.path(),
                modified,
                size: meta.len(),
            });
        }
    }
    newest.ok_or(NotFound::NoMatch { others })
}

/// `2d 3h`, `4m 12s`, `850ms`: an age, coarsely.
fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) if secs == 0 => format!("{}ms", age.as_millis()),
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn timestamp(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.round(jiff::Unit::Second).unwrap_or(ts).to_string())
        .unwrap_or_else(|_| "an unreadable time".into())
}

impl FileCheck {
    fn which(&self) -> String {
        match &self.config.pattern {
            Some(p) => format!("newest {p}"),
            None => "newest file".into(),
        }
    }

    fn not_found(&self, what: &str, missing: NotFound) -> String {
        match missing {
            NotFound::Path(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "{what}: does not exist; has the job that writes it ever run, is the path right, and is its filesystem mounted?"
            ),
            NotFound::Path(e) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
                "{what}: permission denied; Vitalis' user needs to read it (and search its directories)"
            ),
            NotFound::Path(e) => format!("{what}: cannot read it: {e}"),
            NotFound::NotADirectory => format!(
                "{what}: is a file, but pattern '{}' needs a directory; set path to the directory, or remove pattern",
                self.config.pattern.as_deref().unwrap_or("")
            ),
            NotFound::NoMatch { others } => {
                let matching = match &self.config.pattern {
                    Some(p) => format!("no file matches {p}"),
                    None => "no file in it".into(),
                };
                format!(
                    "{what}: {matching} ({others} other file{}); has the job that writes there (the backup or export job) ever run? look at its schedule and its log",
                    if others == 1 { "" } else { "s" }
                )
            }
        }
    }

    fn judge(&self, what: &str, f: &Found) -> Outcome {
        let age = SystemTime::now()
            .duration_since(f.modified)
            .unwrap_or(Duration::ZERO);
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| f.path.display().to_string());
        let subject = if f.path == self.config.path {
            String::new()
        } else {
            format!("{} is {name}, ", self.which())
        };
        let facts = format!(
            "{subject}{} old (modified {}), {}",
            age_text(age),
            timestamp(f.modified),
            format_bytes(f.size)
        );
        let mut problems = Vec::new();
        if let Some(max) = self.config.max_age
            && age > max
        {
            problems.push(format!(
                "over max_age {}; is the job that writes it (the backup or export job) still running? look at its schedule (cron, systemd timer) and its log",
                vitalis_core::duration::format(max)
            ));
        }
        if let Some(min) = self.config.min_size
            && f.size < min.0
        {
            problems.push(format!(
                "under min_size {}; the job may have failed while writing it, or written nothing: look at its log and at free space",
                format_bytes(min.0)
            ));
        }
        let mut outcome = if problems.is_empty() {
            Outcome::pass(format!("{what}: {facts}"))
        } else {
            Outcome::fail(format!("{what}: {facts}, {}", problems.join("; and ")))
        };
        outcome.perfdata.push(Perfdata {
            label: "size".into(),
            value: f.size as f64,
            unit: "B".into(),
            warn: None,
            crit: None,
            min: Some(0.0),
            max: None,
        });
        outcome.observed(age.as_secs_f64().round(), "s")
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use vitalis_core::Status;

    use super::*;

    fn build(path: &Path, rest: &str) -> Arc<dyn Check> {
        let mut t: toml::Table = toml::from_str(rest).unwrap();
        t.insert("path".into(), path.to_str().unwrap().into());
        crate::kind("file")
            .unwrap()
            .build(t, &BuildCx::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn run(path: &Path, rest: &str) -> Outcome {
        build(path, rest)
            .run(CheckCx::new(Duration::from_secs(5)))
            .await
    }

    /// A file of `size` bytes modified `age` ago.
    fn write(dir: &Path, name: &str, size: usize, age: Duration) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, vec![b'x'; size]).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        path
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn the_newest_matching_backup_is_judged_by_age_and_size() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "backup-1.sql.gz", 5000, 50 * HOUR);
        write(dir.path(), "backup-2.sql.gz", 4000, 2 * HOUR);
        write(dir.path(), "notes.txt", 10, Duration::ZERO);
        write(dir.path(), ".backup-3.sql.gz", 10, Duration::ZERO);
        std::fs::create_dir(dir.path().join("backup-old.sql.gz")).unwrap();
        let rules = "pattern = \"backup-*.sql.gz\"\nmax_age = \"26h\"\nmin_size = \"1KiB\"";
        let o = run(dir.path(), rules).await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.output
                .contains(": newest backup-*.sql.gz is backup-2.sql.gz, 2h 0m old (modified 20"),
            "{}",
            o.output
        );
        assert!(o.output.ends_with(", 3.9 KiB"), "{}", o.output);
        assert_eq!(o.observed_unit.as_deref(), Some("s"));
        assert!((7199.0..7300.0).contains(&o.observed_value.unwrap()));

        // Too old.
        let o = run(
            dir.path(),
            "pattern = \"backup-*.sql.gz\"\nmax_age = \"1h\"",
        )
        .await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(err.contains("backup-2.sql.gz, 2h 0m old"), "{err}");
        assert!(err.contains("over max_age 1h; is the job that writes it (the backup or export job) still running?"), "{err}");

        // Too small.
        write(dir.path(), "backup-3.sql.gz", 0, Duration::from_secs(60));
        let o = run(dir.path(), rules).await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(err.contains("backup-3.sql.gz, 1m 0s old"), "{err}");
        assert!(
            err.contains(", 0 B, under min_size 1.0 KiB; the job may have failed while writing it"),
            "{err}"
        );

        // Without a pattern: the newest non-hidden file.
        let o = run(dir.path(), "").await;
        assert!(
            o.output.contains("newest file is notes.txt"),
            "{}",
            o.output
        );

        // Nothing matches.
        let o = run(dir.path(), "pattern = \"dump-*.tar\"").await;
        let err = o.error.unwrap();
        assert!(
            err.contains(
                "no file matches dump-*.tar (5 other files); has the job that writes there"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_single_file_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "export.csv", 100, 3 * HOUR);
        let o = run(&f, "max_age = \"1d\"\nmin_size = 10").await;
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.output
                .starts_with(&format!("file {}: 3h 0m old", f.display())),
            "{}",
            o.output
        );

        let o = run(&f, "pattern = \"*.csv\"").await;
        assert!(
            o.error
                .unwrap()
                .contains("pattern '*.csv' needs a directory")
        );

        let missing = dir.path().join("gone.csv");
        let o = run(&missing, "").await;
        assert_eq!(o.status, Status::Fail);
        let err = o.error.unwrap();
        assert!(
            err.contains("gone.csv: does not exist; has the job that writes it ever run"),
            "{err}"
        );

        std::fs::remove_file(&f).unwrap();
        let o = run(dir.path(), "").await;
        assert!(o.error.unwrap().contains("no file in it (0 other files)"));
    }

    #[test]
    fn config_errors_and_helpers() {
        let bad = |rest: &str| {
            let mut t: toml::Table = toml::from_str(rest).unwrap();
            t.insert("path".into(), "/tmp".into());
            crate::kind("file")
                .unwrap()
                .build(t, &BuildCx::default())
                .err()
                .unwrap()
        };
        assert_eq!(bad("pattern = \"a/*.gz\"").key.as_deref(), Some("pattern"));
        assert_eq!(bad("pattern = \"[\"").key.as_deref(), Some("pattern"));
        assert!(bad("min_size = \"big\"").message.contains("not a size"));
        assert!(
            bad("max_age = \"forever\"")
                .message
                .contains("not a duration")
        );
        assert_eq!(bad("glob = \"*\"").key.as_deref(), Some("glob"));
        assert_eq!(
            age_text(Duration::from_secs(2 * 86400 + 3 * 3600 + 5)),
            "2d 3h"
        );
        assert_eq!(age_text(Duration::from_millis(850)), "850ms");
        assert_eq!(age_text(Duration::from_secs(75)), "1m 15s");
        let schema = serde_json::to_string(&schemars::schema_for!(FileConfig)).unwrap();
        assert!(schema.contains("min_size"));
    }
}
