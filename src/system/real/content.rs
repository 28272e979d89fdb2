//! The content of the block devices in the probe's scope: the GPT of each whole disk
//! (`gpt.rs`) and the filesystem signature at the start of each device (`fs.rs`), read
//! through one read-only descriptor per device.
//!
//! Which devices: those [`Reach::read`] allows (see `system/scope.rs`), and of those
//! - GPTs on whole disks (not partitions), held or not;
//! - signatures on devices nothing holds (a dm member's first bytes belong to the device
//!   above it, which is read itself);
//! - never empty devices, nor removable ones (we never manage them, and reading an empty
//!   drive can stall);
//! - never a suspended dm device or one stacked on it ([`Reach::blocked`]): a read waits
//!   until the device is resumed. sysfs is looked at once more just before opening, for
//!   a dm device suspended since it was listed (a device suspended between that look and
//!   the read would still block the read; that window is not closed).
//!
//! A device that fails (EIO, EPERM, gone: ENXIO or no node any more, a node that is now
//! another device) is recorded in the result's `unreadable` with the path and the
//! error, and the probe goes on: the planner decides whether the run needs it.

use super::{fs, gpt};
use crate::actual::{BlockDevice, Devno, Filesystem, PartitionTable, Unreadable};
use crate::system::scope::Reach;
use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::Path;

/// How the probe opens a device node (read-only). Tests record the paths.
pub type Opener = dyn Fn(&str) -> io::Result<File>;

/// The real opener: `O_RDONLY|O_CLOEXEC`.
pub fn open_device(path: &str) -> io::Result<File> {
    File::open(path)
}

/// What the devices in reach hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// GPTs of whole disks.
    pub partition_tables: Vec<PartitionTable>,
    /// Filesystem (and other) signatures.
    pub filesystems: Vec<Filesystem>,
    /// Devices in scope that could not be read, with why.
    pub unreadable: Vec<Unreadable>,
}

/// Read the devices of `blocks` that `reach` allows; `sys` is where sysfs is mounted.
pub fn read(blocks: &[BlockDevice], reach: &Reach, sys: &Path, open: &Opener) -> Contents {
    let mut out = Contents::default();
    for b in blocks {
        let unreadable = |error: String| Unreadable {
            device: b.devno,
            path: b.path.clone(),
            error,
        };
        if let Some(why) = reach.blocked.get(&b.devno) {
            out.unreadable.push(unreadable(why.clone()));
            continue;
        }
        if !reach.read.contains(&b.devno) || b.size.0 == 0 {
            continue;
        }
        let whole = b.partition.is_none();
        let signature = b.holders.is_empty();
        if !(whole || signature) || removable(sys, b) {
            continue;
        }
        if suspended_now(sys, b.devno) {
            out.unreadable.push(unreadable(
                "it is a suspended dm device (suspended after it was listed): a read would wait until it is resumed, so it was not read".into(),
            ));
            continue;
        }
        match read_one(b, whole, signature, sys, open) {
            Ok((table, fs)) => {
                out.partition_tables.extend(table);
                out.filesystems.extend(fs);
            }
            Err(e) => out.unreadable.push(unreadable(e)),
        }
    }
    out
}

fn attr(sys: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(sys.join(rel))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The device (or, for a partition, its disk) is removable.
fn removable(sys: &Path, b: &BlockDevice) -> bool {
    let rel = match &b.partition {
        Some(p) => format!("class/block/{}/removable", p.disk),
        None => format!("dev/block/{}/removable", b.devno),
    };
    attr(sys, &rel).as_deref() == Some("1")
}

/// sysfs says the dm device is suspended now.
fn suspended_now(sys: &Path, devno: Devno) -> bool {
    attr(sys, &format!("dev/block/{devno}/dm/suspended")).as_deref() == Some("1")
}

/// Open `b` (its path, else the first alias that exists), check the node is `b`, and read
/// its GPT (`whole`) and its signature (`signature`). `Err` says what failed, for people.
fn read_one(
    b: &BlockDevice,
    whole: bool,
    signature: bool,
    sys: &Path,
    open: &Opener,
) -> Result<(Option<PartitionTable>, Option<Filesystem>), String> {
    let mut file = None;
    for path in std::iter::once(&b.path).chain(&b.aliases) {
        match open(path) {
            Ok(f) => {
                file = Some((f, path));
                break;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            // no medium: nothing to read
            Err(e) if e.raw_os_error() == Some(libc::ENOMEDIUM) => return Ok((None, None)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => {
                return Err(format!(
                    "opening {path}: {e}: the device went away during the probe"
                ))
            }
            Err(e) => return Err(format!("opening {path}: {e}")),
        }
    }
    let Some((mut file, path)) = file else {
        let gone = !sys.join(format!("dev/block/{}", b.devno)).exists();
        return Err(if gone {
            format!("{}: the device went away during the probe", b.path)
        } else {
            format!("{}: no device node (is udev running?)", b.path)
        });
    };
    match gpt::devno_of(&file) {
        Ok(Some(d)) if d == b.devno => {}
        Ok(Some(d)) => {
            return Err(format!(
                "{path} is now device {d}, not {} (it changed during the probe)",
                b.devno
            ))
        }
        Ok(None) => return Err(format!("{path} is not a block device")),
        Err(e) => return Err(format!("fstat {path}: {e}")),
    }
    let table = if whole {
        gpt::read_table(&mut file, b.devno)
            .map_err(|e| format!("reading the GPT of {path}: {e}"))?
    } else {
        None
    };
    let fs = if signature {
        let head = fs::read_head(&file).map_err(|e| format!("reading the start of {path}: {e}"))?;
        fs::parse_superblock(&head, b.devno)
    } else {
        None
    };
    Ok((table, fs))
}
