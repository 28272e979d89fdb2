//! The PMD fault check: does DAX on this filesystem map 2 MiB pages, or fall back to 4 KiB?
//!
//! Mountinfo and `STATX_ATTR_DAX` say whether DAX is on; they do not say whether the
//! stack under the filesystem (namespace, dm table, partition start, fs geometry) lets
//! the kernel use PMD (2 MiB) mappings. The kernel says so itself, one trace event per
//! PMD fault attempt: `fs_dax/dax_pmd_fault_done`, whose line ends in the fault result,
//! `NOPAGE` for a 2 MiB page mapped, `FALLBACK` for a fall-back to 4 KiB pages.
//!
//! The method, with no process spawned:
//! 1. Find tracefs: `/sys/kernel/tracing`, else `/sys/kernel/debug/tracing`; when neither
//!    is mounted, mount tracefs at `/sys/kernel/tracing` (mount(2)) and unmount it after.
//! 2. Trace into a private ring buffer: a tracefs instance
//!    `instances/pmem-stack-pmd-<pid>` (other users of the global buffer are not
//!    disturbed; instances left by dead runs are removed first). When no instance can be
//!    made, use the global buffer: remember the event's `enable` (and `tracing_on`),
//!    clear `trace`.
//! 3. Enable `events/fs_dax/dax_pmd_fault_done`.
//! 4. Create `.pmem-stack-pmd-check.<pid>` in the mount point (`O_CREAT|O_EXCL|
//!    O_NOFOLLOW`, mode 0600), fallocate 16 MiB, map it `MAP_SHARED` read/write at a
//!    2 MiB-aligned address (so the virtual address is never the reason for a fall-back),
//!    write one byte in every 4 KiB page (every 2 MiB range faults), msync, munmap.
//! 5. Put the event's `enable` back, read `trace`, count this file's events (the lines
//!    carry `dev MAJ:MIN ino 0x...`; other files' faults are ignored) by result.
//! 6. Remove the file, the instance, and the tracefs mount if it was ours.
//!
//! Every step is undone on every error path as well (guards that clean up on drop).
//! A kernel or CPU that never attempts a PMD fault (no `pse`, THP `never` for DAX, a
//! misaligned mapping) yields zero events of either kind: the caller decides what that
//! means.

use crate::system::{PmdFaults, SystemError};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes faulted in (a multiple of 2 MiB: eight PMD faults when all succeed).
const CHECK_BYTES: usize = 16 << 20;
/// One PMD mapping on x86-64.
const PMD_SIZE: usize = 2 << 20;
/// One base page: one byte is written in each.
const PAGE_SIZE: usize = 4096;
/// The trace event, relative to a tracefs root or instance.
const EVENT: &str = "events/fs_dax/dax_pmd_fault_done";
/// Where tracefs may already be mounted, in order of preference.
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Prefix of our tracefs instance names (followed by the pid).
const INSTANCE_PREFIX: &str = "pmem-stack-pmd-";

/// Count 2 MiB DAX faults on a file made in `mount_point`.
pub fn check(mount_point: &str) -> Result<PmdFaults, SystemError> {
    let path = format!(
        "{}/.pmem-stack-pmd-check.{}",
        mount_point.trim_end_matches('/'),
        std::process::id()
    );
    let mut trace = Trace::start()?;
    let faulted = fault_in(&path);
    // stop recording before reading, whatever happened to the faults
    let stopped = trace.disable();
    let read = faulted.and_then(|id| {
        stopped?;
        trace.read().map(|text| (id, text))
    });
    let finished = trace.finish();
    let (id, text) = read?;
    finished?;
    let (nopage, fallback, other) = count_events(&text, id);
    Ok(PmdFaults {
        nopage,
        fallback,
        other,
        bytes: CHECK_BYTES as u64,
    })
}

/// A `SystemError::Os` for `what` on `path`.
fn os_err(what: &str, path: &Path, e: impl std::fmt::Display) -> SystemError {
    SystemError::Os {
        what: format!("PMD check: {what} {}", path.display()),
        error: e.to_string(),
    }
}

