//! The DAX check after mounting: a new file on the filesystem must carry
//! STATX_ATTR_DAX (mountinfo alone can say dax=always while the kernel fell back on
//! older kernels); when it does not, the kernel log says why.

use crate::system::{DaxCheck, SystemError};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// `STATX_ATTR_DAX` (linux/stat.h).
const STATX_ATTR_DAX: u64 = 0x0020_0000;

/// Make a file in `mount_point`, read its statx attributes, remove it.
pub fn check(mount_point: &str) -> Result<DaxCheck, SystemError> {
    let path = format!("{mount_point}/.pmem-stack-dax-check.{}", std::process::id());
    let os = |what: &str, e: std::io::Error| SystemError::Os {
        what: format!("{what} {path}"),
        error: e.to_string(),
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&path)
        .map_err(|e| os("create", e))?;
    let attrs = statx_attributes(&path);
    let removed = std::fs::remove_file(&path).map_err(|e| os("remove", e));
    let (attrs, mask) = attrs.map_err(|e| os("statx", e))?;
    removed?;
    let statx_dax = mask & STATX_ATTR_DAX != 0 && attrs & STATX_ATTR_DAX != 0;
    Ok(DaxCheck {
        statx_dax,
        kernel_log: if statx_dax {
            Vec::new()
        } else {
            kernel_dax_lines()
        },
    })
}

/// (stx_attributes, stx_attributes_mask) of `path`.
fn statx_attributes(path: &str) -> std::io::Result<(u64, u64)> {
    let c =
        CString::new(path).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: zeroed statx is a valid plain-data struct; the pointers live across the call.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((stx.stx_attributes, stx.stx_attributes_mask))
}

/// The last kernel log records that mention DAX (from /dev/kmsg, without blocking).
fn kernel_dax_lines() -> Vec<String> {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    // each read returns one record; EAGAIN at the end; EPIPE when records were overwritten
    for _ in 0..100_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                let text = rec
                    .split_once(';')
                    .map(|(_, t)| t)
                    .unwrap_or(&rec)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if text.to_ascii_lowercase().contains("dax") {
                    lines.push(text);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    let keep = lines.len().saturating_sub(5);
    lines.split_off(keep)
}
