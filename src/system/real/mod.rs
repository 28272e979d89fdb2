//! The real system: probing reads sysfs, superblocks, mountinfo and dm ioctls directly
//! (no process is spawned to look); operations run ndctl and mkfs by argv (never a
//! shell), and do dm, GPT, mount and extsize through ioctls and system calls.
//!
//! Files, by what they own:
//! - `nd.rs`: regions and namespaces from `/sys/bus/nd/devices` (pure over a sysfs root)
//! - `block.rs`: block devices from `/sys/class/block` (size, dev, queue/dax, holders, partitions)
//! - `content.rs`: what the devices in the probe's scope hold (one read-only open each;
//!   the scope is `system/scope.rs`); a device that fails is recorded, not fatal
//! - `fs.rs`: filesystem signatures and geometry from ext4/xfs superblocks
//! - `mounts.rs`: mountinfo (procfs crate), root extsize (FS_IOC_FSGETXATTR); mount/umount/extsize ops
//! - `elsewhere.rs`: mounts of our devices held in other mount namespaces (`/proc/PID/mountinfo`),
//!   and their umount there (setns)
//! - `dm.rs`: dm devices and tables through the devicemapper crate; create/reload/remove
//! - `gpt.rs`: GPT read/write through the gpt crate; BLKPG add/delete
//!
//! A probe first lists (sysfs, dm ioctls, mountinfo: no block device is opened), then
//! applies the scope the run set ([`System::set_scope`]) to the listing, then reads the
//! devices in scope.
//! - `dax.rs`: the DAX check after mounting (statx on a new file, kernel log)
//! - `files.rs`: boot persistence files (atomic writes, links, the installed binary)
//! - `lock.rs`: one run at a time (flock on /run/pmem-stack.lock)
//! - `pmd.rs`: the PMD fault check (tracefs fs_dax events over a shared mapping)
//! - `exec.rs`: the table of external programs and the argv runner
//! - `argv.rs`: the command lines of the ops that run one of those programs
//! - `lookup.rs`: where the external programs are found (`PATH`, then the standard sbin and bin dirs)
//! - `record.rs`: where a run's time goes (`timing` in the result), owned by the system value
//! - `sysfs.rs`: one attribute in one read (open, read, close)

use crate::op::argv;
pub mod block;
pub mod content;
pub mod dax;
pub mod dm;
pub mod elsewhere;
pub mod exec;
pub mod files;
pub mod fs;
pub mod gpt;
pub mod lock;
pub mod lookup;
pub mod mounts;
pub mod names;
pub mod nd;
pub mod platform;
pub mod pmd;
pub mod record;
pub mod sysfs;

use super::scope::{self, ProbeScope};
use super::{DaxCheck, Output, System, SystemError};
use crate::actual::{Actual, Missing};
use crate::system::timing::{OperationTime, Timing};
use crate::system::Op;
use record::Recorder;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The machine we run on.
pub struct RealSystem {
    /// Where sysfs is mounted (`/sys`).
    pub sys: PathBuf,
    /// Where device nodes live (`/dev`).
    pub dev: PathBuf,
    /// Root for the boot persistence files (`PMEM_STACK_ROOT`, default `/`).
    pub root: PathBuf,
    /// The run lock, once taken.
    lock: Option<std::fs::File>,
    /// Which block devices a probe may open.
    scope: ProbeScope,
    /// Where this system's time went (the result's `timing`).
    record: Recorder,
    /// A boot file was written or removed since the last probe: the run does not probe
    /// after those steps (nothing a step resolves against changes), so the next re-probe
    /// reads the files too.
    files_changed: bool,
    /// Set when the run could not come back to its own mount namespace after unmounting
    /// a copy in another one: then nothing more is probed or run.
    stranded: Option<String>,
    /// What the last listing saw beyond the snapshot (see [`Seen`]).
    seen: Seen,
}

impl Default for RealSystem {
    fn default() -> Self {
        RealSystem::started_at(std::time::Instant::now())
    }
}

impl RealSystem {
    /// The machine, with times in `timing` counted from `start` (the process start).
    pub fn started_at(start: std::time::Instant) -> RealSystem {
        RealSystem {
            sys: PathBuf::from("/sys"),
            dev: PathBuf::from("/dev"),
            lock: None,
            scope: ProbeScope::base(),
            root: std::env::var_os("PMEM_STACK_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/")),
            record: Recorder::new(start),
            files_changed: false,
            stranded: None,
            seen: Seen::default(),
        }
    }
}

/// What the last listing saw beyond the snapshot, for the re-probe after a step: the
/// DIMMs each region maps, and the block device names and udev links.
#[derive(Debug, Default)]
struct Seen {
    dimms: std::collections::BTreeMap<String, Vec<String>>,
    blocks: block::Seen,
}

/// Everything the probe learns without opening a block device: regions and namespaces
/// (sysfs), dm devices (ioctls on the control node), block devices (sysfs) and mounts
/// (mountinfo), and what kernel support is missing.
/// The time of each part goes to `record`; what the listing saw beyond it to `seen`.
fn list(
    sys: &std::path::Path,
    dev: &std::path::Path,
    scope: &ProbeScope,
    record: &Recorder,
    seen: &mut Seen,
) -> Result<Actual, SystemError> {
    let mut a = Actual::default();
    list_nd(&mut a, sys, record, seen, None)?;
    list_dm(&mut a, record, None)?;
    // the kernel release (in the platform facts) tells how mountinfo shows dax
    a.platform = Some(record.part("platform", platform::probe));
    list_mounts(&mut a, record)?;
    list_blocks(&mut a, sys, dev, scope, record, &mut seen.blocks, None)?;
    Ok(a)
}

