//! Mounts held in other mount namespaces than the run's own: found by reading
//! `/proc/PID/mountinfo` of one process per namespace (no process is started, no
//! namespace entered), and unmounted there by entering the namespace with setns(2).
//!
//! Why: a process that got its own mount namespace (systemd's sandboxed services,
//! `ProtectSystem=`, `ProtectHome=`, `PrivateTmp=`: systemd-logind on Debian 12) holds a
//! copy of every mount that existed when it started. An umount in our namespace, or
//! `systemctl stop` of the mount unit (systemd's umount, in PID 1's namespace), reaches
//! such a copy only through mount propagation: when the copy is a slave of the mount
//! unmounted, or its peer, and nothing is mounted over it there. A copy that propagation
//! does not reach keeps the filesystem, and so the device under it, open: the dm device
//! cannot be removed ("busy") until that service restarts.
//!
//! Entering a namespace: the namespace file is opened first and checked to be the
//! namespace probed (its inode), so a pid reused meanwhile cannot send us elsewhere; the
//! path is resolved from that process's root (it may run chrooted: mountinfo paths are
//! relative to its root) and must still be on the device; then umount2(2) with
//! `UMOUNT_NOFOLLOW`. The run then returns to its own namespace, root and working
//! directory, saved as open files before leaving. The module is single-threaded, which
//! setns(2) of a mount namespace requires.