/// The identity of the test file as the trace prints it: (major, minor, inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    major: u64,
    minor: u64,
    ino: u64,
}

/// Make the file, fault it in through a shared mapping, remove it; its identity.
fn fault_in(path: &str) -> Result<FileId, SystemError> {
    let p = Path::new(path);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(p)
        .map_err(|e| os_err("create", p, e))?;
    let mut scratch = Scratch {
        path: p,
        removed: false,
    };
    let faulted = fault_file(&file, p);
    drop(file);
    let removed = scratch.remove();
    let id = faulted?;
    removed?;
    Ok(id)
}

/// fstat, fallocate, map, touch every page, msync, munmap.
fn fault_file(file: &File, p: &Path) -> Result<FileId, SystemError> {
    let meta = file.metadata().map_err(|e| os_err("fstat", p, e))?;
    let dev = meta.dev();
    let id = FileId {
        major: u64::from(libc::major(dev)),
        minor: u64::from(libc::minor(dev)),
        ino: meta.ino(),
    };
    let len = libc::off_t::try_from(CHECK_BYTES).map_err(|e| os_err("fallocate", p, e))?;
    // SAFETY: plain system call on an open descriptor.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
        return Err(os_err(
            "fallocate 16 MiB",
            p,
            std::io::Error::last_os_error(),
        ));
    }
    let mut map = Mapping::shared(file, CHECK_BYTES).map_err(|e| os_err("mmap", p, e))?;
    for off in (0..CHECK_BYTES).step_by(PAGE_SIZE) {
        // SAFETY: `off < len`, the mapping is live, writable and backed by allocated blocks.
        unsafe { std::ptr::write_volatile(map.addr.add(off), 1u8) };
    }
    // SAFETY: the range is exactly our live mapping.
    if unsafe { libc::msync(map.addr.cast(), map.len, libc::MS_SYNC) } != 0 {
        return Err(os_err("msync", p, std::io::Error::last_os_error()));
    }
    map.unmap().map_err(|e| os_err("munmap", p, e))?;
    Ok(id)
}

/// The test file: unlinked on drop unless already removed.
struct Scratch<'a> {
    path: &'a Path,
    removed: bool,
}