/// Regions and namespaces (sysfs), and whether the NVDIMM bus is missing. With
/// `again = Some(regions)`, after a step that changed those regions (see
/// [`nd::affected`]): they are read, the others kept from `a`.
fn list_nd(
    a: &mut Actual,
    sys: &Path,
    record: &Recorder,
    seen: &mut Seen,
    again: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), SystemError> {
    let listing = record.part("namespaces", || match again {
        None => nd::list(sys, None),
        Some(changed) => {
            let prev = nd::Again {
                regions: &a.regions,
                namespaces: &a.namespaces,
                dimms: &seen.dimms,
                changed,
            };
            nd::list(sys, Some(prev))
        }
    })?;
    a.regions = listing.regions;
    a.namespaces = listing.namespaces;
    seen.dimms = listing.dimms;
    a.missing.retain(|m| *m != Missing::Nvdimm);
    if a.regions.is_empty() && !nd::has_bus(sys) {
        // first, as a full listing says it
        a.missing.insert(0, Missing::Nvdimm);
    }
    Ok(())
}

/// dm devices (ioctls on the control node), and whether device-mapper is missing. With
/// `again = Some(names)`, after a step: the devices of `a` not named are kept as they
/// were (their name and number unchanged).
fn list_dm(
    a: &mut Actual,
    record: &Recorder,
    again: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), SystemError> {
    a.missing.retain(|m| *m == Missing::Nvdimm);
    let prev = std::mem::take(&mut a.dm_devices);
    let keep = again.map(|dirty| (prev.as_slice(), dirty));
    a.dm_devices = record
        .part("dm", || dm::probe_again(keep))?
        .unwrap_or_else(|missing| {
            a.missing.push(missing);
            Vec::new()
        });
    Ok(())
}

/// Mounts (mountinfo), as the platform's kernel shows dax; no extent size hint yet.
fn list_mounts(a: &mut Actual, record: &Recorder) -> Result<(), SystemError> {
    let syntax = a.dax_syntax();
    a.mounts = record.part("mounts", || mounts::probe(syntax))?;
    Ok(())
}

/// Block devices (sysfs): every one for `--facts`, else those the scope can involve.
/// With `again`, after a step: see [`block::list`].
fn list_blocks(
    a: &mut Actual,
    sys: &Path,
    dev: &Path,
    scope: &ProbeScope,
    record: &Recorder,
    seen: &mut block::Seen,
    again: Option<block::Again<'_>>,
) -> Result<(), SystemError> {
    a.block_devices = record.part("block", || {
        // `--facts`: every block device is listed (sysfs only; none is opened)
        let scoped = (!scope.all_dm).then(|| scope_devnos(scope, &a.mounts));
        block::list(sys, dev, &a.dm_devices, scoped.as_deref(), seen, again)
    })?;
    Ok(())
}

/// The device numbers a run names outside PMEM and dm: the `/dev` paths in its
/// arguments (stat, which opens nothing) and the sources of the mounts at its declared
/// mount points.
fn scope_devnos(scope: &ProbeScope, mounts: &[crate::actual::Mount]) -> Vec<crate::actual::Devno> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let named = scope.paths.iter().filter_map(|p| {
        let m = std::fs::metadata(p).ok()?;
        m.file_type().is_block_device().then(|| {
            let rdev = m.rdev();
            crate::actual::Devno {
                major: libc::major(rdev),
                minor: libc::minor(rdev),
            }
        })
    });
    let mounted = mounts
        .iter()
        .filter(|m| scope.mount_points.contains(&m.target))
        .map(|m| m.devno);
    named.chain(mounted).collect()
}

impl RealSystem {
    /// Refuse to go on once the run is stranded in another mount namespace.
    fn not_stranded(&self) -> Result<(), SystemError> {
        match &self.stranded {
            Some(why) => Err(SystemError::Unavailable {
                msg: format!("stopped: {why}; this run's view of mounts is not its own"),
            }),
            None => Ok(()),
        }
    }

    fn probe_all(&mut self) -> Result<Actual, SystemError> {
        self.files_changed = false;
        let mut a = list(
            &self.sys,
            &self.dev,
            &self.scope,
            &self.record,
            &mut self.seen,
        )?;
        let reach = scope::reach(&self.scope, &a);
        if self.scope.elsewhere {
            a.elsewhere = self.record.part("elsewhere", || {
                elsewhere::probe(a.dax_syntax(), &|d| reach.in_scope(d))
            })?;
        }
        let contents = self.record.part("contents", || {
            content::read(&a.block_devices, &reach, &self.sys, &content::open_device)
        });
        a.partition_tables = contents.partition_tables;
        a.filesystems = contents.filesystems;
        a.unreadable = contents.unreadable;
        self.record
            .part("extsize", || mounts::read_extsize(&mut a.mounts, &reach));
        a.files = self.record.part("files", || files::probe(&self.root))?;
        a.uncleared = self
            .record
            .part("files", || files::probe_uncleared(&self.root))?;
        a.name_records = self.record.part("files", || names::probe(&self.root))?;
        a.apply_name_records();
        Ok(a)
    }

