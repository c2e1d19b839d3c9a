//! Lanes: where checks that may block their thread run ([`Check::may_block`],
//! closures by default), each run on a thread of tokio's blocking pool, so
//! that a blocking run never stalls the workers that other checks share.
//!
//! A task of the blocking pool per run would cost two thread wake-ups per
//! run. A lane instead is one blocking-pool task that takes queued runs one
//! after the other until the queue is empty. Isolation is kept by one rule:
//! whenever a lane starts a run while more are queued, some lane is looking
//! for work (a *searcher*), and if none is, it starts one. A run that blocks
//! its lane therefore holds that lane alone; the runs queued behind it go to
//! the searcher. A burst of quick runs costs a few wake-ups, not two per run.
//!
//! [`Check::may_block`]: crate::Check::may_block

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// What a run on a lane ended with: its output, or the panic it raised.
pub(crate) type Ended<T> = std::thread::Result<T>;

type Job = Box<dyn FnOnce() + Send>;

/// The lanes of one engine.
pub(crate) struct Lanes {
    /// The check runtime: lanes are its blocking-pool tasks, and runs are
    /// driven inside it (its timers and I/O).
    handle: Handle,
    state: Mutex<State>,
}

struct State {
    jobs: VecDeque<Job>,
    /// Lanes started or between runs, about to look at the queue.
    searching: usize,
}

/// Tells whether a run handed to the lanes has returned (a run abandoned at
/// its timeout may still hold its thread).
#[derive(Clone)]
pub(crate) struct Returned(Arc<AtomicBool>);

impl Returned {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Lanes {
    pub(crate) fn new(handle: Handle) -> Arc<Self> {
        Arc::new(Lanes {
            handle,
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                searching: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `body` on a lane, inside the check runtime. The receiver gets
    /// its output (or its panic); it is dropped unsent only if the runtime
    /// shut down first.
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        body: F,
    ) -> (oneshot::Receiver<Ended<F::Output>>, Returned)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let returned = Returned(Arc::new(AtomicBool::new(false)));
        let done = returned.clone();
        let handle = self.handle.clone();
        let job: Job = Box::new(move || {
            let ended = catch_unwind(AssertUnwindSafe(|| handle.block_on(body)));
            done.0.store(true, Ordering::Release);
            let _ = tx.send(ended);
        });
        let mut st = self.lock();
        st.jobs.push_back(job);
        let start = st.searching == 0;
        if start {
            st.searching += 1;
        }
        drop(st);
        if start {
            self.start_lane();
        }
        (rx, returned)
    }

    fn start_lane(self: &Arc<Self>) {
        let lanes = self.clone();
        // Dropped unstarted only when the runtime shuts down.
        drop(self.handle.spawn_blocking(move || lanes.lane()));
    }

    /// One lane: takes queued runs until there are none.
    fn lane(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            st.searching -= 1;
            let Some(job) = st.jobs.pop_front() else {
                return;
            };
            // This run may block: the runs behind it need a searcher.
            let start = !st.jobs.is_empty() && st.searching == 0;
            if start {
                st.searching += 1;
            }
            drop(st);
            if start {
                self.start_lane();
            }
            job();
            st = self.lock();
            st.searching += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn runs_every_job_and_reports_panics() {
        let lanes = Lanes::new(Handle::current());
        let ran = Arc::new(AtomicUsize::new(0));
        let mut waits = Vec::new();
        for i in 0..200usize {
            let ran = ran.clone();
            waits.push(lanes.spawn(async move {
                ran.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
                assert!(i != 7, "job seven panics");
                i
            }));
        }
        for (i, (rx, returned)) in waits.into_iter().enumerate() {
            let ended = rx.await.expect("sent");
            assert!(returned.get());
            if i == 7 {
                assert!(ended.is_err());
            } else {
                assert_eq!(ended.ok(), Some(i));
            }
        }
        assert_eq!(ran.load(Ordering::Relaxed), 200);
        assert_eq!(lanes.lock().searching, 0, "every lane ended");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_run_that_blocks_its_thread_holds_only_its_lane() {
        let lanes = Lanes::new(Handle::current());
        let release = Arc::new(AtomicBool::new(false));
        let mut blocked = Vec::new();
        // Several runs that block their threads (no await), queued first.
        for _ in 0..3 {
            let release = release.clone();
            blocked.push(lanes.spawn(async move {
                while !release.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }
        // Were they queued behind the blocked runs, this would never end.
        let quick: Vec<_> = (0..50).map(|i| lanes.spawn(async move { i })).collect();
        let all_quick = async {
            for (i, (rx, _)) in quick.into_iter().enumerate() {
                assert_eq!(rx.await.expect("sent").ok(), Some(i));
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all_quick)
            .await
            .expect("quick runs stuck behind runs that block their threads");
        for (_, returned) in &blocked {
            assert!(!returned.get(), "still blocked");
        }
        release.store(true, Ordering::Release);
        for (rx, returned) in blocked {
            rx.await.expect("sent").expect("no panic");
            assert!(returned.get());
        }
    }
}
