//! Writing into the cache safely: files hashed while they are written, kept
//! only after their size and sha256 check out, and one pull at a time per
//! artifact.
//!
//! A file is written to `<final>.partial-<pid>` and renamed over `<final>` only
//! once verified, so a reader never sees a half-written or wrong file and a
//! crash leaves at most a `.partial-*` file that the next pull overwrites.
//! Pulls of one artifact are serialized with an advisory `flock` on a lock
//! file (`std::fs::File::try_lock`): the kernel drops the lock when its
//! process dies, so a killed pull never leaves a stale lock behind, unlike a
//! bare `create_new` marker file.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::FetchError;

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte-counting progress bar on stderr, or a hidden one.
pub fn bar(show: bool, len: u64, msg: String) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(msg);
    pb
}

/// Size and sha256 of a file, read in full (advancing `pb`).
pub fn hash_file(path: &Path, pb: &ProgressBar) -> Result<(u64, String), FetchError> {
    let mut f = File::open(path).map_err(FetchError::io("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(FetchError::io("read", path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        pb.inc(k as u64);
    }
    Ok((n, hex(&h.finalize())))
}

/// Writes all of `r` to a new file `dest` (creating its folder), advancing
/// `pb`; returns the size and sha256 of what was written.
pub fn write_hashed(
    dest: &Path,
    r: &mut dyn Read,
    pb: &ProgressBar,
) -> Result<(u64, String), FetchError> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(FetchError::io("create the folder", dir))?;
    }
    let file = File::create(dest).map_err(FetchError::io("create", dest))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(FetchError::io("extract", dest))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])
            .map_err(FetchError::io("write", dest))?;
        h.update(&buf[..k]);
        n += k as u64;
        pb.inc(k as u64);
    }
    let file = out.into_inner().map_err(|e| FetchError::Io {
        action: "write",
        path: dest.to_owned(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(FetchError::io("sync", dest))?;
    Ok((n, hex(&h.finalize())))
}

/// Checks a size and hash against what they must be.
pub fn check(
    path: &Path,
    size: u64,
    sha256: &str,
    expect_size: u64,
    expect_sha: &str,
) -> Result<(), FetchError> {
    if size != expect_size {
        return Err(FetchError::SizeMismatch {
            path: path.to_owned(),
            expected: expect_size,
            actual: size,
        });
    }
    if !sha256.eq_ignore_ascii_case(expect_sha) {
        return Err(FetchError::ShaMismatch {
            path: path.to_owned(),
            expected: expect_sha.to_owned(),
            actual: sha256.to_owned(),
        });
    }
    Ok(())
}

fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// A file being written next to its final place; see the module docs.
/// Dropping it without [`PartialFile::commit`] deletes it.
pub struct PartialFile {
    final_path: PathBuf,
    partial: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    written: u64,
    pb: ProgressBar,
}

impl PartialFile {
    /// Creates `<path>.partial-<pid>` (and `path`'s folder); `pb` advances
    /// with every byte written.
    pub fn create(path: &Path, pb: ProgressBar) -> Result<Self, FetchError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(FetchError::io("create the folder", dir))?;
        }
        let partial = partial_name(path);
        let file = File::create(&partial).map_err(FetchError::io("create", &partial))?;
        Ok(PartialFile {
            final_path: path.to_owned(),
            partial,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: Sha256::new(),
            written: 0,
            pb,
        })
    }

    /// Copies all of `r` into the file.
    pub fn copy_from(&mut self, r: &mut dyn Read) -> Result<u64, FetchError> {
        let partial = self.partial.clone();
        io::copy(r, self).map_err(FetchError::io("write", partial))
    }

    /// Verifies size and sha256, then renames the file into place. On a
    /// mismatch the partial file is deleted and nothing is left behind.
    pub fn commit(mut self, expect_size: u64, expect_sha: &str) -> Result<PathBuf, FetchError> {
        let out = self.out.take();
        if let Some(out) = out {
            let file = out.into_inner().map_err(|e| FetchError::Io {
                action: "write",
                path: self.partial.clone(),
                source: e.into_error(),
            })?;
            file.sync_all()
                .map_err(FetchError::io("sync", &self.partial))?;
        }
        let sha = hex(&std::mem::take(&mut self.hasher).finalize());
        check(
            &self.final_path,
            self.written,
            &sha,
            expect_size,
            expect_sha,
        )?;
        fs::rename(&self.partial, &self.final_path)
            .map_err(FetchError::io("rename into place", &self.final_path))?;
        self.pb.finish_and_clear();
        Ok(self.final_path.clone())
    }
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("file already committed"))?;
        let n = out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        self.pb.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |o| o.flush())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        self.pb.finish_and_clear();
        drop(self.out.take());
        // Still present only if never committed (or the rename failed).
        let _ = fs::remove_file(&self.partial);
    }
}

