//! Page size, CPU flags and the transparent huge page setting (for the DAX audit), and
//! the kernel release (it decides how the DAX mount option is spelled).

use crate::actual::Platform;
use crate::units::Bytes;
use std::path::Path;

/// Read them; nothing here is fatal (missing files give the safe "unknown" answers).
pub fn probe() -> Platform {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let flags = cpu_flags(Path::new("/proc/cpuinfo"));
    let thp = super::sysfs::read(Path::new("/sys/kernel/mm/transparent_hugepage/enabled"))
        .and_then(|t| selected(&t));
    Platform {
        page_size: Bytes(u64::try_from(page).unwrap_or(0)),
        pse: flags.iter().any(|f| f == "pse"),
        pdpe1gb: flags.iter().any(|f| f == "pdpe1gb"),
        thp,
        kernel: release(),
    }
}

/// The first processor's `flags` in `cpuinfo` (the kernel lists the same flags for
/// every processor): read up to that line, not the whole file (a record per processor,
/// hundreds of KiB on a large host).
fn cpu_flags(cpuinfo: &Path) -> Vec<String> {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(cpuinfo) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The running kernel's release, from uname(2) (one system call; what
/// `/proc/sys/kernel/osrelease` holds).
pub fn release() -> Option<String> {
    // SAFETY: utsname is plain C chars; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname the kernel fills.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let r = String::from_utf8_lossy(&bytes).trim().to_string();
    (!r.is_empty()).then_some(r)
}

/// `always madvise [never]` -> `never`.
fn selected(text: &str) -> Option<String> {
    let s = text.split('[').nth(1)?.split(']').next()?;
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thp_selection_from_the_fixture() {
        let t = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vm/thp-enabled.txt"
        ))
        .expect("fixture");
        assert_eq!(super::selected(&t).as_deref(), Some("never"));
        assert_eq!(super::selected("always"), None);
    }

    #[test]
    fn cpu_flags_are_the_first_processors() {
        let dir = std::env::temp_dir().join(format!("pmem-stack-cpuinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("cpuinfo");
        std::fs::write(
            &f,
            "processor\t: 0\nflags\t\t: fpu pse pdpe1gb\n\nprocessor\t: 1\nflags\t\t: fpu\n",
        )
        .expect("write");
        assert_eq!(
            super::cpu_flags(&f),
            ["flags", ":", "fpu", "pse", "pdpe1gb"]
        );
        assert!(super::cpu_flags(&dir.join("missing")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
        // this machine's, as the whole file says them
        let all = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let first: Vec<String> = all
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        assert_eq!(
            super::cpu_flags(std::path::Path::new("/proc/cpuinfo")),
            first
        );
    }

    #[test]
    fn the_running_kernel_release() {
        let r = super::release().expect("uname");
        let proc = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
        assert_eq!(r, proc.trim());
        assert!(
            crate::actual::kernel::KernelVersion::parse(&r).is_some(),
            "{r}"
        );
    }
}
