//! Reading sysfs in as few system calls, and as short path walks, as it takes.
//!
//! - An attribute is open, one read, close: `std::fs::read_to_string` also asks the
//!   file's size (statx) to size its buffer, and reads again until the end; a sysfs
//!   attribute is at most a page (the kernel's `show` fills one page in one go, and a
//!   read hands it out from the start), so a read that comes back short of a 4 KiB
//!   buffer has it all.
//! - A device's directory is opened once ([`Dir`], `O_PATH`) and its attributes relative
//!   to it: the kernel walks one name per attribute instead of the whole path, through
//!   the symlinks of `/sys/bus/*/devices` and `/sys/class/block` (kernfs builds a
//!   symlink's target anew on every walk).
//! - A directory is listed with getdents64 straight into a buffer: no `opendir` (which
//!   also asks the size of the directory, and allocates 32 KiB).
//!
//! The probe reads a few hundred attributes, more with every object, and under QEMU TCG
//! (the VM rig, the benchmark) each system call and each path component costs.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The buffer a single read fills: a page, what one sysfs attribute holds at most.
const PAGE: usize = 4096;

/// A sysfs number: hexadecimal with `0x`, else decimal.
pub fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The attribute at `path`, trimmed; `None` when it is missing or cannot be read (sysfs
/// answers ENXIO or EIO for attributes that have no value in a device's current state).
/// Text that is not UTF-8 is unreadable too.
pub fn read(path: &Path) -> Option<String> {
    let f = File::open(path).ok()?;
    read_file(f)
}

/// The whole of `f` (see [`read`]).
fn read_file(mut f: File) -> Option<String> {
    let mut page = Vec::with_capacity(PAGE);
    let n = read_into(&f, &mut page).ok()?;
    if n < PAGE {
        return trimmed(&page);
    }
    // a full page: more may follow (not a sysfs attribute, or a test's file)
    f.read_to_end(&mut page).ok()?;
    trimmed(&page)
}

/// One read(2) of `f` into the spare capacity of `buf` (not zeroed first: the kernel
/// writes what it returns), retried when interrupted; the bytes read.
pub fn read_into(f: &impl AsRawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: read(2) writes at most `spare.len()` bytes at `spare`'s start.
    let n = retrying(|| unsafe {
        libc::read(f.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) as i64
    })?;
    // SAFETY: the kernel initialised the `n` bytes after the vector's length.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// A system call that returns a count, or -1 and errno, made again while it is
/// interrupted (EINTR); the count.
pub fn retrying(mut call: impl FnMut() -> i64) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(usize::try_from(n).unwrap_or(0));
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn trimmed(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `name` as a C string (a name with a NUL byte is no name there is).
fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(ErrorKind::InvalidInput))
}

/// openat(2) relative to `dir` (`None`: the working directory, for absolute paths).
fn open_at(dir: Option<&OwnedFd>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let at = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    loop {
        // SAFETY: `c` is a NUL-terminated string that lives across the call; `at` is an
        // open descriptor or AT_FDCWD.
        let fd = unsafe { libc::openat(at, c.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: a descriptor openat just returned, owned by nothing else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The entry names of the open directory `fd` (not `.` and `..`), unsorted.
fn entries_of(fd: &OwnedFd) -> io::Result<Vec<String>> {
    // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name (NUL-ended)
    const NAME_AT: usize = 19;
    const LEN: usize = 8192;
    let mut buf: Vec<u8> = Vec::with_capacity(LEN);
    let mut out = Vec::new();
    loop {
        buf.clear();
        let spare = buf.spare_capacity_mut();
        // SAFETY: getdents64 writes at most `LEN` bytes at the start of the spare capacity
        // (at least `LEN` bytes long).
        let n = retrying(|| unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd.as_raw_fd(),
                spare.as_mut_ptr(),
                LEN.min(spare.len()),
            )
        })?;
        if n == 0 {
            return Ok(out);
        }
        // SAFETY: the kernel initialised the first `n` bytes.
        unsafe { buf.set_len(n) };
        let mut at = 0;
        while at + NAME_AT <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen < NAME_AT || at + reclen > n {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "getdents64 returned a malformed record",
                ));
            }
            let name = &buf[at + NAME_AT..at + reclen];
            let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
            if name != b"." && name != b".." {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
            at += reclen;
        }
    }
}

/// The entry names of directory `path` (not `.` and `..`), unsorted; a missing
/// directory has none.
pub fn list(path: &Path) -> io::Result<Vec<String>> {
    match open_at(None, path.as_os_str(), libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => entries_of(&fd),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// A directory opened once (`O_PATH`): what is in it is opened relative to it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Open directory `path`; `None` when it is not there (or not a directory, or not
    /// reachable).
    pub fn open(path: &Path) -> Option<Dir> {
        let fd = open_at(None, path.as_os_str(), libc::O_PATH | libc::O_DIRECTORY).ok()?;
        Some(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory `rel` in it (a name, or a relative path); `None` when not there.
    pub fn at(&self, rel: &str) -> Option<Dir> {
        let fd = open_at(
            Some(&self.fd),
            OsStr::new(rel),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .ok()?;
        Some(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// Its path, as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The attribute `rel` in it (see [`read`]).
    pub fn attr(&self, rel: &str) -> Option<String> {
        let fd = open_at(Some(&self.fd), OsStr::new(rel), libc::O_RDONLY).ok()?;
        read_file(File::from(fd))
    }

    /// Whether `rel` exists in it (following symlinks, as `Path::exists`).
    pub fn has(&self, rel: &str) -> bool {
        let Ok(c) = c_name(OsStr::new(rel)) else {
            return false;
        };
        // SAFETY: `c` is NUL-terminated and lives across the call; the descriptor is open.
        unsafe { libc::faccessat(self.fd.as_raw_fd(), c.as_ptr(), libc::F_OK, 0) == 0 }
    }

    /// The entry names of the directory `rel` in it (`.` for itself), unsorted; a
    /// missing directory has none.
    pub fn entries(&self, rel: &str) -> io::Result<Vec<String>> {
        match open_at(
            Some(&self.fd),
            OsStr::new(rel),
            libc::O_RDONLY | libc::O_DIRECTORY,
        ) {
            Ok(fd) => entries_of(&fd),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Where the symlink `rel` in it points.
    pub fn link(&self, rel: &str) -> io::Result<PathBuf> {
        let c = c_name(OsStr::new(rel))?;
        let mut buf = [0u8; PAGE];
        // SAFETY: readlinkat writes at most `buf.len()` bytes into `buf`; `c` lives
        // across the call.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0);
        Ok(PathBuf::from(OsStr::from_bytes(&buf[..n.min(buf.len())])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_files_whole() {
        let dir = std::env::temp_dir().join(format!("pmem-stack-sysfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("size"), "4096\n").expect("write");
        assert_eq!(read(&dir.join("size")).as_deref(), Some("4096"));
        let long = "x".repeat(3 * PAGE + 7);
        std::fs::write(dir.join("long"), &long).expect("write");
        assert_eq!(read(&dir.join("long")), Some(long.clone()));
        let page = "y".repeat(PAGE);
        std::fs::write(dir.join("page"), &page).expect("write");
        assert_eq!(read(&dir.join("page")), Some(page));
        assert_eq!(read(&dir.join("missing")), None);
        std::fs::write(dir.join("bad"), b"\xff\xfe").expect("write");
        assert_eq!(read(&dir.join("bad")), None);
        // a directory cannot be read
        assert_eq!(read(&dir), None);
        // the same through the directory
        let d = Dir::open(&dir).expect("open");
        assert_eq!(d.attr("size").as_deref(), Some("4096"));
        assert_eq!(d.attr("long"), Some(long));
        assert_eq!(d.attr("missing"), None);
        assert!(d.has("size") && !d.has("missing"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lists_a_directory_of_any_size() {
        let dir = std::env::temp_dir().join(format!("pmem-stack-list-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        // more names than one getdents64 buffer holds
        let mut want: Vec<String> = (0..600).map(|i| format!("entry-number-{i:04}")).collect();
        for n in &want {
            std::fs::write(dir.join(n), "").expect("write");
        }
        std::os::unix::fs::symlink("sub", dir.join("link")).expect("symlink");
        want.push("sub".into());
        want.push("link".into());
        want.sort();
        let mut got = list(&dir).expect("list");
        got.sort();
        assert_eq!(got, want);
        let d = Dir::open(&dir).expect("open");
        let mut got = d.entries(".").expect("entries");
        got.sort();
        assert_eq!(got, want);
        assert!(d.entries("sub").expect("sub").is_empty());
        assert!(d.entries("missing").expect("missing").is_empty());
        assert!(list(&dir.join("missing")).expect("missing").is_empty());
        assert_eq!(d.link("link").expect("link"), PathBuf::from("sub"));
        assert_eq!(
            d.at("link").expect("through the link").path(),
            dir.join("link")
        );
        assert!(d.at("entry-number-0001").is_none(), "not a directory");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