    /// The state after `op` ran on `prev`: what `op` can have changed is read again (see
    /// [`Touched`]), the rest of `prev` is kept: the regions it changed (and their
    /// namespaces), the dm devices it made, changed, opened or closed, the block devices
    /// it made, changed or stacked something on (and what came or went meanwhile), the
    /// mounts. A device's content is read again when `op` touched it or something it is
    /// stacked under, or when its listing (size, holders, partitions, links) or whether
    /// the scope reaches it changed; else its content in `prev` is kept.
    fn probe_after_op(&mut self, op: &Op, prev: &Actual) -> Result<Actual, SystemError> {
        let mut t = touched(op, prev);
        t.files |= std::mem::take(&mut self.files_changed);
        if t.everything {
            return self.probe_all();
        }
        let mut a = prev.clone();
        if t.nd {
            // the regions sharing a DIMM with one the op changed, too
            let changed: BTreeSet<String> = t.regions.iter().cloned().collect();
            let regions = nd::affected(&self.seen.dimms, &changed);
            t.regions = regions.iter().cloned().collect();
            list_nd(
                &mut a,
                &self.sys,
                &self.record,
                &mut self.seen,
                Some(&regions),
            )?;
        }
        if t.dm {
            let dirty = t.dm_dirty(prev);
            list_dm(&mut a, &self.record, Some(&dirty))?;
        }
        if t.mounts {
            list_mounts(&mut a, &self.record)?;
        }
        // the block listing follows the dm devices' names, numbers and tables (not their
        // open counts, which a mount changes)
        fn dm_moved(
            a: &Actual,
        ) -> Vec<(&String, crate::actual::Devno, &crate::actual::DmTable, bool)> {
            a.dm_devices
                .iter()
                .map(|d| (&d.name, d.devno, &d.table, d.suspended))
                .collect()
        }
        // a mount at a declared mount point brings its source into the listing's scope:
        // that changes the listing only for a device not listed anyway (PMEM and dm
        // devices always are, with their partitions)
        let scope_moved = || {
            let (now, was) = (
                scope_devnos(&self.scope, &a.mounts),
                scope_devnos(&self.scope, &prev.mounts),
            );
            now.iter()
                .filter(|d| !was.contains(d))
                .chain(was.iter().filter(|d| !now.contains(d)))
                .any(|d| {
                    !prev
                        .block(*d)
                        .is_some_and(|b| b.name.starts_with("pmem") || b.name.starts_with("dm-"))
                })
        };
        if t.nd
            || t.blocks
            || (t.dm && dm_moved(&a) != dm_moved(prev))
            || (t.mounts && scope_moved())
        {
            let dirty = t.blocks_dirty(prev, &a);
            let again = block::Again {
                prev: &prev.block_devices,
                dirty: &dirty,
            };
            list_blocks(
                &mut a,
                &self.sys,
                &self.dev,
                &self.scope,
                &self.record,
                &mut self.seen.blocks,
                Some(again),
            )?;
        }
        let reach = scope::reach(&self.scope, &a);
        let before = scope::reach(&self.scope, prev);
        // the other namespaces' copies follow our mounts (propagation), the devices
        // (gone, new) and the scope's reach
        if self.scope.elsewhere && (t.mounts || t.dm || t.nd || reach != before) {
            a.elsewhere = self.record.part("elsewhere", || {
                elsewhere::probe(a.dax_syntax(), &|d| reach.in_scope(d))
            })?;
        }
        let again = t.devices_in(&a);
        let contents = self.record.part("contents", || {
            let mut out = content::Contents::default();
            for b in &a.block_devices {
                let kept = !again.contains(&b.devno)
                    && prev.block_devices.iter().any(|p| p == b)
                    && reach.read.contains(&b.devno) == before.read.contains(&b.devno)
                    && !reach.blocked.contains_key(&b.devno)
                    && !before.blocked.contains_key(&b.devno)
                    && !prev.unreadable.iter().any(|u| u.device == b.devno);
                if kept {
                    out.partition_tables.extend(
                        prev.partition_tables
                            .iter()
                            .filter(|p| p.disk == b.devno)
                            .cloned(),
                    );
                    out.filesystems.extend(
                        prev.filesystems
                            .iter()
                            .filter(|f| f.device == b.devno)
                            .cloned(),
                    );
                } else {
                    let c = content::read(
                        std::slice::from_ref(b),
                        &reach,
                        &self.sys,
                        &content::open_device,
                    );
                    out.partition_tables.extend(c.partition_tables);
                    out.filesystems.extend(c.filesystems);
                    out.unreadable.extend(c.unreadable);
                }
            }
            out
        });
        a.partition_tables = contents.partition_tables;
        a.filesystems = contents.filesystems;
        a.unreadable = contents.unreadable;
        if t.mounts || reach.read != before.read {
            // a mount's root is read when the scope reaches its device: read it for a
            // mount that is new, or whose device came into reach, or that the step
            // touched; keep it for the others
            let changed = |m: &crate::actual::Mount| {
                t.targets.contains(&m.target)
                    || reach.read.contains(&m.devno) != before.read.contains(&m.devno)
                    || !prev
                        .mounts
                        .iter()
                        .any(|p| p.target == m.target && p.devno == m.devno && p.fstype == m.fstype)
            };
            let mut fresh = Vec::new();
            for m in &mut a.mounts {
                if changed(m) {
                    m.root_extsize = None;
                    fresh.push(m.clone());
                } else {
                    m.root_extsize = prev
                        .mounts
                        .iter()
                        .find(|p| p.target == m.target && p.devno == m.devno)
                        .and_then(|p| p.root_extsize);
                }
            }
            if !fresh.is_empty() {
                self.record
                    .part("extsize", || mounts::read_extsize(&mut fresh, &reach));
                for f in fresh {
                    if let Some(m) = a
                        .mounts
                        .iter_mut()
                        .find(|m| m.target == f.target && m.devno == f.devno)
                    {
                        m.root_extsize = f.root_extsize;
                    }
                }
            }
        }
        if t.files {
            a.files = self.record.part("files", || files::probe(&self.root))?;
        }
        if t.uncleared || t.files {
            a.uncleared = self
                .record
                .part("files", || files::probe_uncleared(&self.root))?;
            a.name_records = self.record.part("files", || names::probe(&self.root))?;
        }
        a.apply_name_records();
        Ok(a)
    }

