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
//! - (`src/op/argv.rs`: the command lines of the ops that run one of those programs)
//! - `lookup.rs`: where the external programs are found (`PATH`, then the standard sbin and bin dirs)
//! - `record.rs`: where a run's time goes (`timing` in the result), owned by the system value
//! - `reprobe.rs`: the re-probe after a step (what the op touched is read again) and its
//!   check against a full probe (`PMEM_STACK_CHECK_REPROBE`)
//! - `sysfs.rs`: one attribute in one read (open, read, close)

use crate::op::argv;
pub mod block;
pub mod content;
pub mod cxl;
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
pub mod ram;
pub mod record;
mod reprobe;
pub mod sysfs;

use reprobe::check_reprobe;
pub use reprobe::{differing_parts, CHECK_REPROBE};

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
    a.cxl = record.part("cxl", || cxl::probe(sys));
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
        a.lvm = crate::actual::Lvm::assemble(contents.pvs, contents.vg_copies);
        self.record
            .part("extsize", || mounts::read_extsize(&mut a.mounts, &reach));
        a.files = self.record.part("files", || files::probe(&self.root))?;
        a.memory = self
            .record
            .part("memory", || ram::probe(&self.sys, &self.root));
        self.probe_markers(&mut a)?;
        a.apply_name_records();
        Ok(a)
    }

    /// The uncleared-namespace markers and the names kept for label-less namespaces
    /// (timed as `files`).
    fn probe_markers(&self, a: &mut Actual) -> Result<(), SystemError> {
        a.uncleared = self
            .record
            .part("files", || files::probe_uncleared(&self.root))?;
        a.name_records = self.record.part("files", || names::probe(&self.root))?;
        Ok(())
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
            Op::ZeroPvLabel { device } => Output {
                argv: None,
                stdout: block::zero_pv_label(Path::new(&device.path), &self.record)?,
                stderr: String::new(),
            },
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
            Op::DaxToSystemRam { .. } => ram::to_system_ram(
                &self.sys,
                &self.root,
                &self.record,
                &argv::command_line(op).unwrap_or_default(),
            )?,
            Op::DaxToDevdax {
                dev,
                movable,
                offline_first,
            } => ram::to_devdax(&self.record, dev, *movable, *offline_first)?,
            Op::RestoreAutoOnline { policy } => {
                ram::restore_auto_online(&self.sys, &self.root, policy)?
            }
            Op::Mkfs { .. }
            | Op::Lvm(_)
            | Op::DestroyCxlRegion { .. }
            | Op::DaxOnlineMemory { .. } => {
                exec::run(&self.record, &argv::command_line(op).unwrap_or_default())?
            }
            // the NVDIMM region it shows as, and the namespaces its labels hold, come up
            // with udev's events: wait for them before the next probe
            Op::CreateCxlRegion { .. } => {
                let argv = argv::command_line(op).unwrap_or_default();
                let out = exec::run(&self.record, &argv)?;
                exec::udev_settle(&self.record);
                cxl::made_a_region(&argv, out)?
            }
            Op::SetMaxSectors { device, kb } => self
                .record
                .kernel("max_sectors", || dm::set_max_sectors(device.devno, *kb))?,
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
            self.compare_with_full_probe(op, &a)?;
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

    fn mark(&mut self, phase: &'static str) {
        self.record.mark(phase);
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

/// The op's name, as the result shows it (`namespace`, `dm_create`, ...).
fn op_name(op: &Op) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(String::from))
        .unwrap_or_default()
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
