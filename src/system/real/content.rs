//! The content of the block devices in the probe's scope: the GPT of each whole disk
//! (`gpt.rs`) and the filesystem signature at the start of each device (`fs.rs`), read
//! through one read-only descriptor per device.
//!
//! Which devices: those [`Reach::read`] allows (see `system/scope.rs`), and of those
//! - GPTs on whole disks (not partitions), held or not;
//! - signatures on devices nothing holds (a dm member's first bytes belong to the device
//!   above it, which is read itself), and on those held only by LVM's dm devices (an
//!   active LV's PVs: [`Reach::own_head`]);
//! - LVM: a head that carries an LVM2 label is a PV ([`crate::lvm::read_pv`] reads its
//!   metadata areas through the same descriptor); a PV whose label or metadata is
//!   damaged is recorded with the error, never fails the probe. Its signature
//!   (`LVM2_member`) is a filesystem signature like any other, so nothing is made over
//!   it unknowingly;
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

use super::sysfs::Dir;
use super::{fs, gpt};
use crate::actual::lvm::{Pv, Vg};
use crate::actual::{BlockDevice, Devno, Filesystem, PartitionTable, Unreadable};
use crate::system::scope::Reach;
use std::fs::File;
use std::io::{self, ErrorKind};
use std::path::Path;

/// How the probe opens a device node (read-only). Tests record the paths.
pub type Opener<'a> = dyn Fn(&str) -> io::Result<File> + 'a;

/// The real opener: `O_RDONLY|O_CLOEXEC|O_DIRECT` (the probe's reads bypass the page
/// cache, see `fs::read_at`), or without `O_DIRECT` where it cannot be had.
pub fn open_device(path: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => File::open(path),
        other => other,
    }
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
    /// Devices that carry an LVM2 label.
    pub pvs: Vec<Pv>,
    /// The VG metadata read from them, a copy per PV ([`crate::actual::Lvm::assemble`]
    /// makes them one VG each).
    pub vg_copies: Vec<Vg>,
}

/// What one device holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    table: Option<PartitionTable>,
    fs: Option<Filesystem>,
    pv: Option<(Pv, Option<Vg>)>,
}

/// Read the devices of `blocks` that `reach` allows; `sys` is where sysfs is mounted.
pub fn read(blocks: &[BlockDevice], reach: &Reach, sys: &Path, open: &Opener<'_>) -> Contents {
    let mut out = Contents::default();
    let class = Dir::open(&sys.join("class/block"));
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
        let signature = b.holders.is_empty() || reach.own_head.contains(&b.devno);
        if !(whole || signature) || removable(sys, b) {
            continue;
        }
        if let Some((kname, dm)) = class.as_ref().and_then(|c| suspended_now(c, b)) {
            out.unreadable.push(unreadable(format!(
                "dm device {dm} {} suspended since it was listed: a read would wait until it is resumed, so it was not read",
                if b.name == kname { "is" } else { "under it was" }
            )));
            continue;
        }
        match read_one(b, whole, signature, sys, open) {
            Ok(found) => {
                out.partition_tables.extend(found.table);
                out.filesystems.extend(found.fs);
                if let Some((pv, vg)) = found.pv {
                    out.pvs.push(pv);
                    out.vg_copies.extend(vg);
                }
            }
            Err(e) => out.unreadable.push(unreadable(e)),
        }
    }
    out
}

/// PMEM and dm devices (by their kernel names): never removable (neither driver marks
/// its disks so), and a PMEM device sits on nothing.
fn pmem_or_dm(name: &str) -> bool {
    name.starts_with("pmem") || name.starts_with("dm-")
}

/// The device (or, for a partition, its disk) is removable.
fn removable(sys: &Path, b: &BlockDevice) -> bool {
    let rel = match &b.partition {
        Some(p) if pmem_or_dm(&p.disk) => return false,
        Some(p) => format!("class/block/{}/removable", p.disk),
        None if pmem_or_dm(&b.name) => return false,
        None => format!("dev/block/{}/removable", b.devno),
    };
    super::sysfs::read(&sys.join(rel)).as_deref() == Some("1")
}

