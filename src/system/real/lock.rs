//! One run at a time: an exclusive flock(2) on `/run/pmem-stack.lock` (or
//! `PMEM_STACK_LOCK`), held until the process exits. A second run waits for it, up to
//! `PMEM_STACK_LOCK_WAIT` seconds (default 120), then fails naming the holder's pid.
//!
//! The programs a run starts (ndctl, mkfs, udevadm) inherit the locked descriptor: a
//! flock belongs to the open file, so it is held until the last of them exits. A run
//! killed while ndctl or mkfs works leaves that program running on its own; the next run
//! waits for it to finish instead of racing it.

use crate::system::SystemError;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// The lock file.
pub fn path() -> String {
    std::env::var("PMEM_STACK_LOCK").unwrap_or_else(|_| "/run/pmem-stack.lock".into())
}

/// Take the lock; the returned file keeps it.
pub fn acquire() -> Result<File, SystemError> {
    let p = path();
    let wait = std::env::var("PMEM_STACK_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(|e| SystemError::Os {
            what: format!("open the lock {p}"),
            error: e.to_string(),
        })?;
    let start = Instant::now();
    loop {
        // SAFETY: flock on an open descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(SystemError::Os {
                what: format!("flock {p}"),
                error: err.to_string(),
            });
        }
        if start.elapsed() >= Duration::from_secs(wait) {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            return Err(SystemError::Os {
                what: format!("waiting {wait} s for the lock {p}"),
                error: format!(
                    "another pmem_stack run (pid {}), or a program it started that is still running, is working on this machine; two runs never interleave",
                    holder.trim()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: fcntl on a descriptor we own; clearing FD_CLOEXEC only.
    let inherit = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
    if inherit != 0 {
        return Err(SystemError::Os {
            what: format!("let the programs started inherit the lock {p}"),
            error: std::io::Error::last_os_error().to_string(),
        });
    }
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "{}", std::process::id());
    Ok(f)
}
