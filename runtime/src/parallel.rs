//! The process's worker threads: runs independent tasks (a JIT kernel's row ranges, the
//! optimizer's slices of a parameter) beside the calling thread, each thread taking the next
//! task left, so that a thread slowed down (by its caches, by another process) takes fewer.
//!
//! Workers start on first use and live for the process. A training step runs dozens of
//! kernels of a few microseconds each, so handing out a task must cost far less than waking
//! a sleeping thread: after each task a worker watches its slot for the next one for
//! [`WATCH`], and only then sleeps (`park`); the calling thread watches the workers' done
//! counters the same way. One caller uses the workers at a time (the pool's lock); a caller
//! that finds them busy runs every task itself. Callers split work so that no result depends
//! on which thread runs a task, which gives the same bits on any thread count. A task that
//! panics (on any thread) makes the call panic once every task has returned.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a worker keeps watching for its next job before it sleeps.
const WATCH: Duration = Duration::from_micros(200);

/// A worker's part of a [`run_tasks`] call, its lifetime erased: `run_tasks` waits for every
/// job it posted before it returns, so the closure outlives each use.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure is `Sync` (shared by reference across threads) and outlives the job.
unsafe impl Send for Job {}

/// One worker's mailbox: the caller writes `job`, then bumps `posted`; the worker bumps
/// `finished` to the same count once the job's call has returned.
struct Slot {
    job: Mutex<Option<Job>>,
    posted: AtomicU64,
    finished: AtomicU64,
    sleeping: AtomicBool,
    /// Whether the last job panicked (the worker catches it and lives on).
    panicked: AtomicBool,
}

struct Worker {
    slot: Arc<Slot>,
    thread: Thread,
}

static POOL: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

/// The thread count for parallel work: `QC_THREADS` if set to a positive number, else every
/// available core.
pub fn threads() -> usize {
    std::env::var("QC_THREADS")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `task(i)` for every `i < n` on the calling thread and up to `threads − 1` workers
/// (started as needed; fewer where they are busy), each taking the next `i` not yet taken
/// until none is left; returns once every task has returned.
pub fn run_tasks(threads: usize, n: usize, task: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    let drain = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        task(i);
    };
    let helpers = threads.min(n).saturating_sub(1);
    let mut pool = match POOL.try_lock() {
        Ok(pool) => Some(pool),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(pool) = pool.as_mut() {
        start_workers(pool, helpers);
    }
    let drain_ref: &(dyn Fn() + Sync) = &drain;
    // SAFETY (of the erased lifetime): every posted job is waited for below.
    let job = Job(unsafe {
        std::mem::transmute::<&(dyn Fn() + Sync), &'static (dyn Fn() + Sync)>(drain_ref)
    });
    let workers = pool.as_deref().map_or(&[][..], |p| p.as_slice());
    let handed = Handed(
        workers
            .iter()
            .take(helpers)
            .map(|w| (w, post(w, job)))
            .collect(),
    );
    drain();
    drop(handed);
    let panicked = workers
        .iter()
        .take(helpers)
        .any(|w| w.slot.panicked.swap(false, Ordering::AcqRel));
    if panicked {
        panic!("a parallel task panicked on a worker thread");
    }
}

/// The workers a [`run_tasks`] call posted to, with their tickets: dropping it waits for each
/// to finish, also when the calling thread's own tasks unwind, so that no worker still runs
/// the call's closure once its frame is gone.
struct Handed<'a>(Vec<(&'a Worker, u64)>);

impl Drop for Handed<'_> {
    fn drop(&mut self) {
        for &(worker, ticket) in &self.0 {
            watch(|| worker.slot.finished.load(Ordering::Acquire) == ticket);
        }
    }
}

/// Hands each of `items` to `work`, as [`run_tasks`] does.
pub fn for_each<T: Send>(threads: usize, items: Vec<T>, work: impl Fn(T) + Sync) {
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    run_tasks(threads, items.len(), &|i| {
        let item = items[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(item) = item {
            work(item);
        }
    });
}

/// Starts workers until there are `n` (fewer if a thread cannot start).
fn start_workers(pool: &mut Vec<Worker>, n: usize) {
    while pool.len() < n {
        let slot = Arc::new(Slot {
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        });
        let mine = slot.clone();
        let started = std::thread::Builder::new()
            .name("qc-jit-worker".into())
            .spawn(move || serve(&mine));
        let Ok(handle) = started else { return };
        pool.push(Worker {
            slot,
            thread: handle.thread().clone(),
        });
    }
}

/// Posts `job` to `worker`; returns the `finished` count that reports it done.
fn post(worker: &Worker, job: Job) -> u64 {
    let slot = &worker.slot;
    *slot.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
    let ticket = slot.posted.fetch_add(1, Ordering::SeqCst) + 1;
    // With `serve`'s store of `sleeping` before its last look at `posted` (both SeqCst),
    // either the worker sees the new job or this sees it asleep and wakes it.
    if slot.sleeping.load(Ordering::SeqCst) {
        worker.thread.unpark();
    }
    ticket
}

/// A worker's loop: waits for each posted job, runs it, reports it done.
fn serve(slot: &Slot) {
    let mut seen = 0;
    loop {
        let posted = wait_for_post(slot, seen);
        let job = slot.job.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Job(task)) = job {
            // SAFETY: `run_tasks` keeps the closure alive until `finished` reports.
            let run = std::panic::AssertUnwindSafe(|| unsafe { (*task)() });
            if std::panic::catch_unwind(run).is_err() {
                slot.panicked.store(true, Ordering::Release);
            }
        }
        seen = posted;
        slot.finished.store(seen, Ordering::Release);
    }
}

/// Watches `slot.posted` until it passes `seen`, sleeping once the watch is over.
fn wait_for_post(slot: &Slot, seen: u64) -> u64 {
    loop {
        let posted = || slot.posted.load(Ordering::Acquire) != seen;
        if watch_for(WATCH, posted) {
            return slot.posted.load(Ordering::Acquire);
        }
        slot.sleeping.store(true, Ordering::SeqCst);
        if slot.posted.load(Ordering::SeqCst) == seen {
            std::thread::park();
        }
        slot.sleeping.store(false, Ordering::SeqCst);
    }
}

/// Spins until `ready` holds (yielding the processor after a while, for a worker that was
/// descheduled).
fn watch(ready: impl Fn() -> bool) {
    while !watch_for(WATCH, &ready) {
        std::thread::yield_now();
    }
}

/// Spins for at most `limit` until `ready` holds; whether it did.
fn watch_for(limit: Duration, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > limit {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_on_any_thread_count() {
        for threads in [1, 2, 3, 8] {
            for n in [0, 1, 2, 7, 64] {
                let runs: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                run_tasks(threads, n, &|i| {
                    runs[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                    "{threads} threads, {n} tasks"
                );
            }
        }
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_after_every_task_has_returned() {
        for last in [0, 15] {
            let finished = AtomicUsize::new(0);
            let outcome = std::panic::catch_unwind(|| {
                run_tasks(2, 16, &|i| {
                    if i == last {
                        panic!("task {i}");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    finished.fetch_add(1, Ordering::Relaxed);
                })
            });
            assert!(outcome.is_err());
            // No task is still running once the call has unwound.
            let seen = finished.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(finished.load(Ordering::Relaxed), seen);
        }
        // The workers still serve.
        let sum = AtomicUsize::new(0);
        run_tasks(2, 10, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 45);
    }
}
