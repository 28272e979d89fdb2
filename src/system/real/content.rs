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
                ..Reach::default()
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

    /// A block device for a fixture file: `pmemN`, nothing holding it.
    fn pmem(n: u32) -> BlockDevice {
        let devno = Devno {
            major: 259,
            minor: n,
        };
        BlockDevice::for_test(&format!("pmem{n}"), devno, &[])
    }

    fn lvm_fixture(name: &str) -> Vec<u8> {
        use crate::lvm::fixtures::{VGD_PV0, VGP_PV0, VGP_PV1};
        match name {
            "vgp-pv0.bin" => VGP_PV0,
            "vgp-pv1.bin" => VGP_PV1,
            "vgd-pv0.bin" => VGD_PV0,
            other => panic!("no fixture {other}"),
        }
        .to_vec()
    }

    /// What the content reader finds in `bytes` as the content of `b` (written to a
    /// file of their own, opened as the probe opens a device, its signature read; the
    /// node check of `read_one` needs a block device, so it starts after it).
    fn found_in(b: &BlockDevice, bytes: &[u8]) -> Found {
        let dir = std::env::temp_dir().join(format!("pmem-stack-lvm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join(&b.name);
        std::fs::write(&p, bytes).expect("write");
        // the fixtures are cut after their last non-zero byte: the rest of the 256 MiB
        // device was zeros (a sparse file here)
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(256 << 20))
            .expect("set_len");
        let mut f = open_device(&p.to_string_lossy()).expect("open");
        let found = read_opened(&mut f, b, false, true, "").expect("read");
        let _ = std::fs::remove_file(&p);
        found
    }

    /// The PVs and VGs the content reader finds in the fixtures, one device each.
    fn lvm_of(devices: &[(BlockDevice, Vec<u8>)]) -> (crate::actual::Lvm, Vec<Filesystem>) {
        let mut c = Contents::default();
        for (b, bytes) in devices {
            let found = found_in(b, bytes);
            c.filesystems.extend(found.fs);
            if let Some((pv, vg)) = found.pv {
                c.pvs.push(pv);
                c.vg_copies.extend(vg);
            }
        }
        (
            crate::actual::Lvm::assemble(c.pvs, c.vg_copies),
            c.filesystems,
        )
    }

    const PV0: &str = "xF2XA4-lZKO-PKba-OwDq-3Gdr-cJPC-jcS068";
    const PV1: &str = "fBURPP-EAn0-unZc-wofc-3bEA-S8hR-I9huof";

    /// `vgp` over two PVs (`--dataalignment 2m`) and `vgd` with LVM's default alignment:
    /// each PV with its uuid, pe_start, size and VG; `vgp` once, from both copies, its
    /// PVs found on their devices; its LVs and their segments as `lvs --segments` showed
    /// them; each PV's signature is `LVM2_member`.
    #[test]
    fn pvs_vgs_and_lvs_from_the_fixtures() {
        let (lvm, fs) = lvm_of(&[
            (pmem(0), lvm_fixture("vgp-pv0.bin")),
            (pmem(1), lvm_fixture("vgp-pv1.bin")),
            (pmem(2), lvm_fixture("vgd-pv0.bin")),
        ]);
        let mib = |n: u64| crate::units::Bytes(n << 20);
        assert_eq!(lvm.pvs.len(), 3);
        let pv = |n: u32| lvm.pv(pmem(n).devno).expect("pv");
        assert_eq!(pv(0).uuid.as_deref(), Some(PV0));
        assert_eq!(pv(1).uuid.as_deref(), Some(PV1));
        assert_eq!(
            pv(2).uuid.as_deref(),
            Some("96b3Nm-GCwe-bBHd-p1cp-mG4e-kMBr-IbKVH5")
        );
        for n in [0, 1] {
            assert_eq!(pv(n).pe_start, Some(mib(2)));
            assert_eq!(pv(n).vg.as_deref(), Some("vgp"));
        }
        // LVM's default: the data area at 1 MiB, not 2 MiB aligned
        assert_eq!(pv(2).pe_start, Some(mib(1)));
        assert_eq!(pv(2).vg.as_deref(), Some("vgd"));
        assert!(lvm.pvs.iter().all(|p| p.dev_size == Some(mib(256))));
        assert!(lvm.pvs.iter().all(|p| p.error.is_none()));
        assert_eq!(fs.len(), 3);
        assert!(fs.iter().all(|f| f.fstype == "LVM2_member"));

        assert_eq!(lvm.vgs.len(), 2);
        let vgp = lvm.vg("vgp").expect("vgp");
        assert_eq!(vgp.uuid, "P2YlIl-DoYe-fWY3-ky9O-NMmI-3zIj-1KhTDX");
        assert_eq!(vgp.seqno, 3);
        assert_eq!(vgp.extent_size, mib(4));
        let pvs: Vec<(&str, Option<Devno>, crate::units::Bytes, u64)> = vgp
            .pvs
            .iter()
            .map(|p| (p.uuid.as_str(), p.device, p.pe_start, p.pe_count))
            .collect();
        assert_eq!(
            pvs,
            [
                (PV0, Some(pmem(0).devno), mib(2), 63),
                (PV1, Some(pmem(1).devno), mib(2), 63)
            ]
        );
        let names: Vec<&str> = vgp.lvs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lvs", "lvl"]);

        let (_, lvs) = lvm.lv("vgp", "lvs").expect("lvs");
        assert_eq!(lvs.uuid, "tBS1by-Sh0G-f0vp-SLV9-B0Mf-CKOl-QtorXp");
        assert_eq!(lvs.segments.len(), 1);
        let s = &lvs.segments[0];
        assert_eq!(
            (s.start_extent, s.extent_count, s.segtype.as_str()),
            (0, 16, "striped")
        );
        assert_eq!((s.stripe_count, s.stripe_size), (2, Some(mib(2))));
        let stripes: Vec<(&str, u64)> = s
            .stripes
            .iter()
            .map(|x| (x.pv.as_str(), x.offset))
            .collect();
        assert_eq!(stripes, [(PV0, 0), (PV1, 0)]);
        assert_eq!(
            lvs.dm_uuid(vgp),
            "LVM-P2YlIlDoYefWY3ky9ONMmI3zIj1KhTDXtBS1bySh0Gf0vpSLV9B0MfCKOlQtorXp"
        );

        let (_, lvl) = lvm.lv("vgp", "lvl").expect("lvl");
        assert_eq!(lvl.uuid, "aXQiHo-z3s1-Zec2-2gKA-zN1b-R8dx-chxaCA");
        let s = &lvl.segments[0];
        assert_eq!(
            (s.start_extent, s.extent_count, s.segtype.as_str()),
            (0, 8, "striped")
        );
        assert_eq!((s.stripe_count, s.stripe_size), (1, None));
        assert_eq!(s.stripes[0].pv, PV0);
        assert_eq!(s.stripes[0].offset, 8);

        let (vgd, lvd) = lvm.lv("vgd", "lvd").expect("lvd");
        assert_eq!(vgd.seqno, 2);
        assert_eq!(vgd.pvs[0].pe_start, mib(1));
        assert_eq!(lvd.extent_count(), 25);
        assert!(lvm.lv("vgd", "lvs").is_none() && lvm.vg("vgx").is_none());
    }

    /// The copy with the highest seqno wins, whichever PV it is on; a copy of another
    /// VG's uuid under the same name stays another VG.
    #[test]
    fn the_newest_copy_of_a_vg_is_kept() {
        let (lvm, _) = lvm_of(&[
            (pmem(0), lvm_fixture("vgp-pv0.bin")),
            (pmem(1), lvm_fixture("vgp-pv1.bin")),
        ]);
        let vgp = lvm.vg("vgp").expect("vgp").clone();
        let mut newer = vgp.clone();
        newer.seqno = 4;
        newer.lvs.pop();
        let mut other = vgp.clone();
        other.uuid = "other".into();
        let a = crate::actual::Lvm::assemble(
            lvm.pvs.clone(),
            vec![vgp.clone(), newer.clone(), vgp.clone(), other],
        );
        assert_eq!(a.vgs.len(), 2);
        assert_eq!(a.vgs[0].seqno, 4);
        assert_eq!(a.vgs[0].lvs.len(), 1);
        assert_eq!(a.vgs[0].pvs[1].device, Some(pmem(1).devno));
        assert_eq!(a.vg_by_uuid("other").map(|v| v.seqno), Some(3));
    }

    /// A PV whose metadata text is damaged (a byte changed: its checksum fails) or whose
    /// label is: recorded with the error, the probe goes on; the VG is still known from
    /// its other PV, which also finds the damaged one's device by its label's uuid.
    #[test]
    fn a_damaged_pv_is_recorded_with_its_error() {
        let mut text = lvm_fixture("vgp-pv1.bin");
        let end = text.len();
        text[end - 100] ^= 0x20; // in the current text, which runs to the end
        let mut label = lvm_fixture("vgd-pv0.bin");
        label[512 + 100] ^= 0xff;
        let (lvm, fs) = lvm_of(&[
            (pmem(0), lvm_fixture("vgp-pv0.bin")),
            (pmem(1), text),
            (pmem(2), label),
        ]);
        let pv1 = lvm.pv(pmem(1).devno).expect("pv1");
        assert_eq!(pv1.uuid.as_deref(), Some(PV1));
        assert_eq!(pv1.vg, None);
        let e = pv1.error.as_deref().expect("an error");
        assert!(e.contains("checksum"), "{e}");
        let pv2 = lvm.pv(pmem(2).devno).expect("pv2");
        assert_eq!((pv2.uuid.as_deref(), pv2.pe_start), (None, None));
        let e = pv2.error.as_deref().expect("an error");
        assert!(e.contains("label"), "{e}");
        // vgp from pv0's copy, both its PVs found; vgd not known
        let vgp = lvm.vg("vgp").expect("vgp");
        assert!(vgp.pvs.iter().all(|p| p.device.is_some()));
        assert_eq!(lvm.vgs.len(), 1);
        // still LVM2_member by its magic: nothing is made over it unknowingly
        assert_eq!(fs.len(), 3);
    }

    /// A device that is no PV gives none (a head without the label).
    #[test]
    fn no_label_no_pv() {
        let found = found_in(&pmem(5), &vec![0u8; 8192]);
        assert_eq!(found, Found::default());
    }
}