    /// Run `op` (`execute` wraps it to time it).
    fn run_op(&mut self, op: &Op) -> Result<Output, SystemError> {
        // A device an earlier run made (a run killed right after it) may still be waiting
        // for its node: udev makes /dev/mapper/NAME and partition nodes after the kernel's
        // event, and this run can probe the device (ioctls, sysfs) before udev is done.
        // Wait for udev once before a step opens it by path.
        if let Op::Mkfs { device, .. } | Op::Mount { source: device, .. } = op {
            if !Path::new(&device.path).exists() {
                exec::udev_settle(&self.record);
            }
        }
        let out = match op {
            Op::CreateNamespace { config, .. } | Op::ReconfigureNamespace { config, .. } => {
                let (name, mode) = (&config.name, config.mode);
                // the namespace counts as made only once cleared: a durable marker with
                // the uuid it gets is written first and dropped after the clearing
                // (files::CLEARING_DIR says why); devdax has no block device to clear
                let uuid = files::new_uuid()?;
                let clears = mode != crate::args::NamespaceMode::Devdax;
                if clears {
                    files::mark_uncleared(&self.root, &uuid, name)?;
                }
                let mut argv = argv::command_line(op).unwrap_or_default();
                argv.push(format!("--uuid={uuid}"));
                let mut out = match exec::run(&self.record, &argv) {
                    Ok(out) => out,
                    Err(e) => {
                        // the marker stays only if ndctl got as far as a namespace with
                        // that uuid (the next run then knows it for ours)
                        let made = nd::probe(&self.sys).is_ok_and(|(_, nss)| {
                            nss.iter().any(|n| n.uuid.as_deref() == Some(uuid.as_str()))
                        });
                        if clears && !made {
                            files::drop_marker(&self.root, &uuid)?;
                        }
                        return Err(e);
                    }
                };
                // ndctl prints the namespace it made; clear what an older one left there.
                // Its node /dev/pmemN is made by devtmpfs as the kernel adds the disk (no
                // udev rule is involved): wait for that node with the number sysfs gives,
                // not for all of udev's queue.
                if let Some(blockdev) = created_blockdev(&out.stdout) {
                    let path = self.dev.join(&blockdev);
                    let devno = block::devno_of(&self.sys, &blockdev)?;
                    block::wait_node(&path.to_string_lossy(), devno, &self.record)?;
                    let note = block::zero_ends(&path, &self.record)?;
                    out.stdout.push_str(&format!("\n{note}\n"));
                }
                if clears {
                    files::drop_uncleared(&self.root, name)?;
                }
                out
            }
            Op::ClearNamespace { name, device } => {
                let note = block::zero_ends(Path::new(&device.path), &self.record)?;
                files::drop_uncleared(&self.root, name)?;
                Output {
                    argv: None,
                    stdout: note,
                    stderr: String::new(),
                }
            }
            Op::RecordName { record } => names::record(&self.root, record)?,
            Op::ForgetName { name } => names::forget(&self.root, name)?,
            Op::DestroyNamespace { dev } => {
                let mut out = exec::run(&self.record, &argv::command_line(op).unwrap_or_default())?;
                // A label-less namespace (a `memmap=` range, DIMMs without a label area)
                // is not deleted: ndctl zeroes its info block and leaves it disabled,
                // without a block device. Enabled again, it is raw as before it was
                // converted, and the next converge finds it as fresh DIMMs show it.
                if nd::is_label_less_namespace(&self.sys, dev) {
                    let again = exec::run(
                        &self.record,
                        &argv::words(&["ndctl", "enable-namespace", dev]),
                    )?;
                    out.stdout.push_str(&again.stdout);
                    out.stderr.push_str(&again.stderr);
                }
                out
            }
            Op::Mkfs { .. } => {
                exec::run(&self.record, &argv::command_line(op).unwrap_or_default())?
            }
            Op::DmCreate {
                name,
                table,
                max_sectors_kb,
            } => dm::create(name, table, *max_sectors_kb, &self.record)?,
            Op::DmReload {
                name,
                table,
                max_sectors_kb,
            } => dm::reload(name, table, *max_sectors_kb, &self.record)?,
            Op::DmRemove { name } => dm::remove(name, &self.record)?,
            Op::GptCreate { disk } => gpt::create(disk)?,
            Op::GptAdd {
                disk,
                entry,
                dm_disk,
            } => gpt::add(disk, entry, *dm_disk)?,
            Op::GptDelete {
                disk,
                number,
                dm_disk,
            } => gpt::delete(disk, *number, *dm_disk)?,
            Op::Mount {
                source,
                target,
                fstype,
                options,
            } => self
                .record
                .kernel("mount", || mounts::mount(source, target, fstype, options))?,
            Op::Remount { target, options } => self
                .record
                .kernel("mount", || mounts::remount(target, options))?,
            Op::Umount {
                target,
                lazy,
                when_busy,
            } => self
                .record
                .kernel("umount", || mounts::umount(target, *lazy, when_busy))?,
            Op::UmountElsewhere {
                target,
                devno,
                copies,
                lazy,
            } => match self.record.kernel("umount", || {
                elsewhere::umount(target, *devno, copies, *lazy)
            }) {
                Ok(out) => out,
                Err(elsewhere::Failure::Failed(e)) => return Err(e),
                Err(elsewhere::Failure::Stranded(e)) => {
                    self.stranded = Some(e.to_string());
                    return Err(e);
                }
            },
            Op::WriteFile {
                path,
                content,
                mode,
            } => {
                files::before_unit_change(&self.root, path)?;
                files::write(&self.root, path, content, *mode)?
            }
            Op::RemoveFile { path } => {
                files::before_unit_change(&self.root, path)?;
                files::remove(&self.root, path)?
            }
            Op::DaemonReload => files::daemon_reload(&self.root, &self.record)?,
            Op::SetExtsize { target, size } => self
                .record
                .kernel("FS_IOC_FSSETXATTR", || mounts::set_extsize(target, *size))?,
        };
        // Device nodes (/dev/mapper/NAME, by-id links) are made by udev. A new namespace
        // (its /dev/pmemN, from devtmpfs) and a new dm device (its /dev/mapper/NAME) were
        // waited for above, node by node. The rest still waits for all of udev's queue:
        // - removing a namespace or a dm device: udev's own work on it (blkid opening it,
        //   links going away) must be over before the next step removes or reuses what
        //   was under it, or that step meets EBUSY;
        // - a reload: the table swap's change event re-runs udev's rules on the device
        //   (its links and what is read from it);
        // - GPT writes: the kernel's partition re-read and udev's partition nodes and
        //   links (/dev/mapper/NAMEpN mappings, by-partlabel) come after the write.
        if matches!(
            op,
            Op::DestroyNamespace { .. }
                | Op::DmReload { .. }
                | Op::DmRemove { .. }
                | Op::GptCreate { .. }
                | Op::GptAdd { .. }
                | Op::GptDelete { .. }
        ) {
            exec::udev_settle(&self.record);
        }
        Ok(out)
    }
}

