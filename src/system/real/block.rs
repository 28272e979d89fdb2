//! Block devices, read from sysfs (`/sys/class/block`) and the udev links under `/dev`.
//!
//! Hand-written (a handful of sysfs reads): the crates that list block devices either
//! spawn `lsblk`/`blkid` or go through libudev/libblkid (C libraries), and we need
//! exactly the kernel's view: `dev` (major:minor), `size` (512-byte sectors whatever the
//! logical block size), `queue/dax`, `holders/`, and for partitions `partition`, `start`
//! and the parent disk (the directory a partition's directory sits in).
//!
//! A partition has no `queue/`: it can do DAX when its disk can and its start and size
//! are whole pages (the kernel's `fs_dax_get_by_bdev` refuses "unaligned partition for
//! dax" otherwise).
//!
//! Paths: `/dev/NAME`; for dm devices `/dev/mapper/<dm name>`, with `/dev/dm-N` as an
//! alias. Other aliases are the udev links in `/dev/disk/by-{id,uuid,label,partuuid,
//! partlabel}` that point at the device node: udev always links to `../../NAME` (the
//! kernel name), so a link belongs to the device whose kernel name ends its target.

use super::nd::{attr, attr_parsed, list_dir, malformed, natural_key, required_u64};
use super::sysfs::Dir;
use crate::actual::{BlockDevice, Devno, DmDevice, PartitionOf};
use crate::system::SystemError;
use crate::units::Sectors;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Sectors in a 4 KiB page: partition start and size must be multiples for DAX.
const PAGE_SECTORS: u64 = 8;

/// The `/dev/disk` link directories whose entries become aliases.
const LINK_DIRS: [&str; 5] = [
    "by-id",
    "by-uuid",
    "by-label",
    "by-partuuid",
    "by-partlabel",
];

/// Block devices under `sys`/class/block, with paths under `dev` (normally `/dev`).
/// Unused loop, ram and zram devices (size 0) are left out. `dms` gives dm names when
/// sysfs has no `dm/name`.
pub fn probe(sys: &Path, dev: &Path, dms: &[DmDevice]) -> Result<Vec<BlockDevice>, SystemError> {
    list(sys, dev, dms, None, &mut Seen::default(), None)
}

/// The same, but only the block devices this stack can involve: PMEM (`pmem*`), dm
/// devices (`dm-*`), the devices numbered in `also` (paths named in the arguments, the
/// sources of mounts at declared mount points), the partitions of those, and what holds
/// any of them, transitively. Every other device on the machine costs one directory
/// entry: its attributes are not read, so a host with many unrelated disks probes as
/// fast as one without.
pub fn probe_scoped(
    sys: &Path,
    dev: &Path,
    dms: &[DmDevice],
    also: &[Devno],
) -> Result<Vec<BlockDevice>, SystemError> {
    list(sys, dev, dms, Some(also), &mut Seen::default(), None)
}

/// A listing after a step: the block devices of `prev` that the step cannot have
/// changed are kept (their udev links are read again), the rest is read.
#[derive(Debug, Clone, Copy)]
pub struct Again<'a> {
    /// The listing before the step.
    pub prev: &'a [BlockDevice],
    /// Kernel names the step may have changed (made, removed, resized, stacked on or
    /// under something, given a partition or a filesystem): read again.
    pub dirty: &'a BTreeSet<String>,
}