impl Scratch<'_> {
    /// Unlink the file, reporting failure.
    fn remove(&mut self) -> Result<(), SystemError> {
        self.removed = true;
        std::fs::remove_file(self.path).map_err(|e| os_err("remove", self.path, e))
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// A shared file mapping at a 2 MiB-aligned address; unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Map `len` bytes of `file` read/write `MAP_SHARED` at a 2 MiB boundary: reserve
    /// `len + 2 MiB` of address space, map the file over its first aligned address with
    /// `MAP_FIXED`, give the slack back.
    fn shared(file: &File, len: usize) -> std::io::Result<Mapping> {
        let span = len + PMD_SIZE;
        // SAFETY: a fresh anonymous reservation; no existing mapping is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        let head = (PMD_SIZE - (base as usize) % PMD_SIZE) % PMD_SIZE;
        // SAFETY: `head < PMD_SIZE`, so `start..start+len` lies inside the reservation.
        let start = unsafe { base.add(head) };
        // SAFETY: MAP_FIXED replaces only pages of our own reservation.
        let addr = unsafe {
            libc::mmap(
                start.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            // SAFETY: the whole reservation is ours.
            unsafe { libc::munmap(base.cast(), span) };
            return Err(e);
        }
        // SAFETY: both slack ranges are parts of our reservation outside the file mapping.
        unsafe {
            if head > 0 {
                libc::munmap(base.cast(), head);
            }
            let tail = span - head - len;
            if tail > 0 {
                libc::munmap(start.add(len).cast(), tail);
            }
        }
        Ok(Mapping {
            addr: addr.cast(),
            len,
        })
    }

    /// munmap, reporting failure.
    fn unmap(&mut self) -> std::io::Result<()> {
        if self.addr.is_null() {
            return Ok(());
        }
        // SAFETY: our live mapping; not used after.
        let rc = unsafe { libc::munmap(self.addr.cast(), self.len) };
        self.addr = std::ptr::null_mut();
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let _ = self.unmap();
    }
}

/// The tracing set-up, undone by [`Trace::finish`] (or on drop, ignoring errors).
struct Trace {
    /// The tracefs root we found or mounted.
    root: PathBuf,
    /// Where the event is enabled and `trace` read: our instance, or `root`.
    dir: PathBuf,
    /// Our instance (removed at the end), if one could be made.
    instance: Option<PathBuf>,
    /// Files to write back, in order: (path, value).
    restore: Vec<(PathBuf, String)>,
    /// True when we mounted tracefs at `root` (unmounted at the end).
    mounted: bool,
    /// Set once everything is undone.
    done: bool,
}

impl Trace {
    /// Find or mount tracefs, make the buffer, clear it, enable the event.
    fn start() -> Result<Trace, SystemError> {
        let (root, mounted) = find_tracefs()?;
        let mut t = Trace {
            dir: root.clone(),
            root,
            instance: None,
            restore: Vec::new(),
            mounted,
            done: false,
        };
        t.setup()?; // on error, drop undoes what was done
        Ok(t)
    }

    fn setup(&mut self) -> Result<(), SystemError> {
        let instances = self.root.join("instances");
        remove_stale_instances(&instances);
        let inst = instances.join(format!("{INSTANCE_PREFIX}{}", std::process::id()));
        if std::fs::create_dir(&inst).is_ok() {
            self.dir = inst.clone();
            self.instance = Some(inst);
        } else {
            // the global buffer: note what we change
            let on = self.root.join("tracing_on");
            let was_on = std::fs::read_to_string(&on).map_err(|e| os_err("read", &on, e))?;
            if !was_on.trim_start().starts_with('1') {
                self.restore.push((on.clone(), "0".into()));
                write_file(&on, "1")?;
            }
        }
        let enable = self.dir.join(EVENT).join("enable");
        let was = std::fs::read_to_string(&enable).map_err(|e| os_err("read", &enable, e))?;
        let old = if was.trim_start().starts_with('1') {
            "1"
        } else {
            "0"
        };
        // the event goes back first, before tracing_on
        self.restore.insert(0, (enable.clone(), old.into()));
        let trace = self.dir.join("trace");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&trace)
            .map_err(|e| os_err("clear", &trace, e))?;
        write_file(&enable, "1")
    }

    /// Put the event's `enable` (and `tracing_on`) back: recording stops here.
    fn disable(&mut self) -> Result<(), SystemError> {
        let mut first = Ok(());
        for (path, value) in std::mem::take(&mut self.restore) {
            let r = write_file(&path, &value);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// The buffer's text.
    fn read(&self) -> Result<String, SystemError> {
        let trace = self.dir.join("trace");
        let bytes = std::fs::read(&trace).map_err(|e| os_err("read", &trace, e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Undo everything: restore values, remove the instance, unmount what we mounted
    /// (an unmount failure is ignored: a mounted tracefs harms nothing).
    fn finish(&mut self) -> Result<(), SystemError> {
        self.done = true;
        let mut first = self.disable();
        if let Some(inst) = self.instance.take() {
            let r = std::fs::remove_dir(&inst).map_err(|e| os_err("remove instance", &inst, e));
            if first.is_ok() {
                first = r;
            }
        }
        if std::mem::take(&mut self.mounted) {
            let _ = nix::mount::umount(&self.root);
        }
        first
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.finish();
        }
    }
}

/// Write `value` to a tracefs file.
fn write_file(path: &Path, value: &str) -> Result<(), SystemError> {
    std::fs::write(path, value).map_err(|e| os_err(&format!("write {value:?} to"), path, e))
}

/// The tracefs root, and whether we mounted it.
fn find_tracefs() -> Result<(PathBuf, bool), SystemError> {
    for d in TRACEFS_DIRS {
        // `trace` exists only in a mounted tracefs (debugfs automounts `tracing` on access)
        if Path::new(d).join("trace").exists() {
            return Ok((PathBuf::from(d), false));
        }
    }
    let root = PathBuf::from(TRACEFS_DIRS[0]);
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("tracefs"),
        &root,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| os_err("mount tracefs on", &root, e))?;
    Ok((root, true))
}

/// Remove instances left by runs that died (their pid is gone); errors are ignored.
fn remove_stale_instances(instances: &Path) {
    let Ok(entries) = std::fs::read_dir(instances) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(INSTANCE_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// Count `dax_pmd_fault_done` lines for `id` by result: (NOPAGE, FALLBACK, other).
///
/// A line reads `TASK-PID [CPU] FLAGS TS: dax_pmd_fault_done: dev 259:0 ino 0x83 shared
/// WRITE|... address 0x... vm_start ... pgoff 0x0 max_pgoff 0xfff NOPAGE`: the result is
/// the last word. A line whose `dev` or `ino` names another file is skipped; a field
/// missing or unreadable does not exclude the line.
fn count_events(text: &str, id: FileId) -> (u64, u64, u64) {
    let (mut nopage, mut fallback, mut other) = (0, 0, 0);
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((_, rest)) = line.split_once("dax_pmd_fault_done:") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some(result) = words.last() else {
            continue;
        };
        let after = |key: &str| words.windows(2).find(|w| w[0] == key).map(|w| w[1]);
        if let Some((maj, min)) = after("dev").and_then(parse_dev) {
            if (maj, min) != (id.major, id.minor) {
                continue;
            }
        }
        if let Some(ino) = after("ino").and_then(parse_hex) {
            if ino != id.ino {
                continue;
            }
        }
        match *result {
            "NOPAGE" => nopage += 1,
            "FALLBACK" => fallback += 1,
            _ => other += 1,
        }
    }
    (nopage, fallback, other)
}

/// `259:0` -> (259, 0).
fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `0x83` (or `0`, as `%#lx` prints zero) -> 131.
fn parse_hex(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: FileId = FileId {
        major: 259,
        minor: 0,
        ino: 0x83,
    };

    fn line(dev: &str, ino: &str, result: &str) -> String {
        format!(
            "  pmdcheck-312 [001] ..... 52.123456: dax_pmd_fault_done: dev {dev} ino {ino} \
             shared WRITE|ALLOW_RETRY|KILLABLE|USER address 0x7f0000200000 vm_start \
             0x7f0000200000 vm_end 0x7f0001200000 pgoff 0x0 max_pgoff 0xfff {result}\n"
        )
    }

    #[test]
    fn counts_by_result_for_this_file_only() {
        let mut text = String::from("# tracer: nop\n#\n# entries-in-buffer/entries-written: 5/5\n");
        text += &line("259:0", "0x83", "NOPAGE");
        text += &line("259:0", "0x83", "NOPAGE");
        text += &line("259:0", "0x83", "FALLBACK");
        text += &line("259:0", "0x83", "NOPAGE|MAJOR");
        text += &line("259:1", "0x83", "NOPAGE"); // other device
        text += &line("259:0", "0x84", "FALLBACK"); // other inode
        text += "CPU:1 [LOST 3 EVENTS]\n";
        assert_eq!(count_events(&text, ID), (2, 1, 1));
    }

    #[test]
    fn lines_without_identity_still_count() {
        let text = "x-1 [000] .... 1.0: dax_pmd_fault_done: shared address 0x0 FALLBACK\n";
        assert_eq!(count_events(text, ID), (0, 1, 0));
        assert_eq!(count_events("", ID), (0, 0, 0));
        assert_eq!(count_events("x: dax_pmd_fault_done:\n", ID), (0, 0, 0));
    }

    #[test]
    fn parses_fields() {
        assert_eq!(parse_dev("254:3"), Some((254, 3)));
        assert_eq!(parse_dev("254"), None);
        assert_eq!(parse_hex("0x83"), Some(0x83));
        assert_eq!(parse_hex("0"), Some(0));
        assert_eq!(parse_hex("zz"), None);
    }
}
