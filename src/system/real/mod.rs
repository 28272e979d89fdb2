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

pub mod argv;
pub mod block;
pub mod content;
pub mod dax;
pub mod dm;
pub mod exec;
pub mod files;
pub mod fs;
pub mod gpt;
pub mod lock;
pub mod lookup;
pub mod mounts;
pub mod nd;
pub mod platform;
pub mod pmd;
pub mod record;

use super::scope::{self, ProbeScope};
use super::{DaxCheck, Output, System, SystemError};
use crate::actual::{Actual, Missing};
use crate::system::timing::{OperationTime, Timing};
use crate::system::Op;
use record::Recorder;
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
        }
    }
}

/// Everything the probe learns without opening a block device: regions and namespaces
/// (sysfs), dm devices (ioctls on the control node), block devices (sysfs) and mounts
/// (mountinfo), and what kernel support is missing.
/// The time of each part goes to `record`.
fn list(
    sys: &std::path::Path,
    dev: &std::path::Path,
    scope: &ProbeScope,
    record: &Recorder,
) -> Result<Actual, SystemError> {
    let mut a = Actual::default();
    let (regions, namespaces) = record.part("namespaces", || nd::probe(sys))?;
    a.regions = regions;
    a.namespaces = namespaces;
    if a.regions.is_empty() && !nd::has_bus(sys) {
        a.missing.push(Missing::Nvdimm);
    }
    a.dm_devices = record.part("dm", dm::probe)?.unwrap_or_else(|missing| {
        a.missing.push(missing);
        Vec::new()
    });
    // the kernel release (in the platform facts) tells how mountinfo shows dax
    a.platform = Some(record.part("platform", platform::probe));
    let syntax = a.dax_syntax();
    a.mounts = record.part("mounts", || mounts::probe(syntax))?;
    a.block_devices = record.part("block", || {
        if scope.all_dm {
            // `--facts`: every block device is listed (sysfs only; none is opened)
            block::probe(sys, dev, &a.dm_devices)
        } else {
            block::probe_scoped(sys, dev, &a.dm_devices, &scope_devnos(scope, &a.mounts))
        }
    })?;
    Ok(a)
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
    fn probe_all(&mut self) -> Result<Actual, SystemError> {
        let mut a = list(&self.sys, &self.dev, &self.scope, &self.record)?;
        let reach = scope::reach(&self.scope, &a);
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
                // ndctl prints the namespace it made; clear what an older one left there
                if let Some(blockdev) = created_blockdev(&out.stdout) {
                    exec::udev_settle(&self.record);
                    let note = block::zero_ends(&self.dev.join(&blockdev))?;
                    out.stdout.push_str(&format!("\n{note}\n"));
                }
                if clears {
                    files::drop_uncleared(&self.root, name)?;
                }
                out
            }
            Op::ClearNamespace { name, device } => {
                let note = block::zero_ends(Path::new(&device.path))?;
                files::drop_uncleared(&self.root, name)?;
                Output {
                    argv: None,
                    stdout: note,
                    stderr: String::new(),
                }
            }
            Op::DestroyNamespace { .. } | Op::Mkfs { .. } => {
                exec::run(&self.record, &argv::command_line(op).unwrap_or_default())?
            }
            Op::DmCreate { name, table } => dm::create(name, table)?,
            Op::DmReload { name, table } => dm::reload(name, table)?,
            Op::DmRemove { name } => dm::remove(name)?,
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
            } => mounts::mount(source, target, fstype, options)?,
            Op::Remount { target, options } => mounts::remount(target, options)?,
            Op::Umount { target, lazy } => mounts::umount(target, *lazy)?,
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
            Op::SetExtsize { target, size } => mounts::set_extsize(target, *size)?,
        };
        // Device nodes (/dev/mapper/NAME, /dev/pmemNpM, by-id links) are made by udev:
        // wait for it after anything that adds or removes devices.
        if matches!(
            op,
            Op::CreateNamespace { .. }
                | Op::ReconfigureNamespace { .. }
                | Op::DestroyNamespace { .. }
                | Op::DmCreate { .. }
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
        let started = std::time::Instant::now();
        let a = self.probe_all();
        self.record.probe(started);
        a
    }

    fn execute(&mut self, op: &Op) -> Result<Output, SystemError> {
        let started = std::time::Instant::now();
        let external_before = self.record.external_ms();
        let out = self.run_op(op);
        self.record.operation(OperationTime {
            op: serde_json::to_value(op)
                .ok()
                .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(String::from))
                .unwrap_or_default(),
            start_ms: self.record.since_start_ms(started),
            ms: started.elapsed().as_secs_f64() * 1e3,
            external_ms: self.record.external_ms() - external_before,
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
        let note = block::zero_ends(&path).expect("zero");
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