/// List the block devices: all of them (`scoped` None) or those a run can involve (see
/// [`probe_scoped`]). With `again`, the devices of `again.prev` that are not dirty are
/// kept as they were, except for their udev links; a device that is new (not in the
/// last listing, `seen`), or gone, makes the devices it sits on dirty (their holders
/// changed). With `again`, a udev link `seen` before (same inode) is not read again.
pub fn list(
    sys: &Path,
    dev: &Path,
    dms: &[DmDevice],
    scoped: Option<&[Devno]>,
    seen: &mut Seen,
    again: Option<Again<'_>>,
) -> Result<Vec<BlockDevice>, SystemError> {
    let path = sys.join("class/block");
    let names: BTreeSet<String> = list_dir(&path)?.into_iter().collect();
    let Some(class) = Dir::open(&path) else {
        return Ok(Vec::new()); // no block devices at all
    };
    let kept: BTreeMap<&str, &BlockDevice> = match again {
        Some(g) => kept(&class, &names, &seen.names, g),
        None => BTreeMap::new(),
    };
    // holders read while finding what is wanted are not read again
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let wanted: Option<BTreeSet<String>> =
        scoped.map(|also| wanted_names(sys, &class, &names, also, &kept, &mut holders));
    let linked = seen.read_links(dev, wanted.as_ref(), again.is_some())?;
    let mut out = Vec::new();
    for name in &names {
        if wanted.as_ref().is_some_and(|w| !w.contains(name)) {
            continue;
        }
        if let Some(b) = kept.get(name.as_str()) {
            let mut b = (*b).clone();
            let kernel_path = b.path != dev.join(name).to_string_lossy();
            b.aliases.clear();
            if kernel_path {
                // a dm device: /dev/mapper/NAME, and /dev/dm-N as an alias
                b.aliases
                    .push(dev.join(name).to_string_lossy().into_owned());
            }
            b.aliases
                .extend(linked.get(name).into_iter().flatten().cloned());
            out.push(b);
            continue;
        }
        let held = holders.remove(name);
        if let Some(b) = device(&class, name, dev, dms, &linked, held)? {
            out.push(b);
        }
    }
    out.sort_by_key(|b| (b.devno, natural_key(&b.name)));
    seen.names = names;
    Ok(out)
}

/// The devices of `g.prev` kept as they are: still listed, not dirty, not under a device
/// that came (not in `before`, the last listing's names) or went since (its holders
/// changed).
fn kept<'a>(
    class: &Dir,
    names: &BTreeSet<String>,
    before: &BTreeSet<String>,
    g: Again<'a>,
) -> BTreeMap<&'a str, &'a BlockDevice> {
    let listed: BTreeSet<&str> = g.prev.iter().map(|b| b.name.as_str()).collect();
    let mut dirty: BTreeSet<String> = g.dirty.clone();
    // a new device holds what it is stacked on (its `slaves`); without the last
    // listing's names, a name `prev` does not have counts as new
    let new = |n: &&String| {
        if before.is_empty() {
            !listed.contains(n.as_str())
        } else {
            !before.contains(*n)
        }
    };
    for new in names.iter().filter(new) {
        dirty.extend(class.entries(&format!("{new}/slaves")).unwrap_or_default());
    }
    // a device gone no longer holds what it was stacked on
    for b in g.prev {
        if b.holders.iter().any(|h| !names.contains(h)) {
            dirty.insert(b.name.clone());
        }
    }
    g.prev
        .iter()
        .filter(|b| names.contains(&b.name) && !dirty.contains(&b.name))
        .map(|b| (b.name.as_str(), b))
        .collect()
}

/// The kernel names [`probe_scoped`] reads (see there). The holders read on the way go
/// to `holders`; those of a `kept` device are its listing's.
fn wanted_names(
    sys: &Path,
    class: &Dir,
    names: &BTreeSet<String>,
    also: &[Devno],
    kept: &BTreeMap<&str, &BlockDevice>,
    holders: &mut BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let ours = |n: &str| n.starts_with("pmem") || n.starts_with("dm-");
    let mut wanted: BTreeSet<String> = names.iter().filter(|n| ours(n)).cloned().collect();
    // `/sys/dev/block/MAJ:MIN` links to the device's directory, named as the device (a
    // device kept from the last listing is known by its number)
    let mut extra: Vec<String> = also
        .iter()
        .filter_map(|d| match kept.values().find(|b| b.devno == *d) {
            Some(b) => Some(b.name.clone()),
            None => std::fs::read_link(sys.join("dev/block").join(d.to_string()))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
        })
        .filter(|n| names.contains(n) && !ours(n))
        .collect();
    // their partitions (subdirectories of a disk's directory that are block devices); a
    // PMEM or dm device's partitions are named after it, and wanted already
    let parts: Vec<String> = extra
        .iter()
        .flat_map(|disk| class.entries(disk).unwrap_or_default())
        .filter(|n| names.contains(n))
        .collect();
    extra.extend(parts);
    wanted.extend(extra);
    // and what holds any of them, transitively
    let mut todo: Vec<String> = wanted.iter().cloned().collect();
    while let Some(n) = todo.pop() {
        let held = match kept.get(n.as_str()) {
            Some(b) => b.holders.clone(),
            None => {
                let h = class.entries(&format!("{n}/holders")).unwrap_or_default();
                holders.insert(n.clone(), h.clone());
                h
            }
        };
        for h in held {
            if names.contains(&h) && wanted.insert(h.clone()) {
                todo.push(h);
            }
        }
    }
    wanted
}

