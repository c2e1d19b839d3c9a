//! The `pool` of the `postgres` probe: idle connections kept between runs.
//!
//! Hand-written rather than sqlx's `Pool`, whose acquire retries refused
//! connects until its timeout and then reports only "pool timed out": a
//! health check must say *why* it could not connect. Checks with the same
//! URL, pool settings and timeout share one pool (so `max` bounds their
//! connections together). A connection is never reused past
//! `max_lifetime`; when a run fails — or is abandoned at the timeout —
//! every idle connection is dropped, so the next run connects fresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A pool of connections to one database.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) max: u32,
    max_lifetime: Duration,
    permits: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by [`Pool::reset`]: leases of an older generation are not returned.
    generation: u64,
    idle: Vec<Idle>,
}

#[derive(Debug)]
struct Idle {
    conn: PgConnection,
    opened: Instant,
}

/// A connection taken from the pool for one run. Dropped without
/// [`Lease::release`] (a failed or abandoned run), it resets the pool.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    conn: Option<PgConnection>,
    /// When the connection was opened.
    pub(crate) opened: Instant,
    generation: u64,
    _permit: OwnedSemaphorePermit,
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum AcquireError {
    /// All `max` connections are in use (by other checks sharing the pool).
    Exhausted,
    /// Opening a new connection failed.
    Connect(sqlx::Error),
}

// === impl Pool ===

impl Pool {
    /// The pool shared by checks with this `key` (the URL with its
    /// settings), created on first use.
    pub(crate) fn shared(key: String, max: u32, max_lifetime: Duration) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<HashMap<String, Weak<Pool>>>> = OnceLock::new();
        let mut pools = POOLS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pools.retain(|_, p| p.strong_count() > 0);
        if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
            return pool;
        }
        let pool = Arc::new(Pool {
            max,
            max_lifetime,
            permits: Arc::new(Semaphore::new(max as usize)),
            state: Mutex::default(),
        });
        pools.insert(key, Arc::downgrade(&pool));
        pool
    }

    /// An idle connection younger than `max_lifetime`, or a new one from
    /// `connect` (only polled when needed); waits for a free slot until
    /// `deadline`. The flag says whether the connection is new.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        connect: impl Future<Output = Result<PgConnection, sqlx::Error>>,
    ) -> Result<(Lease, bool), AcquireError> {
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| AcquireError::Exhausted)?
            .map_err(|_| AcquireError::Exhausted)?;
        let (reused, generation) = {
            let mut state = self.lock();
            let mut reused = None;
            while let Some(idle) = state.idle.pop() {
                if idle.opened.elapsed() < self.max_lifetime {
                    reused = Some(idle);
                    break;
                }
                close(idle.conn);
            }
            (reused, state.generation)
        };
        let (conn, opened, fresh) = match reused {
            Some(idle) => (idle.conn, idle.opened, false),
            None => (
                connect.await.map_err(AcquireError::Connect)?,
                Instant::now(),
                true,
            ),
        };
        Ok((
            Lease {
                pool: self.clone(),
                conn: Some(conn),
                opened,
                generation,
                _permit: permit,
            },
            fresh,
        ))
    }

    /// Drops every idle connection: the next run connects fresh.
    pub(crate) fn reset(&self) {
        let idle = {
            let mut state = self.lock();
            state.generation += 1;
            std::mem::take(&mut state.idle)
        };
        for i in idle {
            close(i.conn);
        }
    }

    /// `(open connections, idle connections)`.
    pub(crate) fn stats(&self) -> (usize, usize) {
        let idle = self.lock().idle.len();
        let in_use = self.max as usize - self.permits.available_permits();
        (idle + in_use, idle)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes a connection in the background (a `Terminate` message, then the
/// socket); outside a runtime it is just dropped.
fn close(conn: PgConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        });
    }
}

// === impl Lease ===

impl Lease {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until released or dropped")
    }

    /// Returns the connection after a successful run.
    pub(crate) fn release(mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut state = self.pool.lock();
        if state.generation == self.generation && self.opened.elapsed() < self.pool.max_lifetime {
            state.idle.push(Idle {
                conn,
                opened: self.opened,
            });
        } else {
            drop(state);
            close(conn);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A failed or abandoned run: this connection may be broken, and
            // so may the idle ones (a restarted server).
            drop(conn);
            self.pool.reset();
        }
    }
}
