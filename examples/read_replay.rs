//! The benchmark's baseline (`scripts/bench.sh`): the cost of *just reading the state*
//! a `pmem_stack` no-op run reads, and nothing else (no parsing, no planning, no JSON).
//!
//! `tests/vm/guest/bench.py` records a no-op run with strace (`-y`, raw ioctls) and turns
//! it into a replay script, one operation per line, tab-separated:
//!
//! | line | replays |
//! |---|---|
//! | `open ID FLAGS PATH` | `openat(PATH, FLAGS)` (never creating or truncating); ID is the traced fd number |
//! | `openat ID DIR FLAGS NAME` | `openat(DIR, NAME, FLAGS)`, relative to the directory opened as DIR |
//! | `readlinkat DIR NAME` / `statat DIR NAME` / `access DIR NAME` | `readlinkat` / `fstatat` / `faccessat(F_OK)` relative to DIR |
//! | `read ID COUNT` | `read(fd, COUNT)` |
//! | `pread ID COUNT OFFSET` | `pread64(fd, COUNT, OFFSET)` |
//! | `getdents ID COUNT` | `getdents64(fd, COUNT)` |
//! | `ioctl ID REQUEST` | a read-only (`_IOR`) ioctl into a zeroed 4 KiB buffer |
//! | `close ID` | `close(fd)` |
//! | `readlink PATH` / `stat PATH` | `readlink(PATH)` / `statx(PATH)` |
//! | `dm` | the device-mapper probe: `DM_LIST_DEVICES`, then `DM_DEV_STATUS` and `DM_TABLE_STATUS` per device (dm ioctls need real request headers, so they are replayed through the same crate) |
//!
//! Written by hand: no crate replays an strace; the operations are plain libc calls.
//! Usage: `read_replay SCRIPT` (exit 0; prints the number of operations replayed).

use devicemapper::{DevId, DmFlags, DmOptions, DM};
use std::collections::HashMap;
use std::ffi::CString;

/// A 4 KiB-aligned buffer (O_DIRECT reads need it).
struct Buf {
    ptr: *mut u8,
    len: usize,
}

impl Buf {
    fn new(len: usize) -> Buf {
        let len = len.max(4096).next_multiple_of(4096);
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: a non-zero size with a valid alignment
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Buf { ptr, len }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).expect("layout");
        // SAFETY: allocated in `new` with this layout
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// Open flags, as strace prints them (raw hex with `-X raw`, or symbolic); never
/// creating, truncating or exclusive: the replay only reads.
fn flags(text: &str) -> libc::c_int {
    let never = libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL;
    if let Some(hex) = text.strip_prefix("0x") {
        return i32::from_str_radix(hex, 16).unwrap_or(0) & !never;
    }
    let mut f = 0;
    for word in text.split('|') {
        f |= match word {
            "O_WRONLY" => libc::O_WRONLY,
            "O_RDWR" => libc::O_RDWR,
            "O_DIRECT" => libc::O_DIRECT,
            "O_DIRECTORY" => libc::O_DIRECTORY,
            "O_NONBLOCK" => libc::O_NONBLOCK,
            "O_CLOEXEC" => libc::O_CLOEXEC,
            "O_NOFOLLOW" => libc::O_NOFOLLOW,
            "O_PATH" => libc::O_PATH,
            _ => 0,
        };
    }
    f & !never
}

fn dm_probe() {
    let Ok(dm) = DM::new() else { return };
    let Ok(list) = dm.list_devices() else { return };
    for (name, _, _) in list {
        let id = DevId::Name(&name);
        let _ = dm.device_info(&id);
        let _ = dm.table_status(
            &id,
            DmOptions::default().set_flags(DmFlags::DM_STATUS_TABLE),
        );
    }
}

fn main() {
    let Some(script) = std::env::args().nth(1) else {
        eprintln!("usage: read_replay SCRIPT");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&script).expect("the replay script");
    let mut fds: HashMap<&str, libc::c_int> = HashMap::new();
    let mut buf = Buf::new(1 << 16);
    let mut ops = 0usize;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let fd = |id: &str| fds.get(id).copied().unwrap_or(-1);
        let mut need = |n: u64| {
            if n as usize > buf.len {
                buf = Buf::new(n as usize);
            }
            (buf.ptr, n as usize)
        };
        // SAFETY (all the calls below): plain system calls on our own fds and buffers,
        // each buffer at least as large as the count given
        match f.as_slice() {
            ["open", id, fl, path] => {
                let Ok(c) = CString::new(*path) else { continue };
                let r = unsafe { libc::open(c.as_ptr(), flags(fl)) };
                if r >= 0 {
                    fds.insert(id, r);
                }
            }
            ["openat", id, dir, fl, name] => {
                let Ok(c) = CString::new(*name) else { continue };
                let r = unsafe { libc::openat(fd(dir), c.as_ptr(), flags(fl)) };
                if r >= 0 {
                    fds.insert(id, r);
                }
            }
            ["readlinkat", dir, name] => {
                let Ok(c) = CString::new(*name) else { continue };
                let (p, n) = need(4096);
                unsafe { libc::readlinkat(fd(dir), c.as_ptr(), p.cast(), n) };
            }
            ["statat", dir, name] => {
                let Ok(c) = CString::new(*name) else { continue };
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                unsafe { libc::fstatat(fd(dir), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
            }
            ["access", dir, name] => {
                let Ok(c) = CString::new(*name) else { continue };
                unsafe { libc::faccessat(fd(dir), c.as_ptr(), libc::F_OK, 0) };
            }
            ["read", id, _] => {
                let (p, n) = need(num(2));
                unsafe { libc::read(fd(id), p.cast(), n) };
            }
            ["pread", id, _, _] => {
                let (p, n) = need(num(2));
                unsafe { libc::pread(fd(id), p.cast(), n, num(3) as libc::off_t) };
            }
            ["getdents", id, _] => {
                let (p, n) = need(num(2));
                unsafe { libc::syscall(libc::SYS_getdents64, fd(id), p, n) };
            }
            ["ioctl", id, req] => {
                let Ok(r) = u64::from_str_radix(req.trim_start_matches("0x"), 16) else {
                    continue;
                };
                // only read-only requests: the kernel writes into our buffer, nothing else
                if r >> 30 == 2 {
                    let (p, _) = need(4096);
                    unsafe { libc::ioctl(fd(id), r as libc::Ioctl, p) };
                }
            }
            ["close", id] => {
                if let Some(d) = fds.remove(id) {
                    unsafe { libc::close(d) };
                }
            }
            ["readlink", path] => {
                let _ = std::fs::read_link(path);
            }
            ["stat", path] => {
                let _ = std::fs::symlink_metadata(path);
            }
            ["dm"] => dm_probe(),
            _ => continue,
        }
        ops += 1;
    }
    println!("{ops}");
}