/// Block device `name` (a name in `class`, `/sys/class/block`), with its `holders` when
/// they were read already.
fn device(
    class: &Dir,
    name: &str,
    dev: &Path,
    dms: &[DmDevice],
    links: &BTreeMap<String, Vec<String>>,
    holders: Option<Vec<String>>,
) -> Result<Option<BlockDevice>, SystemError> {
    let Some(d) = class.at(name) else {
        return Ok(None); // removed while we looked
    };
    let dir = &d;
    let size = required_u64(dir, "size")?;
    if size == 0
        && ["loop", "ram", "zram"].iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
    {
        return Ok(None);
    }
    let dev_text = attr(dir, "dev").unwrap_or_default();
    let devno: Devno = dev_text
        .parse()
        .map_err(|_| malformed(&dir.path().join("dev"), &dev_text, "major:minor"))?;

    let (partition, dax) = match attr_parsed::<u32>(dir, "partition")? {
        Some(number) => {
            let start = required_u64(dir, "start")?;
            // the disk is the directory the partition's directory sits in: where its
            // `/sys/class/block` link leads (`../../devices/.../DISK/NAME`)
            let real = match class.link(name) {
                Ok(target) => target,
                Err(_) => std::fs::canonicalize(dir.path()).map_err(|e| SystemError::Probe {
                    msg: format!("{}: {e}", dir.path().display()),
                })?,
            };
            let disk = real
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty() && n != "..")
                .ok_or_else(|| SystemError::Probe {
                    msg: format!("{}: partition without a parent disk", real.display()),
                })?;
            // the disk's own entry in /sys/class/block is its directory
            let dax = class.attr(&format!("{disk}/queue/dax")).as_deref() == Some("1")
                && start.is_multiple_of(PAGE_SECTORS)
                && size.is_multiple_of(PAGE_SECTORS);
            let p = PartitionOf {
                disk,
                number,
                start: Sectors(start),
            };
            (Some(p), dax)
        }
        None => (None, queue_dax(dir)),
    };

    let mut holders = match holders {
        Some(h) => h,
        None => dir.entries("holders").map_err(|e| SystemError::Probe {
            msg: format!("{}: {e}", dir.path().join("holders").display()),
        })?,
    };
    holders.sort_by_key(|h| natural_key(h));

    let kernel_path = dev.join(name).to_string_lossy().into_owned();
    // only a dm device (the kernel names it dm-N) has `dm/`
    let dm_name = name
        .starts_with("dm-")
        .then(|| attr(dir, "dm/name"))
        .flatten()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            dms.iter()
                .find(|d| d.devno == devno)
                .map(|d| d.name.clone())
        });
    let mut aliases = Vec::new();
    let path = match dm_name {
        Some(n) => {
            aliases.push(kernel_path);
            dev.join("mapper").join(n).to_string_lossy().into_owned()
        }
        None => kernel_path,
    };
    aliases.extend(links.get(name).into_iter().flatten().cloned());

    Ok(Some(BlockDevice {
        name: name.to_string(),
        devno,
        path,
        aliases,
        size: Sectors(size),
        dax,
        holders,
        partition,
        max_sectors_kb: attr(dir, "queue/max_sectors_kb").and_then(|v| v.trim().parse().ok()),
    }))
}