/// What an op can have changed, for the re-probe after it (see
/// [`RealSystem::probe_after_op`]); what is not named is kept from the probe before.
#[derive(Debug, Default, PartialEq, Eq)]
struct Touched {
    /// Probe everything again.
    everything: bool,
    /// Regions and namespaces (and so the block devices).
    nd: bool,
    /// ... of these regions (and those sharing a DIMM with them).
    regions: Vec<String>,
    /// dm devices (and so the block devices, when a dm device came, went or changed its
    /// table: holders, new or gone dm disks); also their open counts.
    dm: bool,
    /// Block devices (partitions, links).
    blocks: bool,
    /// Mounts (and their extent size hints).
    mounts: bool,
    /// ... at these mount points (their extent size hint is read again).
    targets: Vec<String>,
    /// dm tables the op loaded: their members' holders change.
    tables: Vec<Vec<crate::actual::dm::TableLine>>,
    /// Boot files.
    files: bool,
    /// Uncleared-namespace markers.
    uncleared: bool,
    /// The op wrote to the devices it names (a GPT, a filesystem, zeroes): what they are
    /// stacked on holds those bytes too (a linear or striped member, a partition's
    /// disk), and its content is read again as well.
    writes: bool,
    /// Devices whose content is read again, by number.
    devices: Vec<crate::actual::Devno>,
    /// ... by kernel name: a disk whose partitions are read again too.
    disks: Vec<String>,
    /// ... the block devices of these namespaces (`namespaceX.Y`).
    namespaces: Vec<String>,
    /// ... the block devices of these dm devices (by dm name).
    dm_names: Vec<String>,
}