use crate::actual::{DaxSyntax, Devno, NsMount};
use crate::system::{Output, SystemError};
use nix::mount::MntFlags;
use nix::sched::CloneFlags;
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The mount namespace inode of a `/proc/.../ns/mnt` file.
fn ns_inode(path: &str) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The pids in `/proc`, ascending.
fn pids() -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The mounts of the devices `keep` accepts held in every other mount namespace than
/// ours: one entry per namespace, mount point and device, through the lowest pid found
/// in the namespace (a process that ends meanwhile is passed over for the next one).
pub fn probe(syntax: DaxSyntax, keep: &dyn Fn(Devno) -> bool) -> Result<Vec<NsMount>, SystemError> {
    let own = ns_inode("/proc/self/ns/mnt").ok_or_else(|| SystemError::Probe {
        msg: "/proc/self/ns/mnt: missing or unreadable".into(),
    })?;
    let mut done = BTreeSet::from([own]);
    let mut out: Vec<NsMount> = Vec::new();
    for pid in pids() {
        let Some(ns) = ns_inode(&format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if done.contains(&ns) {
            continue;
        }
        let origin = format!("/proc/{pid}/mountinfo");
        let Ok(text) = std::fs::read_to_string(&origin) else {
            continue; // it ended: another process of that namespace will do
        };
        // a namespace whose listing cannot be parsed is not ours to judge: skipped
        let Ok(mounts) = super::mounts::parse_mountinfo(&text, &origin, syntax) else {
            continue;
        };
        done.insert(ns);
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_default();
        for m in mounts.into_iter().filter(|m| keep(m.devno)) {
            if !out
                .iter()
                .any(|o| o.ns == ns && o.target == m.target && o.devno == m.devno)
            {
                out.push(NsMount {
                    ns,
                    pid,
                    comm: comm.clone(),
                    target: m.target,
                    devno: m.devno,
                });
            }
        }
    }
    Ok(out)
}

/// Where the run is: its mount namespace, root and working directory, held open.
struct Home {
    ns: File,
    root: File,
    cwd: File,
}

/// An open directory that is only a place (`O_PATH`): for fchdir(2).
fn open_place(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

impl Home {
    fn save() -> Result<Home, SystemError> {
        let os = |what: &str, e: std::io::Error| SystemError::Os {
            what: format!("open {what} (to come back after the other namespaces)"),
            error: e.to_string(),
        };
        Ok(Home {
            ns: File::open("/proc/self/ns/mnt").map_err(|e| os("/proc/self/ns/mnt", e))?,
            root: open_place("/").map_err(|e| os("/", e))?,
            cwd: open_place(".").map_err(|e| os("the working directory", e))?,
        })
    }

    /// Back to our namespace, root and working directory.
    fn restore(&self) -> Result<(), String> {
        nix::sched::setns(&self.ns, CloneFlags::CLONE_NEWNS)
            .map_err(|e| format!("setns to our own mount namespace: {e}"))?;
        nix::unistd::fchdir(&self.root).map_err(|e| format!("fchdir to our root: {e}"))?;
        nix::unistd::chroot(".").map_err(|e| format!("chroot to our root: {e}"))?;
        nix::unistd::fchdir(&self.cwd)
            .map_err(|e| format!("fchdir to our working directory: {e}"))?;
        Ok(())
    }
}

/// Why [`umount`] failed.
#[derive(Debug)]
pub enum Failure {
    /// One or more copies could not be unmounted; the run is back home.
    Failed(SystemError),
    /// The run could not come back to its own mount namespace: nothing more may run.
    Stranded(SystemError),
}

/// The namespace file and the root of a process in namespace `ns` (`pid` first, then
/// any other), or `None` when no process is left in it (the namespace is gone, and its
/// copies with it).
fn enter_points(ns: u64, pid: u32) -> Option<(File, File, u32)> {
    let try_pid = |p: u32| -> Option<(File, File, u32)> {
        let path = format!("/proc/{p}/ns/mnt");
        let f = File::open(&path).ok()?;
        // the file pins the namespace; a reused pid shows another inode
        if f.metadata().ok()?.ino() != ns {
            return None;
        }
        let root = open_place(&format!("/proc/{p}/root")).ok()?;
        // the root is the same process's only if the pid still is in that namespace
        (ns_inode(&path) == Some(ns)).then_some((f, root, p))
    };
    try_pid(pid).or_else(|| pids().into_iter().find_map(try_pid))
}

/// Unmount `target` (of device `devno`) in each namespace of `copies`, lazily (MNT_DETACH)
/// when `lazy`; the output names each namespace and what was done there.
pub fn umount(
    target: &str,
    devno: Devno,
    copies: &[NsMount],
    lazy: bool,
) -> Result<Output, Failure> {
    let home = Home::save().map_err(Failure::Failed)?;
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let rel = match target.trim_start_matches('/') {
        "" => ".",
        r => r,
    };
    let mut flags = MntFlags::UMOUNT_NOFOLLOW;
    if lazy {
        flags |= MntFlags::MNT_DETACH;
    }
    for c in copies {
        let Some((ns, root, pid)) = enter_points(c.ns, c.pid) else {
            lines.push(format!(
                "mnt:[{}] ({}): gone, no process left in it",
                c.ns, c.comm
            ));
            continue;
        };
        let who = format!("mnt:[{}] (pid {pid}, {})", c.ns, c.comm);
        if let Err(e) = nix::sched::setns(&ns, CloneFlags::CLONE_NEWNS) {
            errors.push(format!("{who}: setns: {e}"));
            continue;
        }
        let done = (|| -> Result<String, String> {
            nix::unistd::fchdir(&root).map_err(|e| format!("fchdir to its root: {e}"))?;
            let on = std::fs::symlink_metadata(rel)
                .map(|m| Devno {
                    major: libc::major(m.dev()),
                    minor: libc::minor(m.dev()),
                })
                .map_err(|e| format!("stat {target}: {e}"))?;
            if on != devno {
                return Ok(format!("{target} is no longer on {devno} there ({on})"));
            }
            nix::mount::umount2(Path::new(rel), flags).map_err(|e| {
                if e == nix::errno::Errno::EBUSY {
                    format!("umount {target}: {e}: files are open on it there (set allow_data_loss: true to detach it lazily)")
                } else {
                    format!("umount {target}: {e}")
                }
            })?;
            Ok(format!(
                "unmounted {target}{}",
                if lazy { " (detached)" } else { "" }
            ))
        })();
        if let Err(e) = home.restore() {
            return Err(Failure::Stranded(SystemError::Os {
                what: format!("coming back from {who} after unmounting {target} there"),
                error: e,
            }));
        }
        match done {
            Ok(line) => lines.push(format!("{who}: {line}")),
            Err(e) => errors.push(format!("{who}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(Output {
            argv: None,
            stdout: lines.join("\n"),
            stderr: String::new(),
        })
    } else {
        Err(Failure::Failed(SystemError::Os {
            what: format!("umount {target} ({devno}) in other mount namespaces"),
            error: errors.join("; "),
        }))
    }
}