/// `queue/dax` is 1.
fn queue_dax(dir: &Dir) -> bool {
    attr(dir, "queue/dax").as_deref() == Some("1")
}

/// What the last listing saw: every kernel name under `/sys/class/block`, and the udev
/// links under `/dev/disk/by-*`: (directory, entry) -> (inode, the kernel name its
/// target ends in). udev makes a link anew (a new inode) whenever it points it
/// elsewhere, so a link with the inode seen before leads where it led.
#[derive(Debug, Default)]
pub struct Seen {
    names: BTreeSet<String>,
    links: BTreeMap<(&'static str, String), (u64, Option<String>)>,
}

impl Seen {
    /// Kernel name -> the udev links that lead to it (sorted), from `dev`/disk/by-*;
    /// with `only`, just the links of those devices. With `known`, a link seen before
    /// with the same inode is not read again; every link read is remembered.
    fn read_links(
        &mut self,
        dev: &Path,
        only: Option<&BTreeSet<String>>,
        known: bool,
    ) -> Result<BTreeMap<String, Vec<String>>, SystemError> {
        use std::os::unix::fs::DirEntryExt;
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut seen = BTreeMap::new();
        for sub in LINK_DIRS {
            let dir = dev.join("disk").join(sub);
            let mut entries: Vec<(String, u64)> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .map(|e| {
                        e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.ino()))
                            .map_err(|e| SystemError::Probe {
                                msg: format!("{}: {e}", dir.display()),
                            })
                    })
                    .collect::<Result<_, _>>()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    return Err(SystemError::Probe {
                        msg: format!("{}: {e}", dir.display()),
                    })
                }
            };
            entries.sort();
            for (n, ino) in entries {
                let key = (sub, n);
                let target = match self.links.get(&key) {
                    Some((i, t)) if known && *i == ino => t.clone(),
                    _ => std::fs::read_link(dir.join(&key.1))
                        .ok() // not a link
                        .and_then(|t| t.file_name().map(|k| k.to_string_lossy().into_owned())),
                };
                if let Some(kname) = &target {
                    if only.is_none_or(|o| o.contains(kname)) {
                        map.entry(kname.clone())
                            .or_default()
                            .push(dir.join(&key.1).to_string_lossy().into_owned());
                    }
                }
                seen.insert(key, (ino, target));
            }
        }
        self.links = seen;
        Ok(map)
    }
}

/// What `zero_ends` clears at the start of a namespace: its GPT, the superblocks of a
/// filesystem on it or on a partition starting in it, and the first chunks of a dm device
/// it was the first member of.
pub const ZERO_HEAD: u64 = 16 << 20;
/// What `zero_ends` clears at its end: the backup GPT.
pub const ZERO_TAIL: u64 = 1 << 20;

/// BLKZEROOUT = _IO(0x12, 127) (linux/fs.h): the kernel zeroes a byte range of a block
/// device (`uint64_t[2]`: start, length; both multiples of the logical block size) and
/// drops the page cache over it.
mod ioctls {
    nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);
}
use ioctls::blkzeroout;

/// Zero the first `ZERO_HEAD` and the last `ZERO_TAIL` bytes of the block device at
/// `path`, opened exclusively (it fails if anything holds or mounts it), and fsync.
///
/// ndctl does not clear a namespace it creates: one made where a destroyed one was shows
/// the old GPT, filesystem or dm member content, which the next run would take for data
/// to keep. Nothing else needs clearing: the planner treats a namespace it creates as
/// empty, and this makes it so.
///
/// How: see [`zero_ranges`]. A devdax namespace has no block device: it is never
/// cleared (see the namespace op).
pub fn zero_ends(path: &Path, record: &super::record::Recorder) -> Result<String, SystemError> {
    let (size, how) = zero_ranges(
        path,
        |size| {
            let head = ZERO_HEAD.min(size);
            [(0, head), (size.saturating_sub(ZERO_TAIL).max(head), size)]
        },
        record,
    )?;
    let head = ZERO_HEAD.min(size);
    let tail = size - size.saturating_sub(ZERO_TAIL).max(head);
    Ok(format!(
        "zeroed {head} bytes at the start and {tail} at the end of {} ({how})",
        path.display()
    ))
}

