//! Page size, CPU flags and the transparent huge page setting (for the DAX audit), and
//! the kernel release (it decides how the DAX mount option is spelled).

use crate::actual::Platform;
use crate::units::Bytes;

/// Read them; nothing here is fatal (missing files give the safe "unknown" answers).
pub fn probe() -> Platform {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let flags = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("flags"))
                .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        })
        .unwrap_or_default();
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|t| selected(&t));
    Platform {
        page_size: Bytes(u64::try_from(page).unwrap_or(0)),
        pse: flags.iter().any(|f| f == "pse"),
        pdpe1gb: flags.iter().any(|f| f == "pdpe1gb"),
        thp,
        kernel: release(),
    }
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
