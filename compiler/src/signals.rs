//! SIGINT, SIGTERM and SIGHUP: one handler for the whole process.
//!
//! `timeout`, `kill`, systemd and docker stop a process with SIGTERM, a
//! terminal with SIGINT or SIGHUP; flexc treats the three alike. Output files
//! are written to a temporary name first ([`crate::output`]), and the
//! temporaries being written are registered here, so the handler deletes
//! them before the process exits: a signal never leaves a `.NAME.partial-PID`
//! behind. Verbs that can stop cleanly (`run`, `perplexity`) ask for a
//! [`stop_flag`]: the first signal sets it and they finish with what they
//! have; a second signal exits at once. Exit code 130 either way.
//!
//! The handler runs on the `ctrlc` crate's own thread (not in signal
//! context), so it may lock, delete files and exit. It is installed on first
//! need (the first temporary written, or a [`stop_flag`]), not at start-up,
//! so a verb with its own handling (`serve`'s graceful shutdown on tokio's
//! signals) keeps it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Exit code after a signal (128 + SIGINT, the shell's convention).
pub const EXIT_SIGNALLED: i32 = 130;

/// Temporaries being written right now.
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set when a verb asked to stop cleanly on the first signal.
static GRACEFUL: AtomicBool = AtomicBool::new(false);

fn stop() -> &'static Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Installs the handler (once; later calls do nothing).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = ctrlc::set_handler(on_signal);
    });
}

fn on_signal() {
    // Holding the lock until exit keeps a writer from registering (and then
    // leaving) a new temporary while we clean up.
    let partials = PARTIALS.lock().unwrap_or_else(|p| p.into_inner());
    for p in partials.iter() {
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(p);
        } else {
            let _ = std::fs::remove_file(p);
        }
    }
    if GRACEFUL.load(Ordering::SeqCst) && !stop().swap(true, Ordering::SeqCst) {
        return;
    }
    std::process::exit(EXIT_SIGNALLED);
}

/// The flag the first signal sets, for a verb that stops cleanly (installs
/// the handler; from now on the first signal no longer exits).
pub fn stop_flag() -> Arc<AtomicBool> {
    install();
    GRACEFUL.store(true, Ordering::SeqCst);
    stop().clone()
}

/// A temporary file (or folder) the handler deletes if a signal arrives while this
/// guard lives; dropping the guard unregisters it (it does not delete it).
pub struct Partial {
    path: PathBuf,
}

impl Partial {
    /// Registers `path` (installs the handler).
    pub fn track(path: PathBuf) -> Partial {
        install();
        PARTIALS.lock().unwrap_or_else(|p| p.into_inner()).push(path.clone());
        Partial { path }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let mut v = PARTIALS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = v.iter().position(|p| *p == self.path) {
            v.swap_remove(i);
        }
    }
}