impl Touched {
    /// The dm devices (by name) whose status the op can have changed: those it made,
    /// reloaded or removed and the dm devices among their members (held or let go),
    /// and those it opened or closed (a mount's source).
    fn dm_dirty(&self, prev: &Actual) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.dm_names.iter().cloned().collect();
        let mut members: Vec<crate::actual::Devno> = self.devices.clone();
        for d in prev
            .dm_devices
            .iter()
            .filter(|d| self.dm_names.contains(&d.name))
        {
            members.extend(
                d.table
                    .lines()
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|l| l.members()),
            );
        }
        members.extend(self.tables.iter().flatten().flat_map(|l| l.members()));
        out.extend(
            prev.dm_devices
                .iter()
                .filter(|d| members.contains(&d.devno))
                .map(|d| d.name.clone()),
        );
        out
    }

    /// The block devices of `prev` (kernel names) whose listing the op can have changed
    /// (`a`: the namespaces and dm devices after it): the devices it names, the block
    /// devices of the namespaces of the regions it changed and of the dm devices it
    /// made, changed or removed, the members of those (their holders), and the
    /// partitions of all these. A device that is new or gone is found by the listing.
    fn blocks_dirty(&self, prev: &Actual, a: &Actual) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.disks.iter().cloned().collect();
        let mut devnos: Vec<crate::actual::Devno> = self.devices.clone();
        for s in [prev, a] {
            names.extend(
                s.namespaces
                    .iter()
                    .filter(|n| {
                        self.namespaces.contains(&n.dev) || self.regions.contains(&n.region)
                    })
                    .filter_map(|n| n.blockdev.clone()),
            );
            for d in s
                .dm_devices
                .iter()
                .filter(|d| self.dm_names.contains(&d.name))
            {
                devnos.push(d.devno);
                devnos.extend(
                    d.table
                        .lines()
                        .unwrap_or_default()
                        .iter()
                        .flat_map(|l| l.members()),
                );
            }
        }
        devnos.extend(self.tables.iter().flatten().flat_map(|l| l.members()));
        names.extend(
            prev.block_devices
                .iter()
                .filter(|b| devnos.contains(&b.devno))
                .map(|b| b.name.clone()),
        );
        let parts: Vec<String> = prev
            .block_devices
            .iter()
            .filter(|b| {
                b.partition
                    .as_ref()
                    .is_some_and(|p| names.contains(&p.disk))
            })
            .map(|b| b.name.clone())
            .collect();
        names.extend(parts);
        names
    }

    /// The devices of `a` whose content must be read again: those named, what is
    /// stacked on them (holders, partitions), transitively, and when the op wrote to
    /// them, what they are stacked on (and what else is stacked on that).
    fn devices_in(&self, a: &Actual) -> std::collections::BTreeSet<crate::actual::Devno> {
        let named = a
            .block_devices
            .iter()
            .filter(|b| self.devices.contains(&b.devno) || self.disks.contains(&b.name))
            .map(|b| b.devno)
            .chain(
                a.namespaces
                    .iter()
                    .filter(|n| self.namespaces.contains(&n.dev))
                    .filter_map(|n| n.blockdev.as_deref())
                    .filter_map(|name| a.block_named(name))
                    .map(|b| b.devno),
            )
            .chain(
                a.dm_devices
                    .iter()
                    .filter(|d| self.dm_names.contains(&d.name))
                    .map(|d| d.devno),
            );
        let mut roots: std::collections::BTreeSet<_> = named.collect();
        if self.writes {
            let below: Vec<_> = roots
                .iter()
                .flat_map(|d| a.stack_below(*d))
                .map(|b| b.devno)
                .collect();
            roots.extend(below);
        }
        roots
            .iter()
            .flat_map(|d| a.stack_above(*d))
            .map(|b| b.devno)
            .collect()
    }
}

/// What `op` can have changed (`prev`: the state it ran on).
fn touched(op: &Op, prev: &Actual) -> Touched {
    let t = Touched::default();
    let disk = |d: &crate::system::DevId| {
        prev.block_devices
            .iter()
            .filter(|b| b.devno == d.devno)
            .map(|b| b.name.clone())
            .collect::<Vec<_>>()
    };
    // the region of namespace `dev`
    let region = |dev: &str| {
        prev.namespaces
            .iter()
            .find(|n| n.dev == dev)
            .map(|n| n.region.clone())
            .or_else(|| nd::region_of(dev))
            .into_iter()
            .collect::<Vec<_>>()
    };
    match op {
        // a new namespace is a new block device (read for being new); one reconfigured
        // in place keeps its name, so it is named
        Op::CreateNamespace { region, .. } => Touched {
            nd: true,
            regions: vec![region.clone()],
            uncleared: true,
            ..t
        },
        Op::ReconfigureNamespace { dev, .. } => Touched {
            nd: true,
            regions: region(dev),
            uncleared: true,
            namespaces: vec![dev.clone()],
            ..t
        },
        Op::DestroyNamespace { dev } => Touched {
            nd: true,
            regions: region(dev),
            uncleared: true,
            ..t
        },
        Op::RecordName { .. } | Op::ForgetName { .. } => Touched {
            uncleared: true,
            ..t
        },
        Op::ClearNamespace { device, .. } => Touched {
            uncleared: true,
            writes: true,
            devices: vec![device.devno],
            ..t
        },
        Op::DmCreate { name, table, .. } | Op::DmReload { name, table, .. } => Touched {
            dm: true,
            dm_names: vec![name.clone()],
            tables: vec![table.clone()],
            ..t
        },
        Op::DmRemove { name } => Touched {
            dm: true,
            dm_names: vec![name.clone()],
            ..t
        },
        Op::GptCreate { disk: d } | Op::GptAdd { disk: d, .. } | Op::GptDelete { disk: d, .. } => {
            Touched {
                blocks: true,
                writes: true,
                disks: disk(d),
                ..t
            }
        }
        // the filesystem's links (by-uuid, by-label) are listed with the device
        Op::Mkfs { device, .. } => Touched {
            blocks: true,
            writes: true,
            devices: vec![device.devno],
            ..t
        },
        // a mount opens its device: a dm device's open count changes
        Op::Mount { source, target, .. } => Touched {
            mounts: true,
            dm: true,
            targets: vec![target.clone()],
            devices: vec![source.devno],
            ..t
        },
        Op::UmountElsewhere { devno, target, .. } => Touched {
            mounts: true,
            dm: true,
            targets: vec![target.clone()],
            devices: vec![*devno],
            ..t
        },
        Op::Remount { target, .. } | Op::Umount { target, .. } | Op::SetExtsize { target, .. } => {
            Touched {
                mounts: true,
                dm: true,
                targets: vec![target.clone()],
                devices: prev
                    .mounts
                    .iter()
                    .filter(|m| m.target == *target)
                    .map(|m| m.devno)
                    .collect(),
                ..t
            }
        }
        Op::WriteFile { .. } | Op::RemoveFile { .. } | Op::DaemonReload => {
            Touched { files: true, ..t }
        }
    }
}