/// Where an LVM2 label can be: the first 4 sectors (`pvcreate` zeroes them before it
/// writes its label in the second).
pub const PV_LABEL_BYTES: u64 = 2048;

/// Zero the LVM2 label of the block device at `path` (its first [`PV_LABEL_BYTES`]),
/// opened exclusively, and fsync: what a `pvcreate` stopped before its metadata area
/// leaves, which every `lvm` command refuses (see `actual::lvm::Pv::unfinished`).
pub fn zero_pv_label(path: &Path, record: &super::record::Recorder) -> Result<String, SystemError> {
    let (size, how) = zero_ranges(path, |size| [(0, PV_LABEL_BYTES.min(size))], record)?;
    Ok(format!(
        "zeroed the first {} bytes of {} (the LVM2 label; {how})",
        PV_LABEL_BYTES.min(size),
        path.display()
    ))
}

/// Zero the byte ranges `ranges(size)` (`(start, end)`, in order, not overlapping) of
/// the block device at `path`, opened exclusively (it fails if anything holds or mounts
/// it), and fsync. The kernel does the zeroing (BLKZEROOUT: no buffer is copied from
/// this process; for pmem it writes zero pages in the driver), and its time goes to
/// `record` as kernel time. A file that is not a block device (the unit tests' stand-in)
/// or a kernel that refuses the ioctl (ENOTTY, EOPNOTSUPP, EINVAL on a size that is not
/// a multiple of the logical block size) is zeroed with writes instead. Returns the
/// device's size and how it was zeroed.
fn zero_ranges<const N: usize>(
    path: &Path,
    ranges: impl FnOnce(u64) -> [(u64, u64); N],
    record: &super::record::Recorder,
) -> Result<(u64, &'static str), SystemError> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let os = |what: &str, e: std::io::Error| SystemError::Os {
        what: format!("{what} {}", path.display()),
        error: e.to_string(),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| os("open (exclusive)", e))?;
    let size = f.seek(SeekFrom::End(0)).map_err(|e| os("size of", e))?;
    let block = f
        .metadata()
        .map_err(|e| os("stat", e))?
        .file_type()
        .is_block_device();
    let mut how = "BLKZEROOUT";
    let mut zeros = Vec::new();
    for (start, end) in ranges(size) {
        if start >= end {
            continue;
        }
        if block && how == "BLKZEROOUT" {
            let range = [start, end - start];
            // SAFETY: `f` is an open block device and `range` lives across the call.
            match record.kernel("BLKZEROOUT", || unsafe {
                blkzeroout(f.as_raw_fd(), &range)
            }) {
                Ok(_) => continue,
                Err(
                    nix::errno::Errno::ENOTTY
                    | nix::errno::Errno::EOPNOTSUPP
                    | nix::errno::Errno::EINVAL,
                ) => how = "writes",
                Err(e) => return Err(os("BLKZEROOUT on", std::io::Error::from(e))),
            }
        } else {
            how = "writes";
        }
        if zeros.is_empty() {
            zeros = vec![0u8; 1 << 20];
        }
        let mut at = start;
        while at < end {
            let n = (end - at).min(zeros.len() as u64) as usize;
            f.write_all_at(&zeros[..n], at).map_err(|e| os("zero", e))?;
            at += n as u64;
        }
    }
    record
        .kernel("fsync", || f.sync_all())
        .map_err(|e| os("fsync", e))?;
    Ok((size, how))
}

/// The device number sysfs gives the block device `name` (`/sys/class/block/NAME/dev`).
pub fn devno_of(sys: &Path, name: &str) -> Result<Devno, SystemError> {
    let path = sys.join("class/block").join(name).join("dev");
    let text = std::fs::read_to_string(&path).map_err(|e| SystemError::Os {
        what: format!("reading {}", path.display()),
        error: e.to_string(),
    })?;
    let parsed = text
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match parsed {
        Some((major, minor)) => Ok(Devno { major, minor }),
        None => Err(SystemError::Os {
            what: format!("reading {}", path.display()),
            error: format!("not MAJOR:MINOR: {:?}", text.trim()),
        }),
    }
}

