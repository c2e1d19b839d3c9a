//! The history store against real databases: SQLite files in temp dirs and
//! a real PostgreSQL (vitalis-testkit). Every scenario runs on both.

mod scenarios;
mod support;

use support::Backend;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::scenarios::$name(super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::scenarios::$name(super::Backend::postgres()).await;
                }
            )*
        }
    };
}

on_both!(
    records_an_engine_and_answers_newest_first,
    filters_by_time_and_check_and_limits,
    rollups_match_figures_computed_here,
    retention_prunes_what_is_past_it,
    uptime_counts_time_between_sessions_as_no_data,
    reopening_keeps_history_and_migrates_once,
    a_gap_in_the_event_log_is_restated_from_a_snapshot,
);

/// SQLite locked by another process mid-run, with a small buffer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_fails_the_store_check_then_catches_up() {
    scenarios::sqlite_locked(Backend::sqlite()).await;
}

/// SQLite whose directory does not exist at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_directory_missing_at_start_then_created() {
    scenarios::sqlite_missing_directory().await;
}

/// PostgreSQL tables locked by another session mid-run, then released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_locked_fails_the_store_check_then_catches_up() {
    scenarios::postgres_locked().await;
}

/// PostgreSQL stopped mid-run, then started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_fails_the_store_check_then_catches_up() {
    scenarios::postgres_stopped().await;
}
