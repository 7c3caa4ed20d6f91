//! The worker threads that run a kernel's row ranges beside the calling thread.
//!
//! Workers start on first use and live for the process. A training step runs dozens of
//! kernels of a few microseconds each, so handing out a range must cost far less than waking
//! a sleeping thread: after each job a worker watches its slot for the next one for
//! [`WATCH`], and only then sleeps (`park`); the calling thread watches the workers' done
//! counters the same way. One caller uses the workers at a time (the pool's lock); a caller
//! that finds them busy runs every range itself, which gives the same bits (a range's rows
//! are computed the same way whichever thread computes them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// A kernel's code over the rows `lo..hi`: `code(env, lo, hi)`.
pub type Code = unsafe extern "C" fn(*const u64, u64, u64);

/// How long a worker keeps watching for its next job before it sleeps.
const WATCH: Duration = Duration::from_micros(200);

#[derive(Clone, Copy)]
struct Job {
    code: Code,
    env: usize,
    rows: (u64, u64),
}

/// One worker's mailbox: the caller writes `job`, then bumps `posted`; the worker bumps
/// `finished` to the same count once the job's call has returned.
struct Slot {
    job: Mutex<Option<Job>>,
    posted: AtomicU64,
    finished: AtomicU64,
    sleeping: AtomicBool,
}

struct Worker {
    slot: Arc<Slot>,
    thread: Thread,
}

static POOL: Mutex<Vec<Worker>> = Mutex::new(Vec::new());

/// Runs `code(env, lo, hi)` for every range of `ranges`: the first on the calling thread,
/// the others on workers (starting them as needed), or on the calling thread where no
/// worker is free; returns once every call has returned.
///
/// # Safety
/// `code` must be safe to call with `env` and each range, concurrently for different ranges,
/// and `env` (with the buffers it points to) must stay valid until this returns.
pub unsafe fn run_ranges(code: Code, env: *const u64, ranges: &[(u64, u64)]) {
    let mut pool = match POOL.try_lock() {
        Ok(pool) => Some(pool),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(pool) = pool.as_mut() {
        start_workers(pool, ranges.len().saturating_sub(1));
    }
    let workers = pool.as_deref().map_or(&[][..], |p| p.as_slice());
    let handed: Vec<(&Worker, u64)> = workers
        .iter()
        .zip(ranges.iter().skip(1))
        .map(|(worker, &rows)| (worker, post(worker, Job { code, env: env as usize, rows })))
        .collect();
    let unhanded = ranges.iter().take(1).chain(ranges.iter().skip(1 + handed.len()));
    for &(lo, hi) in unhanded {
        // SAFETY: the caller's contract.
        unsafe { code(env, lo, hi) };
    }
    for (worker, ticket) in handed {
        watch(|| worker.slot.finished.load(Ordering::Acquire) == ticket);
    }
}

/// Starts workers until there are `n` (fewer if a thread cannot start).
fn start_workers(pool: &mut Vec<Worker>, n: usize) {
    while pool.len() < n {
        let slot = Arc::new(Slot {
            job: Mutex::new(None),
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
        });
        let mine = slot.clone();
        let started = std::thread::Builder::new()
            .name("qc-jit-worker".into())
            .spawn(move || serve(&mine));
        let Ok(handle) = started else { return };
        pool.push(Worker { slot, thread: handle.thread().clone() });
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
        if let Some(Job { code, env, rows: (lo, hi) }) = job {
            // SAFETY: `run_ranges`'s caller keeps `env` valid until `finished` reports.
            unsafe { code(env as *const u64, lo, hi) };
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