impl System for RealSystem {
    fn set_scope(&mut self, scope: ProbeScope) {
        self.scope = scope;
    }

    fn probe(&mut self) -> Result<Actual, SystemError> {
        self.not_stranded()?;
        let started = std::time::Instant::now();
        let a = self.probe_all();
        self.record.probe(started);
        a
    }

    fn probe_after(&mut self, op: &Op, before: &Actual) -> Result<Actual, SystemError> {
        self.not_stranded()?;
        let started = std::time::Instant::now();
        let a = self.probe_after_op(op, before);
        self.record.probe(started);
        let a = a?;
        if check_reprobe() {
            // timed apart: the check is not the run's own work
            let started = std::time::Instant::now();
            let scratch = self.record.scratch();
            let saved = std::mem::replace(&mut self.record, scratch);
            let full = self.probe_all();
            self.record = saved;
            self.record.reprobe_check(started);
            let full = full?;
            // udev's links may appear between the two probes, and udev's reads open a
            // device for a moment: neither is compared
            let unlinked = |a: &Actual| {
                let mut a = a.clone();
                a.block_devices.iter_mut().for_each(|b| b.aliases.clear());
                a.dm_devices.iter_mut().for_each(|d| d.open_count = 0);
                // which process of a namespace shows first can change between the two
                a.elsewhere.iter_mut().for_each(|m| {
                    m.pid = 0;
                    m.comm.clear();
                });
                a
            };
            let differ = differing_parts(&unlinked(&a), &unlinked(&full));
            if !differ.is_empty() {
                return Err(SystemError::Probe {
                    msg: format!(
                        "{CHECK_REPROBE}: the re-probe after {} differs from a full probe in {}",
                        op_name(op),
                        differ.join(", ")
                    ),
                });
            }
        }
        Ok(a)
    }

    fn execute(&mut self, op: &Op) -> Result<Output, SystemError> {
        self.not_stranded()?;
        let started = std::time::Instant::now();
        let external_before = self.record.external_ms();
        let kernel_before = self.record.kernel_ms();
        if matches!(
            op,
            Op::WriteFile { .. } | Op::RemoveFile { .. } | Op::DaemonReload
        ) {
            self.files_changed = true;
        }
        let out = self.run_op(op);
        self.record.operation(OperationTime {
            op: op_name(op),
            start_ms: self.record.since_start_ms(started),
            ms: started.elapsed().as_secs_f64() * 1e3,
            external_ms: self.record.external_ms() - external_before,
            kernel_ms: self.record.kernel_ms() - kernel_before,
        });
        out
    }

    fn dax_check(&mut self, mount_point: &str) -> Result<DaxCheck, SystemError> {
        dax::check(mount_point)
    }

    fn pmd_check(&mut self, mount_point: &str) -> Result<super::PmdFaults, SystemError> {
        pmd::check(mount_point)
    }

    fn timing(&self) -> Option<Timing> {
        Some(self.record.timing())
    }

    fn lock(&mut self) -> Result<(), SystemError> {
        if self.lock.is_none() {
            self.lock = Some(lock::acquire()?);
        }
        Ok(())
    }
}

/// Set (to anything but empty or `0`) to have every re-probe after a step checked
/// against a full probe (always on in a debug build, and in one built with that variable
/// set): a difference fails the run, naming the parts that differ (a test aid; it costs
/// a full probe per step, counted in the result's `timing.reprobe_checks` and
/// `reprobe_check_ms`, not in its probes). The VM suites set it for every run
/// (tests/vm.rs), on the binary operators deploy. udev's links (`aliases`) and dm open
/// counts are not compared: udev alone can change them between the two probes.
pub const CHECK_REPROBE: &str = "PMEM_STACK_CHECK_REPROBE";

/// Whether re-probes are checked (see [`CHECK_REPROBE`]).
fn check_reprobe() -> bool {
    let on = |v: &std::ffi::OsStr| !v.is_empty() && v != "0";
    cfg!(debug_assertions)
        || option_env!("PMEM_STACK_CHECK_REPROBE").is_some_and(|v| on(v.as_ref()))
        || std::env::var_os(CHECK_REPROBE).is_some_and(|v| on(&v))
}

/// The op's name, as the result shows it (`namespace`, `dm_create`, ...).
fn op_name(op: &Op) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(String::from))
        .unwrap_or_default()
}

/// The top-level parts (`namespaces`, `block_devices`, ...) in which `a` and `b` differ.
pub fn differing_parts(a: &Actual, b: &Actual) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["(not comparable)".into()];
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| k.to_string())
        .collect()
}

