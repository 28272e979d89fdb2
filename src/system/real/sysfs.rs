//! Reading sysfs attributes in as few system calls as it takes: open, one read, close.
//!
//! `std::fs::read_to_string` also asks the file's size (statx) to size its buffer, and
//! reads again until the end; a sysfs attribute is at most a page (the kernel's `show`
//! fills one page in one go, and a read hands it out from the start), so a read that
//! comes back short of a 4 KiB buffer has it all. The probe reads a few hundred
//! attributes (more with every object), and under QEMU TCG each system call costs.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

/// The buffer a single read fills: a page, what one sysfs attribute holds at most.
const PAGE: usize = 4096;

/// The attribute at `path`, trimmed; `None` when it is missing or cannot be read (sysfs
/// answers ENXIO or EIO for attributes that have no value in a device's current state).
/// Text that is not UTF-8 is unreadable too.
pub fn read(path: &Path) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let mut page = [0u8; PAGE];
    let n = read_some(&mut f, &mut page)?;
    if n < PAGE {
        return trimmed(&page[..n]);
    }
    // a full page: more may follow (not a sysfs attribute, or a test's file)
    let mut all = page.to_vec();
    f.read_to_end(&mut all).ok()?;
    trimmed(&all)
}

/// One read, retried when interrupted.
fn read_some(f: &mut File, buf: &mut [u8]) -> Option<usize> {
    loop {
        match f.read(buf) {
            Ok(n) => return Some(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

fn trimmed(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|s| s.trim().to_string())
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
        assert_eq!(read(&dir.join("long")), Some(long));
        let page = "y".repeat(PAGE);
        std::fs::write(dir.join("page"), &page).expect("write");
        assert_eq!(read(&dir.join("page")), Some(page));
        assert_eq!(read(&dir.join("missing")), None);
        std::fs::write(dir.join("bad"), b"\xff\xfe").expect("write");
        assert_eq!(read(&dir.join("bad")), None);
        // a directory cannot be read
        assert_eq!(read(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