/// sysfs (`class`: its `class/block`) says `b`, or a device it is stacked on (its
/// disk, its `slaves/`, transitively), is a suspended dm device now: its kernel name
/// and dm name. Only a dm device (`dm-N`) can be suspended; a PMEM device sits on
/// nothing, and a dm device is no partition.
fn suspended_now(class: &Dir, b: &BlockDevice) -> Option<(String, String)> {
    let mut todo = vec![b.name.clone()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || seen.len() > 64 || name.starts_with("pmem") {
            continue;
        }
        let dm = name.starts_with("dm-");
        if dm && class.attr(&format!("{name}/dm/suspended")).as_deref() == Some("1") {
            let dm = class
                .attr(&format!("{name}/dm/name"))
                .unwrap_or_else(|| name.clone());
            return Some((name, dm));
        }
        if !dm && class.attr(&format!("{name}/partition")).is_some() {
            // a partition's directory sits in its disk's
            let disk = class.link(&name).ok().and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            });
            todo.extend(disk);
        }
        todo.extend(class.entries(&format!("{name}/slaves")).unwrap_or_default());
    }
    None
}

/// Open `b` (its path, else the first alias that exists), check the node is `b`, and read
/// its GPT (`whole`) and its signature (`signature`). `Err` says what failed, for people.
fn read_one(
    b: &BlockDevice,
    whole: bool,
    signature: bool,
    sys: &Path,
    open: &Opener<'_>,
) -> Result<Found, String> {
    let mut file = None;
    for path in std::iter::once(&b.path).chain(&b.aliases) {
        // the path is in the message only when it is not the device's own
        let via = if *path == b.path {
            String::new()
        } else {
            format!(" (through {path})")
        };
        match open(path) {
            Ok(f) => {
                file = Some((f, via));
                break;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            // no medium: nothing to read
            Err(e) if e.raw_os_error() == Some(libc::ENOMEDIUM) => return Ok(Found::default()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => {
                return Err(format!(
                    "opening it{via}: {e}: it went away during the probe"
                ))
            }
            Err(e) => return Err(format!("opening it{via}: {e}")),
        }
    }
    let Some((mut file, via)) = file else {
        let gone = !sys.join(format!("dev/block/{}", b.devno)).exists();
        return Err(if gone {
            "it went away during the probe".to_string()
        } else {
            "it has no device node (is udev running?)".to_string()
        });
    };
    match gpt::devno_of(&file) {
        Ok(Some(d)) if d == b.devno => {}
        Ok(Some(d)) => {
            return Err(format!(
                "its node{via} is now device {d}, not {} (it changed during the probe)",
                b.devno
            ))
        }
        Ok(None) => return Err(format!("its node{via} is not a block device")),
        Err(e) => return Err(format!("fstat of its node{via}: {e}")),
    }
    read_opened(&mut file, b, whole, signature, &via)
}

/// What the opened device `b` holds: its GPT (`whole`), its signature and PV
/// (`signature`); `via` names the path it was opened through, if not its own.
fn read_opened(
    file: &mut File,
    b: &BlockDevice,
    whole: bool,
    signature: bool,
    via: &str,
) -> Result<Found, String> {
    let table = if whole {
        gpt::read_table(file, b.devno).map_err(|e| format!("reading its GPT{via}: {e}"))?
    } else {
        None
    };
    let (fs, pv) = if signature {
        let head = fs::read_head(file).map_err(|e| format!("reading its first bytes{via}: {e}"))?;
        let pv = read_pv(file, b, &head);
        (fs::parse_superblock(&head, b.devno), pv)
    } else {
        (None, None)
    };
    Ok(Found { table, fs, pv })
}

/// The PV on `b` if its `head` carries an LVM2 label, and the VG its metadata
/// describes; the metadata areas are read through `file`. A damaged label or metadata
/// area is a PV with its error (and no VG).
fn read_pv(file: &File, b: &BlockDevice, head: &[u8]) -> Option<(Pv, Option<Vg>)> {
    let mut read = |offset: u64, len: usize| fs::read_at(file, offset, len);
    match crate::lvm::read_pv(&b.path, head, &mut read) {
        Ok(None) => None,
        Ok(Some(pv)) => Some(Pv::found(b.devno, &pv)),
        Err(e) => {
            let label = crate::lvm::read_label(head).ok().flatten();
            Some((
                Pv::damaged(b.devno, label.as_ref(), e.error.to_string()),
                None,
            ))
        }
    }
}

/// The PV on `device` in `prev` and the VG it belongs to there, as [`read`] gives them
/// (for a re-probe that keeps what it did not read again; the VG kept is the newest copy
/// `prev` had, which stands for this PV's own).
pub fn kept_pv(prev: &crate::actual::Actual, device: Devno) -> Option<(Pv, Option<Vg>)> {
    let pv = prev.pv(device)?.clone();
    let vg = pv.vg.as_deref().and_then(|n| prev.vg(n)).cloned();
    Some((pv, vg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actual::Actual;
    use crate::system::real::{block, mounts, nd};
    use crate::system::scope::{reach, ProbeScope};
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    /// tests/fixtures/sysfs-trees/foreign: the "stack" state (`s` = dm-0 striped over
    /// pmem0 + pmem1, a GPT on pmem1.1 with pmem1.1p1, pmem0.2s, pmem1.2) plus devices that
    /// are not ours: loop0 (ext4), loop1 (GPT) with loop1p1, foreign-err (an `error`
    /// table), foreign-susp (suspended), foreign-on-susp (stacked on it), foreign-over
    /// (over pmem1.2, the undeclared raw namespace).
    fn tree() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees/foreign")
    }

    /// The listing the probe makes before it opens anything, from the captured tree (dm
    /// devices from the `--facts` captured with it: the dm list comes from ioctls).
    fn listing() -> Actual {
        let t = tree();
        let facts = std::fs::read_to_string(t.join("facts.json")).expect("facts.json");
        let facts = crate::read_snapshot(&facts).expect("captured facts");
        let mut a = Actual::default();
        (a.regions, a.namespaces) = nd::probe(&t.join("sys")).expect("nd");
        a.dm_devices = facts.dm_devices;
        a.block_devices =
            block::probe(&t.join("sys"), &t.join("dev"), &a.dm_devices).expect("block");
        let mi = std::fs::read_to_string(t.join("mountinfo.txt")).expect("mountinfo");
        a.mounts = mounts::parse_mountinfo(&mi, "mountinfo.txt", crate::actual::DaxSyntax::Modes)
            .expect("mountinfo parses");
        a
    }

    /// Read `a` under `scope` with an opener that records every path and fails with EIO
    /// (the fixture has no device nodes): (kernel names opened, kernel names unreadable).
    fn probe(a: &Actual, scope: &ProbeScope) -> (Vec<String>, Vec<(String, String)>) {
        let dev = tree().join("dev");
        let opened = RefCell::new(Vec::new());
        let open = |p: &str| {
            opened.borrow_mut().push(p.to_string());
            Err(io::Error::from_raw_os_error(libc::EIO))
        };
        let c = read(
            &a.block_devices,
            &reach(scope, a),
            &tree().join("sys"),
            &open,
        );
        let name = |path: &str| {
            a.block_devices
                .iter()
                .find(|b| b.path == path || b.aliases.iter().any(|x| x == path))
                .map(|b| b.name.clone())
                .unwrap_or_else(|| format!("unknown {path} under {}", dev.display()))
        };
        let mut opened: Vec<String> = opened.borrow().iter().map(|p| name(p)).collect();
        opened.sort();
        let mut bad: Vec<(String, String)> = c
            .unreadable
            .iter()
            .map(|u| (name(&u.path), u.error.clone()))
            .collect();
        bad.sort();
        (opened, bad)
    }

    fn dm_kernel_name(a: &Actual, dm: &str) -> String {
        let d = a.dm(dm).expect("dm device in the fixture");
        a.block(d.devno).expect("its block device").name.clone()
    }

    const OURS: [&str; 8] = [
        "dm-0",
        "pmem0",
        "pmem0.2s",
        "pmem1",
        "pmem1.1",
        "pmem1.1p1",
        "pmem1.2",
        "FOREIGN-OVER",
    ];

    fn ours(a: &Actual) -> Vec<String> {
        let mut v: Vec<String> = OURS
            .iter()
            .map(|n| match *n {
                "FOREIGN-OVER" => dm_kernel_name(a, "foreign-over"),
                n => n.to_string(),
            })
            .collect();
        v.sort();
        v
    }

    /// The scope of a run that declares the dm devices `dm`, names the device `paths`
    /// and mounts on `mounts`.
    fn declared(dm: &[&str], paths: &[&str], mounts: &[&str]) -> ProbeScope {
        let set = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        ProbeScope {
            all_dm: false,
            dm_names: set(dm),
            paths: set(paths),
            mount_points: set(mounts),
            elsewhere: false,
        }
    }

    #[test]
    fn the_fixture_has_the_foreign_devices() {
        let a = listing();
        let names: BTreeSet<&str> = a.block_devices.iter().map(|b| b.name.as_str()).collect();
        for n in ["loop0", "loop1", "loop1p1", "pmem0", "pmem1.1p1"] {
            assert!(names.contains(n), "{n} in {names:?}");
        }
        for dm in [
            "s",
            "foreign-err",
            "foreign-susp",
            "foreign-on-susp",
            "foreign-over",
        ] {
            assert!(a.dm(dm).is_some(), "dm {dm}");
        }
        assert!(a.dm("foreign-susp").is_some_and(|d| d.suspended));
    }

    /// A run of the striped recipe over `s` opens PMEM, `s`, and foreign-over (it holds
    /// pmem1.2): each once. Never a loop device, foreign-err, foreign-susp or what sits
    /// on it.
    #[test]
    fn a_run_opens_only_pmem_its_dm_device_and_their_holders() {
        let a = listing();
        let scope = declared(&["s"], &[], &["/mnt/x"]);
        let (opened, bad) = probe(&a, &scope);
        assert_eq!(opened, ours(&a));
        // each read failed (EIO from the opener): recorded, with the path and the error
        assert_eq!(bad.len(), opened.len());
        assert!(bad
            .iter()
            .all(|(_, e)| e.starts_with("opening it: ") && e.contains("os error 5")));
    }

    /// `--facts`: every dm device too, so foreign-err is opened; foreign-susp and
    /// foreign-on-susp are reported without being opened; loop devices are never opened.
    #[test]
    fn facts_open_every_dm_device_except_a_suspended_one_and_what_sits_on_it() {
        let a = listing();
        let (opened, bad) = probe(&a, &ProbeScope::base());
        let mut want = ours(&a);
        want.push(dm_kernel_name(&a, "foreign-err"));
        want.sort();
        assert_eq!(opened, want);
        let susp = dm_kernel_name(&a, "foreign-susp");
        let on = dm_kernel_name(&a, "foreign-on-susp");
        let find = |n: &str| bad.iter().find(|(b, _)| b == n).map(|(_, e)| e.as_str());
        assert!(
            find(&susp).is_some_and(|e| e.starts_with("dm device foreign-susp is suspended")),
            "{bad:?}"
        );
        assert!(
            find(&on).is_some_and(|e| e.contains("stacked on suspended dm device foreign-susp")),
            "{bad:?}"
        );
        assert!(!opened.iter().any(|n| n.starts_with("loop")));
    }

    /// A path named in the arguments is read (loop0), its siblings are not.
    #[test]
    fn a_named_path_is_read() {
        let a = listing();
        let loop0 = a.block_named("loop0").expect("loop0").path.clone();
        let scope = declared(&[], &[&loop0], &[]);
        let (opened, _) = probe(&a, &scope);
        assert!(opened.contains(&"loop0".to_string()), "{opened:?}");
        assert!(!opened.iter().any(|n| n == "loop1" || n == "loop1p1"));
        // PMEM and what holds it are always read; a dm device that holds none is not
        assert!(opened.contains(&"dm-0".to_string()), "{opened:?}");
        assert!(!opened.contains(&dm_kernel_name(&a, "foreign-err")));
    }

    /// The dm list said active, sysfs says suspended by the time of the read: neither
    /// the device nor the one stacked on it (found through sysfs `slaves/`) is opened.
    #[test]
    fn a_device_suspended_after_the_listing_is_not_opened() {
        let mut a = listing();
        for d in &mut a.dm_devices {
            d.suspended = false;
        }
        let susp = dm_kernel_name(&a, "foreign-susp");
        let on = dm_kernel_name(&a, "foreign-on-susp");
        let (opened, bad) = probe(&a, &ProbeScope::base());
        assert!(
            !opened.contains(&susp) && !opened.contains(&on),
            "{opened:?}"
        );
        let said = |n: &str, what: &str| bad.iter().any(|(b, e)| b == n && e.contains(what));
        assert!(
            said(
                &susp,
                "dm device foreign-susp is suspended since it was listed"
            ),
            "{bad:?}"
        );
        assert!(
            said(&on, "dm device foreign-susp under it was suspended since"),
            "{bad:?}"
        );
    }

    /// How each way an open can fail is reported (the fixture's sysfs says which devices
    /// exist): a device gone (no node and no sysfs entry, or ENXIO), no node while sysfs
    /// has it, EPERM through an alias, and no medium (nothing to read, not an error).
    #[test]
    fn open_failures_are_recorded_with_what_failed() {
        let a = listing();
        let mut b = a.block_named("pmem1.1p1").expect("pmem1.1p1").clone();
        b.aliases = vec!["/dev/disk/by-partlabel/pmemdata".into()];
        let sys = tree().join("sys");
        let one = |b: &BlockDevice, errno: fn(&str) -> io::Error| {
            let open = |p: &str| Err(errno(p));
            let reach = Reach {
                read: BTreeSet::from([b.devno]),
                blocked: Default::default(),
            };
            read(std::slice::from_ref(b), &reach, &sys, &open)
        };
        let enoent = |_: &str| io::Error::from(ErrorKind::NotFound);
        let c = one(&b, enoent);
        assert_eq!(c.unreadable.len(), 1);
        assert_eq!(
            c.unreadable[0].error,
            "it has no device node (is udev running?)"
        );
        let mut gone = b.clone();
        gone.devno = crate::actual::Devno {
            major: 259,
            minor: 99,
        };
        assert_eq!(
            one(&gone, enoent).unreadable[0].error,
            "it went away during the probe"
        );
        let c = one(&b, |_| io::Error::from_raw_os_error(libc::ENXIO));
        assert!(
            c.unreadable[0].error.starts_with("opening it: ")
                && c.unreadable[0]
                    .error
                    .ends_with("it went away during the probe"),
            "{:?}",
            c.unreadable
        );
        let c = one(&b, |p| {
            if p.contains("by-partlabel") {
                io::Error::from_raw_os_error(libc::EPERM)
            } else {
                io::Error::from(ErrorKind::NotFound)
            }
        });
        assert_eq!(
            c.unreadable[0].error,
            "opening it (through /dev/disk/by-partlabel/pmemdata): Operation not permitted (os error 1)"
        );
        let c = one(&b, |_| io::Error::from_raw_os_error(libc::ENOMEDIUM));
        assert_eq!(c, Contents::default());
    }
}