/// The block device of the namespace `ndctl create-namespace` printed (none for devdax).
fn created_blockdev(stdout: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(stdout).ok()?;
    let name = v.get("blockdev")?.as_str()?;
    // a kernel name, never a path
    (!name.is_empty() && !name.contains('/') && name != "..").then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_device_ndctl_made() {
        let out = r#"{"dev":"namespace0.0","mode":"fsdax","map":"dev","size":"1006.00 MiB (1054.87 MB)","uuid":"5c1f","sector_size":512,"align":2097152,"blockdev":"pmem0","name":"pm0"}"#;
        assert_eq!(created_blockdev(out).as_deref(), Some("pmem0"));
        let devdax = r#"{"dev":"namespace0.0","mode":"devdax","daxregion":{"id":0}}"#;
        assert_eq!(created_blockdev(devdax), None);
        assert_eq!(created_blockdev(r#"{"blockdev":"../sda"}"#), None);
        assert_eq!(created_blockdev("not json"), None);
    }

    /// On the captured "stack" tree (dm-0 striped over pmem0 and pmem1; a GPT on pmem1.1
    /// with pmem1.1p1): what a step touches is read again with everything stacked on it,
    /// and only that.
    #[test]
    fn a_step_touches_its_device_and_what_is_stacked_on_it() {
        let t = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees/stack");
        let (regions, namespaces) = nd::probe(&t.join("sys")).expect("nd");
        let a = Actual {
            regions,
            namespaces,
            block_devices: block::probe(&t.join("sys"), &t.join("dev"), &[]).expect("block"),
            ..Actual::default()
        };
        let named = |n: &str| a.block_named(n).expect(n).devno;
        let id = |n: &str| crate::system::DevId {
            path: format!("/dev/{n}"),
            devno: named(n),
        };
        let names = |op: &Op| {
            let got = touched(op, &a).devices_in(&a);
            let mut v: Vec<&str> = a
                .block_devices
                .iter()
                .filter(|b| got.contains(&b.devno))
                .map(|b| b.name.as_str())
                .collect();
            v.sort_unstable();
            v
        };
        // clearing a member: the dm device above it too
        let clear = Op::ClearNamespace {
            name: "pm0".into(),
            device: id("pmem0"),
        };
        assert_eq!(names(&clear), ["dm-0", "pmem0"]);
        assert!(touched(&clear, &a).uncleared && !touched(&clear, &a).nd);
        // a GPT write: the disk and its partitions
        let gpt = Op::GptCreate {
            disk: id("pmem1.1"),
        };
        assert_eq!(names(&gpt), ["pmem1.1", "pmem1.1p1"]);
        assert!(touched(&gpt, &a).blocks);
        // mkfs: that device only (and its links are listed again)
        let mkfs = Op::Mkfs {
            device: id("pmem1.2"),
            fstype: crate::args::FsType::Ext4,
            geometry: crate::geometry::FsGeometry::Ext4 {
                block_size: None,
                stripe: None,
            },
            label: None,
            force: false,
            extra: vec![],
        };
        assert_eq!(names(&mkfs), ["pmem1.2"]);
        // mkfs on the striped device writes its members' bytes too (their first sectors,
        // where a GPT header would be)
        let mkfs_dm = Op::Mkfs {
            device: id("dm-0"),
            fstype: crate::args::FsType::Xfs,
            geometry: crate::geometry::FsGeometry::Xfs {
                reflink: None,
                stripe: None,
            },
            label: None,
            force: false,
            extra: vec![],
        };
        assert_eq!(names(&mkfs_dm), ["dm-0", "pmem0", "pmem1"]);
        // mkfs on a partition: its disk holds its bytes
        let mkfs_part = Op::Mkfs {
            device: id("pmem1.1p1"),
            fstype: crate::args::FsType::Ext4,
            geometry: crate::geometry::FsGeometry::Ext4 {
                block_size: None,
                stripe: None,
            },
            label: None,
            force: false,
            extra: vec![],
        };
        assert_eq!(names(&mkfs_part), ["pmem1.1", "pmem1.1p1"]);
        // a new namespace: nothing existing is read again (the new device is new)
        let config = |name: &str| crate::system::NamespaceConfig {
            name: name.into(),
            mode: crate::args::NamespaceMode::Fsdax,
            size: None,
            align: crate::units::Bytes(2 << 20),
            map: crate::args::MapMode::Dev,
        };
        let ns = Op::CreateNamespace {
            region: "region0".into(),
            config: config("n"),
        };
        assert!(names(&ns).is_empty());
        assert!(touched(&ns, &a).nd);
        // one reconfigured in place: its device (and what holds it)
        let dev = a
            .namespaces
            .iter()
            .find(|n| n.blockdev.as_deref() == Some("pmem1"))
            .expect("pmem1's namespace")
            .dev
            .clone();
        let re = Op::ReconfigureNamespace {
            dev,
            config: config("pm1"),
        };
        assert_eq!(names(&re), ["dm-0", "pmem1"]);
        // boot files: no device
        let files = Op::DaemonReload;
        assert!(names(&files).is_empty() && touched(&files, &a).files);
    }

    #[test]
    fn parts_that_differ_are_named() {
        let a = Actual::default();
        let mut b = a.clone();
        assert!(differing_parts(&a, &b).is_empty());
        b.missing.push(Missing::Nvdimm);
        assert_eq!(differing_parts(&a, &b), ["missing"]);
    }

    #[test]
    fn zero_ends_clears_the_head_and_the_tail_only() {
        let path = std::env::temp_dir().join(format!("pmem-stack-zero-{}", std::process::id()));
        let size = block::ZERO_HEAD + 3 * block::ZERO_TAIL;
        std::fs::write(&path, vec![0xa5u8; size as usize]).expect("file");
        let note = block::zero_ends(&path, &Recorder::default()).expect("zero");
        let bytes = std::fs::read(&path).expect("read");
        let _ = std::fs::remove_file(&path);
        let head = block::ZERO_HEAD as usize;
        let tail = (size - block::ZERO_TAIL) as usize;
        assert!(bytes[..head].iter().all(|b| *b == 0), "head");
        assert!(bytes[tail..].iter().all(|b| *b == 0), "tail");
        assert!(
            bytes[head..tail].iter().all(|b| *b == 0xa5),
            "the middle is kept"
        );
        assert!(
            note.contains("zeroed 16777216 bytes at the start and 1048576"),
            "{note}"
        );
    }
}