/// How long [`wait_node`] waits for udev (as long as `udevadm settle` was given).
pub const NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Wait until `path` is the block device `devno` (udev makes `/dev/mapper/NAME` links
/// after the kernel's event; devtmpfs makes `/dev/pmemN` and `/dev/dm-N` before the
/// kernel call that adds the device returns), polling, for at most [`NODE_TIMEOUT`].
/// This waits for the one node the next steps open, not for everything queued in udev
/// (`udevadm settle`). Where udev does not run (no `/run/udev/control`) nothing would
/// make the link: it returns at once, as a settle would, and a step that opens the path
/// fails naming it. The wait counts as time in an external program (udev) in `record`.
pub fn wait_node(
    path: &str,
    devno: Devno,
    record: &super::record::Recorder,
) -> Result<(), SystemError> {
    wait_node_in(
        path,
        devno,
        record,
        Path::new("/run/udev/control"),
        NODE_TIMEOUT,
    )
}

fn wait_node_in(
    path: &str,
    devno: Devno,
    record: &super::record::Recorder,
    udev_control: &Path,
    timeout: std::time::Duration,
) -> Result<(), SystemError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let is = || {
        std::fs::metadata(path).is_ok_and(|m| {
            m.file_type().is_block_device()
                && libc::major(m.rdev()) == devno.major
                && libc::minor(m.rdev()) == devno.minor
        })
    };
    if is() {
        return Ok(());
    }
    if !udev_control.exists() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_micros(500);
    let found = loop {
        if is() {
            break true;
        }
        if started.elapsed() >= timeout {
            break false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
    };
    record.external("udev (wait for a device node)".into(), started);
    if found {
        return Ok(());
    }
    let now = match std::fs::metadata(path) {
        Ok(m) => format!("it is {}:{}", libc::major(m.rdev()), libc::minor(m.rdev())),
        Err(e) => format!("{e}"),
    };
    Err(SystemError::Os {
        what: format!("waiting for {path} ({devno})"),
        error: format!(
            "udev did not make it within {} s ({now}); is udev running (`udevadm settle`, `udevadm monitor`)?",
            timeout.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tree(state: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysfs-trees")
            .join(state)
    }

    fn named<'a>(v: &'a [BlockDevice], name: &str) -> &'a BlockDevice {
        v.iter()
            .find(|b| b.name == name)
            .expect("device in fixture")
    }

    #[test]
    fn waiting_for_a_node_checks_its_number_and_gives_up_with_its_name() {
        let record = super::super::record::Recorder::default();
        // /dev/null is a character device: never the block device asked for
        let devno = Devno { major: 1, minor: 3 };
        let present = Path::new("/");
        let short = std::time::Duration::from_millis(30);
        let e = wait_node_in("/dev/null", devno, &record, present, short)
            .expect_err("not that block device");
        assert!(e.to_string().contains("waiting for /dev/null (1:3)"), "{e}");
        assert!(e.to_string().contains("udev did not make it within"), "{e}");
        let e =
            wait_node_in("/nonexistent/x", devno, &record, present, short).expect_err("missing");
        assert!(e.to_string().contains("No such file"), "{e}");
        assert_eq!(record.timing().external.len(), 2, "the waits are counted");
        // no udev: nothing would make it, so no wait
        let none = Path::new("/nonexistent/udev/control");
        assert!(wait_node_in("/nonexistent/x", devno, &record, none, short).is_ok());
    }

    #[test]
    fn fresh_label_less_disks() {
        let t = tree("fresh");
        let v = probe(&t.join("sys"), &t.join("dev"), &[]).expect("probe");
        let names: Vec<&str> = v.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["pmem0", "pmem1"]); // by devno
        let b = named(&v, "pmem0");
        assert_eq!(
            b.devno,
            Devno {
                major: 259,
                minor: 0
            }
        );
        assert_eq!(b.size, Sectors(2 * 1024 * 1024));
        assert_eq!(b.path, t.join("dev/pmem0").to_string_lossy());
        // raw label-less namespaces are not DAX-capable
        assert!(!b.dax);
        assert!(b.holders.is_empty() && b.partition.is_none());
    }

    /// tests/fixtures/sysfs-trees "stack": dm-0 = `s`, striped over pmem0 and pmem1;
    /// a GPT on pmem1.1 with pmem1.1p1 at sector 4096; pmem0.2s (sector), pmem1.2 (raw).
    #[test]
    fn stack_devices() {
        let t = tree("stack");
        let dev = t.join("dev");
        let d = |rel: &str| dev.join(rel).to_string_lossy().into_owned();
        let v = probe(&t.join("sys"), &dev, &[]).expect("probe");
        let got: Vec<(&str, String, u64, bool)> = v
            .iter()
            .map(|b| (b.name.as_str(), b.devno.to_string(), b.size.0, b.dax))
            .collect();
        let want = [
            ("dm-0", "254:0", 2_056_192, true),
            ("pmem0", "259:0", 1_044_480, true),
            ("pmem0.2s", "259:1", 259_776, false),
            ("pmem1", "259:2", 1_028_096, true),
            ("pmem1.1", "259:3", 512_000, true),
            ("pmem1.2", "259:4", 262_144, false),
            ("pmem1.1p1", "259:5", 409_600, true),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, d, s, x)| (*n, d.to_string(), *s, *x))
            .collect();
        assert_eq!(got, want);

        let dm = named(&v, "dm-0");
        assert_eq!(dm.path, d("mapper/s"));
        assert_eq!(
            dm.aliases,
            [
                d("dm-0"),
                d("disk/by-id/dm-name-s"),
                d("disk/by-uuid/c01f8f18-896c-435f-bcbf-044fecb1ef3f"),
                d("disk/by-label/stripefs"),
            ]
        );
        assert_eq!(named(&v, "pmem0").holders, ["dm-0"]);
        assert_eq!(named(&v, "pmem1").holders, ["dm-0"]);
        assert_eq!(
            named(&v, "pmem0").aliases,
            [d("disk/by-id/pmem-3d0aa4d4-8de0-49d9-bfbc-f24e4af31ac7")]
        );

        let p = named(&v, "pmem1.1p1");
        assert_eq!(p.path, d("pmem1.1p1"));
        assert_eq!(
            p.partition,
            Some(PartitionOf {
                disk: "pmem1.1".into(),
                number: 1,
                start: Sectors(4096),
            })
        );
        assert!(p.aliases.contains(&d("disk/by-partlabel/pmemdata")));
        assert!(named(&v, "pmem1.1").partition.is_none());
    }

    #[test]
    fn dm_name_from_the_dm_list_when_sysfs_has_none() {
        let t = tree("stack");
        // a dm device the kernel names only by number: the dm list's name wins
        let dms = [DmDevice {
            name: "other".into(),
            devno: Devno {
                major: 259,
                minor: 4,
            },
            uuid: None,
            table: crate::actual::DmTable::default(),
            suspended: false,
            open_count: 0,
        }];
        let v = probe(&t.join("sys"), Path::new("/dev"), &dms).expect("probe");
        let b = named(&v, "pmem1.2");
        assert_eq!(b.path, "/dev/mapper/other");
        assert_eq!(b.aliases, ["/dev/pmem1.2"]);
    }

    /// tests/fixtures/sysfs-trees "foreign": the stack plus loop0, loop1 (with loop1p1)
    /// and foreign dm devices. A run's listing reads no loop device's attributes unless
    /// the run names it (then with its partitions).
    #[test]
    fn a_scoped_listing_leaves_unrelated_devices_out() {
        let t = tree("foreign");
        let (sys, dev) = (t.join("sys"), t.join("dev"));
        let all = probe(&sys, &dev, &[]).expect("probe");
        let names = |v: &[BlockDevice]| -> Vec<String> {
            let mut n: Vec<String> = v.iter().map(|b| b.name.clone()).collect();
            n.sort();
            n
        };
        assert!(names(&all).iter().any(|n| n.starts_with("loop")));
        let scoped = probe_scoped(&sys, &dev, &[], &[]).expect("probe");
        let got = names(&scoped);
        assert!(!got.iter().any(|n| n.starts_with("loop")), "{got:?}");
        let expected: Vec<String> = names(&all)
            .into_iter()
            .filter(|n| n.starts_with("pmem") || n.starts_with("dm-"))
            .collect();
        assert_eq!(got, expected);
        // the same devices, described the same
        for b in &scoped {
            assert_eq!(all.iter().find(|a| a.name == b.name), Some(b));
        }
        // a device the run names (its number, from a path or a mount) comes with its
        // partitions
        let loop1 = Devno { major: 7, minor: 1 };
        let named = names(&probe_scoped(&sys, &dev, &[], &[loop1]).expect("probe"));
        assert!(named.contains(&"loop1".to_string()) && named.contains(&"loop1p1".to_string()));
        assert!(!named.contains(&"loop0".to_string()), "{named:?}");
    }

    /// A listing after a step keeps what the step cannot have changed and reads the
    /// rest: over the same tree it says what a full listing says; a device that came
    /// (`foreign-over`, over `pmem1.2`) or went (a holder that is no more) makes what
    /// it sits on be read again; a dirty device is read again, a clean one is not.
    #[test]
    fn a_listing_after_a_step_says_what_a_full_one_says() {
        let t = tree("foreign");
        let (sys, dev) = (t.join("sys"), t.join("dev"));
        let full = probe_scoped(&sys, &dev, &[], &[]).expect("probe");
        let none = BTreeSet::new();
        let after = |before: &[BlockDevice], dirty: &BTreeSet<String>, seen: &mut Seen| {
            let again = Again {
                prev: before,
                dirty,
            };
            list(&sys, &dev, &[], Some(&[]), seen, Some(again)).expect("listing")
        };
        // nothing changed: all kept (links read again), the same
        let mut seen = Seen::default();
        list(&sys, &dev, &[], Some(&[]), &mut seen, None).expect("listing");
        assert_eq!(after(&full, &none, &mut seen), full);
        // a step made foreign-over: before it, pmem1.2 was held by nothing
        let over = full
            .iter()
            .find(|b| b.path.ends_with("mapper/foreign-over"))
            .expect("foreign-over")
            .name
            .clone();
        let mut before: Vec<BlockDevice> =
            full.iter().filter(|b| b.name != over).cloned().collect();
        let pmr = before
            .iter_mut()
            .find(|b| b.name == "pmem1.2")
            .expect("pmem1.2");
        assert_eq!(pmr.holders, std::slice::from_ref(&over));
        pmr.holders.clear();
        assert_eq!(after(&before, &none, &mut Seen::default()), full);
        // ... or removed a dm device over pmem0
        let mut before = full.clone();
        let pm0 = before
            .iter_mut()
            .find(|b| b.name == "pmem0")
            .expect("pmem0");
        pm0.holders.push("dm-9".into());
        assert_eq!(after(&before, &none, &mut Seen::default()), full);
        // ... or resized pmem1.1: read again when the step says so
        let mut before = full.clone();
        let p11 = before
            .iter_mut()
            .find(|b| b.name == "pmem1.1")
            .expect("pmem1.1");
        p11.size = Sectors(1);
        let dirty = BTreeSet::from(["pmem1.1".to_string()]);
        assert_eq!(after(&before, &dirty, &mut Seen::default()), full);
        assert_ne!(after(&before, &none, &mut Seen::default()), full, "kept");
        // links udev made since are found, those it removed are gone
        let mut before = full.clone();
        for b in &mut before {
            b.aliases.retain(|a| !a.contains("by-label"));
            b.aliases.push("/dev/disk/by-id/gone".into());
        }
        let mut seen = Seen::default();
        list(&sys, &dev, &[], Some(&[]), &mut seen, None).expect("listing");
        assert_eq!(after(&before, &none, &mut seen), full);
    }

    #[test]
    fn no_sysfs_is_empty() {
        let none = tree("does-not-exist");
        assert!(probe(&none, &none, &[]).expect("probe").is_empty());
    }
}
