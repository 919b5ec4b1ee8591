//! A persistent worker pool for splitting one kernel call over N threads.
//!
//! `rayon::scope` per GEMV costs a task handoff (tens of µs) per call, which
//! is as long as a small decode GEMV itself. Here the N − 1 workers live for
//! the whole runtime: [`Pool::run`] publishes a job under a new generation
//! number, the workers spin briefly (then park) waiting for it, every thread
//! including the caller runs `job(index)`, and the caller spins until all
//! workers report done. A panicking job is caught in the worker and counted
//! as done, so the caller never hangs; the panic is reported as an error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{JoinHandle, Thread};

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    generation: AtomicUsize,
    done: AtomicUsize,
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
            done: AtomicUsize::new(0),
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

    /// Runs `job(i)` for `i` in `0..threads()`, index 0 on the calling thread.
    pub fn run(&self, job: &(dyn Fn(usize) + Sync)) -> Result<(), String> {
        if self.workers.is_empty() {
            return catch_unwind(AssertUnwindSafe(|| job(0))).map_err(|_| "a kernel panicked".to_string());
        }
        // SAFETY: erase the lifetime; the pointer is only used until every
        // worker has incremented `done`, which we wait for below.
        let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(job) };
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(SendJob(ptr));
        self.shared.done.store(0, Ordering::Relaxed);
        self.shared.generation.fetch_add(1, Ordering::Release);
        for (t, _) in &self.workers {
            t.unpark();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        let n = self.workers.len();
        let mut spins = 0usize;
        while self.shared.done.load(Ordering::Acquire) < n {
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *self.shared.job.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if mine.is_err() || self.shared.panicked.swap(false, Ordering::Relaxed) {
            return Err("a kernel panicked".into());
        }
        Ok(())
    }
}

fn worker(sh: Arc<Shared>, index: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0usize;
        loop {
            if sh.stop.load(Ordering::Acquire) {
                return;
            }
            let g = sh.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins += 1;
            if spins < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::park_timeout(std::time::Duration::from_millis(50));
            }
        }
        let job = *sh.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(SendJob(ptr)) = job {
            // SAFETY: see `Pool::run`: the caller keeps the job alive until
            // `done` reaches the worker count.
            let f = unsafe { &*ptr };
            if catch_unwind(AssertUnwindSafe(|| f(index))).is_err() {
                sh.panicked.store(true, Ordering::Relaxed);
            }
        }
        sh.done.fetch_add(1, Ordering::Release);
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
