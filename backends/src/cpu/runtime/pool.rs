//! A persistent worker pool for splitting one kernel call over N threads.
//!
//! `rayon::scope` per GEMV costs a task handoff (tens of µs) per call, which
//! is as long as a small decode GEMV itself. Here the N − 1 workers live for
//! the whole runtime: [`Pool::run`] publishes a job of `chunks` pieces under
//! a new generation number, the workers spin briefly (then park) waiting for
//! it, and every thread including the caller *claims* chunks from a shared
//! counter (tagged with the generation, so a late worker can never claim a
//! chunk of a newer job). A worker the OS has not scheduled yet therefore
//! costs nothing: the caller runs its chunks. The caller returns once every
//! chunk is done. A panicking chunk is caught and reported as an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{JoinHandle, Thread};

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    generation: AtomicUsize,
    /// `generation << 32 | next chunk` of the current job.
    next: std::sync::atomic::AtomicU64,
    /// Chunks of the current job finished.
    done: AtomicUsize,
    /// Chunks of the current job.
    chunks: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    /// The current job; written by the caller before `generation` is bumped
    /// (Release) and read by workers after they observe it (Acquire).
    job: std::sync::Mutex<Option<SendJob>>,
}

#[derive(Clone, Copy)]
struct SendJob(Job);
// SAFETY: the pointee is `Sync`, and `Pool::run` does not return before every
// worker has finished with it.
unsafe impl Send for SendJob {}

/// Spin iterations before a waiting worker parks.
const SPIN: usize = 1 << 14;

/// A fixed set of threads that run one job at a time together with the caller.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(Thread, JoinHandle<()>)>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads())
    }
}

impl Pool {
    /// A pool of `threads` threads in all (the caller counts as one).
    pub fn new(threads: usize) -> Result<Self, String> {
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            next: std::sync::atomic::AtomicU64::new(0),
            done: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            job: std::sync::Mutex::new(None),
        });
        let mut workers = Vec::new();
        for index in 1..threads.max(1) {
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("flexc-cpu-{index}"))
                .spawn(move || worker(sh, index))
                .map_err(|e| format!("cannot start worker thread: {e}"))?;
            workers.push((h.thread().clone(), h));
        }
        Ok(Self { shared, workers })
    }

    /// Number of threads, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(c)` for every chunk `c` in `0..chunks`, spread over the
    /// pool's threads (the caller included) in any order.
    pub fn run(&self, chunks: usize, job: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        if self.workers.is_empty() || chunks <= 1 {
            return catch_unwind(AssertUnwindSafe(|| (0..chunks).for_each(job))).map_err(|_| "a kernel panicked".to_string());
        }
        // SAFETY: erase the lifetime; workers use the pointer only for chunks
        // they claimed in this generation, and we wait for all of them below.
        let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(job) };
        let sh = &self.shared;
        let generation = sh.generation.load(Ordering::Relaxed).wrapping_add(1);
        *sh.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(SendJob(ptr));
        sh.done.store(0, Ordering::Relaxed);
        sh.chunks.store(chunks, Ordering::Relaxed);
        sh.next.store(((generation as u64) & 0xffff_ffff) << 32, Ordering::Release);
        sh.generation.store(generation, Ordering::Release);
        for (t, _) in &self.workers {
            t.unpark();
        }
        let ok = claim_loop(sh, generation, ptr);
        let mut spins = 0usize;
        while sh.done.load(Ordering::Acquire) < chunks {
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        if !ok || sh.panicked.swap(false, Ordering::Relaxed) {
            return Err("a kernel panicked".into());
        }
        Ok(())
    }
}

/// Claims and runs chunks of generation `generation` until none is left.
/// Returns false if a chunk panicked.
fn claim_loop(sh: &Shared, generation: usize, job: Job) -> bool {
    let tag = ((generation as u64) & 0xffff_ffff) << 32;
    let chunks = sh.chunks.load(Ordering::Acquire) as u64;
    let mut ok = true;
    loop {
        let cur = sh.next.load(Ordering::Acquire);
        if cur & !0xffff_ffff != tag || (cur & 0xffff_ffff) >= chunks {
            return ok;
        }
        if sh.next.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            continue;
        }
        let c = (cur & 0xffff_ffff) as usize;
        // SAFETY: the chunk was claimed in `generation`, whose `Pool::run`
        // keeps the job alive until every claimed chunk is done.
        let f = unsafe { &*job };
        if catch_unwind(AssertUnwindSafe(|| f(c))).is_err() {
            ok = false;
        }
        sh.done.fetch_add(1, Ordering::Release);
    }
}

fn worker(sh: Arc<Shared>, _index: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0usize;
        let g = loop {
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            let g = sh.generation.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park_timeout(std::time::Duration::from_millis(50));
            }
        };
        seen = g;
        let job = *sh.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(SendJob(ptr)) = job {
            // The pointer is only dereferenced for chunks claimed under
            // generation `g` (see `claim_loop`); a stale `g` claims none.
            if !claim_loop(&sh, g, ptr) {
                sh.panicked.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for (t, h) in self.workers.drain(..) {
            t.unpark();
            let _ = h.join();
        }
    }
}