/// A folder filled next to its final place (`<final>.partial-<pid>`) and
/// swapped in whole; dropped without [`PartialDir::commit`] it is deleted.
pub struct PartialDir {
    final_path: PathBuf,
    partial: PathBuf,
    committed: bool,
}

impl PartialDir {
    pub fn create(path: &Path) -> Result<Self, FetchError> {
        let partial = partial_name(path);
        if partial.exists() {
            fs::remove_dir_all(&partial)
                .map_err(FetchError::io("remove the leftover", &partial))?;
        }
        fs::create_dir_all(&partial).map_err(FetchError::io("create the folder", &partial))?;
        Ok(PartialDir {
            final_path: path.to_owned(),
            partial,
            committed: false,
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// Replaces the final folder with this one. The old folder, if any, is
    /// moved aside first and deleted after, so the swap itself is two renames.
    pub fn commit(mut self) -> Result<PathBuf, FetchError> {
        let old = self.final_path.with_file_name(format!(
            "{}.old-{}",
            self.final_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            std::process::id()
        ));
        let had_old = self.final_path.exists();
        if had_old {
            fs::rename(&self.final_path, &old)
                .map_err(FetchError::io("move aside", &self.final_path))?;
        }
        fs::rename(&self.partial, &self.final_path)
            .map_err(FetchError::io("rename into place", &self.final_path))?;
        self.committed = true;
        if had_old {
            fs::remove_dir_all(&old).map_err(FetchError::io("remove", &old))?;
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.partial);
        }
    }
}

/// Deletes what killed pulls of one artifact left behind: `<file>.partial-*`
/// next to each of `files`, `<dir>.partial-*` / `<dir>.old-*` next to `dir`,
/// and scratch folders `.tmp/<name>@*`. Only call it holding the artifact's
/// [`PullLock`]: then no live pull can own any of them.
pub fn sweep_leftovers(root: &Path, name: &str, files: &[PathBuf], dir: Option<&Path>) {
    let remove_matching = |folder: &Path, keep: &dyn Fn(&str) -> bool| {
        let Ok(entries) = fs::read_dir(folder) else {
            return;
        };
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if keep(&n) {
                continue;
            }
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    };
    for f in files {
        if let (Some(folder), Some(base)) = (f.parent(), f.file_name()) {
            let prefix = format!("{}.partial-", base.to_string_lossy());
            remove_matching(folder, &|n| !n.starts_with(&prefix));
        }
    }
    if let Some(d) = dir
        && let (Some(folder), Some(base)) = (d.parent(), d.file_name())
    {
        let base = base.to_string_lossy();
        let (partial, old) = (format!("{base}.partial-"), format!("{base}.old-"));
        remove_matching(folder, &|n| {
            !n.starts_with(&partial) && !n.starts_with(&old)
        });
    }
    let scratch = format!("{name}@");
    remove_matching(&root.join(".tmp"), &|n| !n.starts_with(&scratch));
}

/// An exclusive hold on one artifact's lock file, released on drop (or when
/// the process dies).
#[derive(Debug)]
pub struct PullLock {
    file: File,
}

impl PullLock {
    /// Takes the lock `<root>/.locks/<name>.lock` without waiting; if another
    /// process (or another handle in this one) holds it, fails with
    /// [`FetchError::Locked`] naming the holder's pid.
    pub fn acquire(root: &Path, name: &str) -> Result<Self, FetchError> {
        let (mut file, path) = Self::open(root, name)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(FetchError::Locked {
                    name: name.to_owned(),
                    lock: path,
                    holder: Self::holder(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(FetchError::io("lock", &path)(e)),
        }
        Ok(Self::hold(file))
    }

    /// Takes the same lock, waiting while another process holds it (for work
    /// a second process should not repeat but read once it is done, such as
    /// the cached default statistics); `on_wait(holder pid)` is called once,
    /// before waiting.
    pub fn wait(root: &Path, name: &str, on_wait: &mut dyn FnMut(Option<&str>)) -> Result<Self, FetchError> {
        let (mut file, path) = Self::open(root, name)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                on_wait(Self::holder(&mut file).as_deref());
                file.lock().map_err(FetchError::io("lock", &path))?;
            }
            Err(TryLockError::Error(e)) => return Err(FetchError::io("lock", &path)(e)),
        }
        Ok(Self::hold(file))
    }

    fn open(root: &Path, name: &str) -> Result<(File, PathBuf), FetchError> {
        let dir = root.join(".locks");
        fs::create_dir_all(&dir).map_err(FetchError::io("create the folder", &dir))?;
        let path = dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(FetchError::io("open the lock file", &path))?;
        Ok((file, path))
    }

    /// The pid the holder recorded, if any.
    fn holder(file: &mut File) -> Option<String> {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        (!holder.is_empty()).then(|| holder.to_owned())
    }

    /// Records who holds it, for the message another process will print.
    fn hold(mut file: File) -> Self {
        let _ = file.set_len(0);
        let _ = file.write_all(std::process::id().to_string().as_bytes());
        let _ = file.flush();
        PullLock { file }
    }
}

impl Drop for PullLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// A scratch folder under the cache root (same file system as the final
/// files), deleted on drop.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn create(root: &Path, name: &str) -> Result<Self, FetchError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = root
            .join(".tmp")
            .join(format!("{name}@{}-{n}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(FetchError::io("remove the leftover", &path))?;
        }
        fs::create_dir_all(&path).map_err(FetchError::io("create the folder", &path))?;
        Ok(ScratchDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("flexc-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn partial_file_commits_only_when_verified() {
        let dir = scratch("pf");
        let dest = dir.join("sub/x.bin");
        let mut pf = PartialFile::create(&dest, ProgressBar::hidden()).unwrap();
        pf.write_all(b"abc").unwrap();
        // sha256("abc")
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(pf.commit(3, good).unwrap(), dest);
        assert_eq!(fs::read(&dest).unwrap(), b"abc");

        let mut pf = PartialFile::create(&dest, ProgressBar::hidden()).unwrap();
        pf.write_all(b"abd").unwrap();
        let err = pf.commit(3, good).unwrap_err();
        assert!(matches!(err, FetchError::ShaMismatch { .. }), "{err}");
        // The old good file is untouched and no partial file is left.
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let root = scratch("lock");
        let held = PullLock::acquire(&root, "thing").unwrap();
        let err = PullLock::acquire(&root, "thing").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("another `flexc pull` of thing is running"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // Other artifacts are independent.
        let other = PullLock::acquire(&root, "other").unwrap();
        drop(held);
        drop(other);
        PullLock::acquire(&root, "thing").unwrap();
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn wait_blocks_until_the_holder_releases() {
        let root = scratch("lock-wait");
        let held = PullLock::acquire(&root, "stats").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let r = root.clone();
        let waiter = std::thread::spawn(move || {
            let mut waited = None;
            let lock = PullLock::wait(&r, "stats", &mut |pid| waited = Some(pid.map(str::to_owned))).unwrap();
            tx.send(()).unwrap();
            drop(lock);
            waited
        });
        // The waiter cannot get it while we hold it.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the waiter gets the lock once it is released");
        let waited = waiter.join().unwrap();
        assert_eq!(waited, Some(Some(std::process::id().to_string())), "on_wait names the holder");
        fs::remove_dir_all(&root).unwrap();
    }
}
