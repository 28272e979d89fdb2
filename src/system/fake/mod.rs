//! The fake system: an in-memory [`Actual`] that the typed operations mutate the way the
//! kernel and the tools would (device numbers and names, holders, sizes after fsdax
//! metadata, queue limits, busy devices and open files, what mkfs makes of its words,
//! XFS's silent DAX fall-back, 2 MiB DAX faults). It sits *below* the planner and knows
//! nothing of it: its answers come from its own models of the kernel and the tools,
//! never from the module's functions (the audit, the geometry), so a planner bug shows
//! as a test failure. It can fail on purpose at a chosen operation, stop one half-way as
//! a kill would, and devices can fail to read ([`FakeSystem::read_errors`]).
//!
//! Files, by subsystem (as `real/`): `nd.rs` namespaces, `dm.rs` device mapper (and where
//! raw data lives), `gpt.rs` partition tables, `fs.rs` mkfs, `mount.rs` mounts and the
//! DAX check after mounting, `pmd.rs` the PMD fault check, `files.rs` boot persistence
//! files; here the machine, its reboot, the probe and the dispatch of an op.
//!
//! A probe returns what the real one would: the scope the run set applies (see
//! `system/scope.rs`), so the content of devices out of scope is not in the snapshot,
//! and a device in scope that fails to read, is suspended or sits on a suspended one is
//! in `unreadable` instead of its content.

mod cxl;
mod dm;
mod files;
mod fs;
mod gpt;
mod lvm;
mod mount;
mod nd;
mod pmd;
mod ram;

use super::scope::{reach, ProbeScope};
use super::{DaxCheck, DevId, NamespaceConfig, Op, Output, PmdFaults, System, SystemError};
use crate::actual::{
    partition_name, Actual, BlockDevice, Devno, Extsize, Filesystem, Namespace, PartitionTable,
    Region, Unreadable,
};
use crate::args::{MapMode, NamespaceMode};
use crate::op::argv::command_line;
use crate::units::Bytes;

/// Major numbers as the kernel hands them out to pmem and dm.
const PMEM_MAJOR: u32 = 259;
const DM_MAJOR: u32 = 253;
/// What the kernel sets for a pmem block device (and a dm device inherits).
const PMEM_MAX_SECTORS_KB: u32 = 1280;

/// The fake machine.
#[derive(Debug, Clone, Default)]
pub struct FakeSystem {
    /// Current state.
    pub state: Actual,
    /// Operations executed so far.
    pub executed: Vec<Op>,
    /// Fail the operation with this 1-based index (counted over all executes).
    pub fail_at: Option<usize>,
    /// Number of probes made.
    pub probes: usize,
    /// Stop the operation with this 1-based index half-way, as a SIGKILL would, where
    /// the real operation has steps a kill can come between: a namespace is made (with
    /// its uncleared marker) but not cleared; a dm create has its table loaded but not
    /// resumed (no table live); a dm reload has suspended the device but not resumed
    /// it; mkfs has wiped the old signatures but not finished its superblock (nothing
    /// is recognised); a new GPT has wiped the old one but is not complete (none is
    /// recognised); a GPT entry is written but the kernel not told (no partition
    /// device). Other operations (one syscall, or a file renamed into place) are not
    /// done at all. The execute returns an error, as the next run would find.
    pub kill_mid_op: Option<usize>,
    /// Content an earlier namespace left on the media: every namespace made shows this
    /// filesystem until its ends are cleared (ndctl does not clear them).
    pub left_on_media: Option<Filesystem>,
    /// Simulate an old kernel that shows dax=always in mountinfo while files get no DAX.
    pub files_without_dax: bool,
    /// Filesystems on dm devices, by the table in member identity (namespace devices):
    /// the data lives on the members, so it comes back when the same table is loaded.
    pub dm_content: std::collections::BTreeMap<String, Filesystem>,
    /// Partition tables on dm devices, kept as [`FakeSystem::dm_content`] is.
    pub dm_gpt: std::collections::BTreeMap<String, PartitionTable>,
    /// xfs root extent size hints, by filesystem uuid (they live on disk).
    pub extsize_by_fs: std::collections::BTreeMap<String, Extsize>,
    /// Raw data an application wrote straight to a dm device or a partition (no
    /// signature: nothing a probe recognises), by device name: for each sector written,
    /// the bottom device (neither dm nor a partition: a namespace's) and the sector on it
    /// where the data went. Only where data lives is modelled (a reload, or a partition
    /// re-made, that maps a sector elsewhere scrambles it); see [`FakeSystem::write_raw`].
    pub raw_data: std::collections::BTreeMap<String, Vec<(u64, Devno, u64)>>,
    /// Devices whose reads fail, with the error a read gets (`Input/output error`).
    pub read_errors: std::collections::BTreeMap<Devno, String>,
    /// The scope of the next probes (set by the run).
    pub scope: ProbeScope,
    /// Paths of the devices the probes read, in order (what the real probe would open).
    pub reads: Vec<String>,
    /// Devices held open by something no probe shows (a copy of a mount hidden under a
    /// sandboxed service's root), with what holds them: removing one fails as busy.
    pub held_unseen: std::collections::BTreeMap<Devno, String>,
    /// Files processes hold open, which no probe shows (see [`FakeSystem::open_file`]).
    pub open_files: Vec<OpenFile>,
    /// uuids LVM made so far (each new one is the next).
    pub lvm_uuids: u64,
    /// What the memory devices of CXL regions not assembled keep (their namespaces and
    /// what is on them), by members in order and size.
    pub cxl_media: std::collections::BTreeMap<String, cxl::CxlMedia>,
    /// PMEM as system RAM: kmem bindings, the auto-online policy, memory in use.
    pub ram: ram::FakeRam,
}

/// A file a process holds open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// Its path.
    pub path: String,
    /// The process (`comm (pid N)`).
    pub by: String,
    /// The device it is on (a device node: that device).
    pub devno: Devno,
    /// A file on a filesystem (not a device node): the filesystem is in use while it is
    /// open, mounted or lazily unmounted.
    pub on_fs: bool,
}

impl FakeSystem {
    /// A machine with `n` DIMMs of `size` each without a label area (NVDIMM-N, virtual
    /// NVDIMMs): one raw namespace per region, which no label can name or carve.
    pub fn label_less_dimms(n: u32, size: Bytes) -> Self {
        let mut s = Self::fresh_dimms(n, size);
        for r in &mut s.state.regions {
            r.labels = false;
        }
        s
    }

    /// A machine booted with `n` `memmap=SIZE!START` ranges of `size` each (PMEM emulated
    /// in RAM): legacy regions without a label area, each namespace in the kernel's
    /// page-mapped `memory` mode (fsdax with its page map in RAM, no info block), its
    /// block device DAX-capable.
    pub fn memmap(n: u32, size: Bytes) -> Self {
        let mut s = Self::label_less_dimms(n, size);
        for (i, r) in s.state.regions.iter_mut().enumerate() {
            r.start = Some(0x3000_0000 + i as u64 * 0x3000_0000);
            r.interleave_ways = Some(0);
        }
        for ns in &mut s.state.namespaces {
            ns.mode = NamespaceMode::Fsdax;
            ns.map = Some(crate::args::MapMode::Mem);
        }
        for b in &mut s.state.block_devices {
            b.dax = true;
        }
        s
    }

    /// A machine with `n` fresh (label-less) DIMMs of `size` each, one region each.
    pub fn fresh_dimms(n: u32, size: Bytes) -> Self {
        let mut s = FakeSystem::default();
        s.state.platform = Some(crate::actual::Platform {
            page_size: Bytes(4096),
            pse: true,
            pdpe1gb: true,
            thp: Some("madvise".into()),
            kernel: None,
        });
        for i in 0..n {
            s.state.regions.push(Region {
                name: format!("region{i}"),
                size,
                available_size: Bytes(0),
                align: Some(Bytes(16 << 20)),
                numa_node: Some(0),
                interleave_ways: Some(1),
                labels: true,
                start: Some(0x1_4000_0000 + u64::from(i) * size.0),
            });
            let blk = format!("pmem{i}");
            s.state.namespaces.push(Namespace {
                dev: format!("namespace{i}.0"),
                region: format!("region{i}"),
                name: None,
                mode: NamespaceMode::Raw,
                size,
                uuid: None,
                align: None,
                map: None,
                blockdev: Some(blk.clone()),
                chardev: None,
                resource: Some(0x1_4000_0000 + u64::from(i) * size.0),
                numa_node: Some(0),
                info_uuid: None,
                name_recorded: false,
            });
            s.add_pmem_block(&blk, size, false);
        }
        s
    }

    /// A machine of `n` DIMMs, each region in one fsdax namespace named `pm<i>`.
    pub fn with_fsdax(n: u32, size: Bytes) -> Self {
        let mut s = Self::fresh_dimms(n, size);
        for i in 0..n {
            let op = Op::ReconfigureNamespace {
                dev: format!("namespace{i}.0"),
                config: NamespaceConfig {
                    name: format!("pm{i}"),
                    mode: NamespaceMode::Fsdax,
                    size: None,
                    align: Bytes(2 << 20),
                    map: MapMode::Dev,
                },
            };
            if let Err(e) = s.apply(&op, false) {
                unreachable!("a fresh fake machine converts: {e}");
            }
        }
        s
    }

    /// A reboot: dm devices and mounts are gone (tables live only in the kernel), the
    /// `/dev/pmemN` names and numbers of the namespaces swap around; data stays on the
    /// namespaces (a dm device's filesystem returns when the same table is loaded).
    pub fn reboot(&mut self) {
        // a PV on a namespace's disk follows the namespace to its new number
        let pv_on: Vec<Option<String>> = self
            .state
            .lvm
            .pvs
            .iter()
            .map(|p| {
                let b = self.state.block(p.device)?;
                b.partition.is_none().then_some(())?;
                self.state
                    .namespace_of_block(&b.name)
                    .map(|n| n.dev.clone())
            })
            .collect();
        // every device's content put away while all their tables still name each other
        for dm in self.state.dm_devices.clone() {
            self.put_away(&dm);
        }
        for dm in self.state.dm_devices.clone() {
            self.state.block_devices.retain(|b| b.devno != dm.devno);
        }
        self.state.dm_devices.clear();
        // no process survives a boot
        self.open_files.clear();
        self.state.mounts.clear();
        self.state.elsewhere.clear();
        // /run is empty after a boot
        self.state.files.retain(|f| !f.path.starts_with("/run/"));
        for b in &mut self.state.block_devices {
            b.holders.clear();
        }
        // the CXL decoders are reset: the regions are gone until made again
        self.cxl_reset();
        // kmem does not outlive a boot: every dax device comes up devdax; the policy is
        // the kernel's default again (what was set aside stays on disk)
        self.ram.kmem.clear();
        self.ram.in_use.clear();
        self.ram.policy = String::new();
        // reverse the pmem numbering: names and numbers travel together
        let mut pmem: Vec<usize> = (0..self.state.block_devices.len())
            .filter(|i| {
                self.state.block_devices[*i].partition.is_none()
                    && self.state.block_devices[*i].name.starts_with("pmem")
            })
            .collect();
        pmem.sort_by_key(|i| self.state.block_devices[*i].name.clone());
        let names: Vec<(String, Devno)> = pmem
            .iter()
            .map(|i| {
                (
                    self.state.block_devices[*i].name.clone(),
                    self.state.block_devices[*i].devno,
                )
            })
            .collect();
        let old_devnos: Vec<Devno> = names.iter().map(|(_, d)| *d).collect();
        for (k, i) in pmem.iter().enumerate() {
            let (name, devno) = names[names.len() - 1 - k].clone();
            let old_name = self.state.block_devices[*i].name.clone();
            for n in &mut self.state.namespaces {
                if n.blockdev.as_deref() == Some(old_name.as_str()) {
                    n.blockdev = Some(format!("{name}.new"));
                }
            }
            let b = &mut self.state.block_devices[*i];
            b.name = format!("{name}.new");
            b.path = format!("/dev/{name}");
            for f in &mut self.state.filesystems {
                if f.device == old_devnos[k] {
                    f.device = Devno {
                        major: 0,
                        minor: devno.minor + 100_000,
                    };
                }
            }
            for t in &mut self.state.partition_tables {
                if t.disk == old_devnos[k] {
                    t.disk = Devno {
                        major: 0,
                        minor: devno.minor + 100_000,
                    };
                }
            }
            b.devno = devno;
        }
        // partitions travel with their disk (the kernel reads the table again under the
        // disk's new name); their own numbers and contents stay
        let renamed: Vec<(String, String)> = pmem
            .iter()
            .enumerate()
            .map(|(k, _)| (names[k].0.clone(), names[names.len() - 1 - k].0.clone()))
            .collect();
        for b in &mut self.state.block_devices {
            let Some(p) = b.partition.as_mut() else {
                continue;
            };
            if let Some((_, new)) = renamed.iter().find(|(old, _)| *old == p.disk) {
                p.disk = new.clone();
                b.name = partition_name(new, p.number);
                b.path = format!("/dev/{}", b.name);
            }
        }
        for b in &mut self.state.block_devices {
            b.name = b.name.trim_end_matches(".new").to_string();
        }
        for n in &mut self.state.namespaces {
            n.blockdev = n
                .blockdev
                .as_ref()
                .map(|b| b.trim_end_matches(".new").to_string());
        }
        for f in &mut self.state.filesystems {
            if f.device.major == 0 {
                f.device = Devno {
                    major: PMEM_MAJOR,
                    minor: f.device.minor - 100_000,
                };
            }
        }
        for t in &mut self.state.partition_tables {
            if t.disk.major == 0 {
                t.disk = Devno {
                    major: PMEM_MAJOR,
                    minor: t.disk.minor - 100_000,
                };
            }
        }
        for (i, ns) in pv_on.iter().enumerate() {
            let Some(devno) = ns
                .as_ref()
                .and_then(|ns| self.state.namespaces.iter().find(|n| n.dev == *ns))
                .and_then(|n| self.state.block_named(n.blockdev.as_deref()?))
                .map(|b| b.devno)
            else {
                continue;
            };
            self.state.lvm.pvs[i].device = devno;
        }
        let pvs = self.state.lvm.pvs.clone();
        for g in &mut self.state.lvm.vgs {
            for p in &mut g.pvs {
                p.device = pvs
                    .iter()
                    .find(|x| x.uuid.as_deref() == Some(p.uuid.as_str()))
                    .map(|x| x.device);
            }
        }
        // LVM's udev rules activate the LVs as their PVs appear
        self.lvm_autoactivate();
    }

    /// Count of mutating operations executed.
    pub fn mutations(&self) -> usize {
        self.executed.len()
    }

    /// A new device's number: the lowest minor of `major` no device has (dm's idr and
    /// the block layer's extended minors both hand out the lowest free one); a dm
    /// device without a disk holds its minor too.
    fn next_devno(&self, major: u32) -> Devno {
        let used: std::collections::BTreeSet<u32> = self
            .state
            .block_devices
            .iter()
            .map(|b| b.devno)
            .chain(self.state.dm_devices.iter().map(|d| d.devno))
            .filter(|d| d.major == major)
            .map(|d| d.minor)
            .collect();
        let minor = (0..=u32::MAX)
            .find(|m| !used.contains(m))
            .unwrap_or(u32::MAX);
        Devno { major, minor }
    }

    /// A process `by` opens `path` and keeps it open: a device node (a block device's
    /// path or alias) or a file under a mount point (on the filesystem mounted on top
    /// there). False when the path is neither.
    pub fn open_file(&mut self, path: &str, by: &str) -> bool {
        let device = self
            .state
            .block_devices
            .iter()
            .find(|b| b.path == path || b.aliases.iter().any(|a| a == path))
            .map(|b| b.devno);
        let file = || {
            self.state
                .mounts
                .iter()
                .rev()
                .filter(|m| {
                    let t = m.target.trim_end_matches('/');
                    path.strip_prefix(t).is_some_and(|r| r.starts_with('/'))
                })
                .max_by_key(|m| m.target.len())
                .map(|m| m.devno)
        };
        let (devno, on_fs) = match device {
            Some(d) => (d, false),
            None => match file() {
                Some(d) => (d, true),
                None => return false,
            },
        };
        self.open_files.push(OpenFile {
            path: path.to_string(),
            by: by.to_string(),
            devno,
            on_fs,
        });
        true
    }

    /// A plain open of device `devno` (what makes dm refuse to remove it).
    fn open_on(&self, devno: Devno) -> Option<String> {
        self.open_files
            .iter()
            .find(|f| f.devno == devno && !f.on_fs)
            .map(|f| format!("{} is open ({})", f.path, f.by))
    }

    fn busy(&self, bd: &BlockDevice) -> Option<String> {
        if let Some(what) = self.held_unseen.get(&bd.devno) {
            return Some(format!("{} is open ({what})", bd.path));
        }
        if !bd.holders.is_empty() {
            return Some(format!("{} is held by {}", bd.path, bd.holders.join(", ")));
        }
        if let Some(m) = self.state.mounts.iter().find(|m| m.devno == bd.devno) {
            return Some(format!("{} is mounted on {}", bd.path, m.target));
        }
        // a filesystem with an open file lives on after a lazy umount, its device
        // claimed
        if let Some(f) = self
            .open_files
            .iter()
            .find(|f| f.on_fs && f.devno == bd.devno)
        {
            return Some(format!(
                "{} is in use: {} is open ({}) on its filesystem",
                bd.path, f.path, f.by
            ));
        }
        if let Some(m) = self.state.elsewhere.iter().find(|m| m.devno == bd.devno) {
            return Some(format!(
                "{} is mounted on {} in the mount namespace of {}",
                bd.path,
                m.target,
                m.who()
            ));
        }
        if let Some(p) = self
            .state
            .partitions_of(&bd.name)
            .find_map(|p| self.busy(p))
        {
            return Some(p);
        }
        None
    }

    /// Forget what was on a device (its content was destroyed), and what a dm device
    /// over it kept there (the start of that device's data is gone with it).
    fn wipe(&mut self, devno: Devno) {
        if let Some(ns) = self
            .state
            .block(devno)
            .and_then(|b| self.state.namespace_of_block(&b.name))
            .map(|n| n.dev.clone())
        {
            let on = |k: &String| k.split([' ', '|', '[', ']']).any(|w| w == ns);
            self.dm_content.retain(|k, _| !on(k));
            self.dm_gpt.retain(|k, _| !on(k));
        }
        self.state.filesystems.retain(|f| f.device != devno);
        self.state.partition_tables.retain(|t| t.disk != devno);
        // a PV's label is overwritten too (its VG misses it from now on)
        self.state.lvm.pvs.retain(|p| p.device != devno);
        for g in &mut self.state.lvm.vgs {
            for p in &mut g.pvs {
                p.device = p.device.filter(|d| *d != devno);
            }
        }
        if let Some(name) = self.state.block(devno).map(|b| b.name.clone()) {
            let parts: Vec<Devno> = self.state.partitions_of(&name).map(|p| p.devno).collect();
            for p in parts {
                self.wipe(p);
            }
            self.state
                .block_devices
                .retain(|b| b.partition.as_ref().is_none_or(|p| p.disk != name));
        }
    }

    fn apply(&mut self, op: &Op, killed: bool) -> Result<Output, SystemError> {
        match op {
            Op::CreateCxlRegion {
                decoder,
                memdevs,
                granularity,
                size,
            } => self.cxl_create_region(decoder, memdevs, *granularity, *size, killed)?,
            Op::DestroyCxlRegion { region } => self.cxl_destroy_region(region)?,
            Op::DaxToSystemRam {
                dev,
                online,
                movable,
            } => self.dax_to_system_ram(dev, *online, *movable, killed)?,
            Op::DaxOnlineMemory { dev, movable } => self.dax_online(dev, *movable, killed)?,
            Op::DaxToDevdax {
                dev, offline_first, ..
            } => self.dax_to_devdax(dev, *offline_first, killed)?,
            Op::RestoreAutoOnline { policy } => self.restore_auto_online(policy),
            Op::CreateNamespace { region, config } => {
                self.create_namespace(region, config, killed)?
            }
            Op::ReconfigureNamespace { dev, config } => {
                self.reconfigure_namespace(dev, config, killed)?
            }
            Op::ClearNamespace { name, device } => self.clear_namespace(name, device),
            Op::DestroyNamespace { dev } => self.destroy_namespace(dev)?,
            Op::RecordName { record } => {
                self.state.name_records.retain(|r| r.name != record.name);
                self.state.name_records.push(record.clone());
                self.state.name_records.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Op::ForgetName { name } => self.state.name_records.retain(|r| r.name != *name),
            Op::DmCreate {
                name,
                table,
                max_sectors_kb,
            } => self.dm_create(name, table, *max_sectors_kb, killed)?,
            Op::DmReload {
                name,
                table,
                max_sectors_kb,
            } => self.dm_reload(name, table, *max_sectors_kb, killed)?,
            Op::DmRemove { name } => self.dm_remove(name)?,
            Op::GptCreate { disk } => self.gpt_create(disk, killed)?,
            Op::GptAdd {
                disk,
                entry,
                dm_disk,
            } => self.gpt_add(disk, entry, *dm_disk, killed)?,
            Op::GptDelete {
                disk,
                number,
                dm_disk,
            } => self.gpt_delete(disk, *number, *dm_disk)?,
            Op::Mkfs { .. } => self.mkfs(op, killed)?,
            Op::Mount {
                source,
                target,
                fstype,
                options,
            } => self.mount(source, target, fstype, options)?,
            Op::Remount { target, options } => self.remount(target, options)?,
            Op::Umount {
                target,
                lazy,
                when_busy,
            } => self.umount(target, *lazy, when_busy)?,
            Op::UmountElsewhere {
                target,
                devno,
                copies,
                ..
            } => self.umount_elsewhere(target, *devno, copies),
            Op::WriteFile {
                path,
                content,
                mode,
            } => self.write_file(path, content, *mode),
            Op::RemoveFile { path } => self.remove_file(path),
            Op::DaemonReload => self.daemon_reload(),
            Op::SetExtsize { target, size } => self.set_extsize(target, size)?,
            Op::Lvm(l) => self.lvm(l, killed)?,
            Op::ZeroPvLabel { device } => self.zero_pv_label(device)?,
            Op::SetMaxSectors { device, kb } => {
                self.write_sysfs(
                    &format!("/sys/dev/block/{}/queue/max_sectors_kb", device.devno),
                    &(*kb).min(dm::MAX_HW_SECTORS_KB).to_string(),
                )?;
            }
        }
        Ok(Output {
            argv: command_line(op),
            ..Output::default()
        })
    }

    fn fail(what: &str, error: impl Into<String>) -> SystemError {
        SystemError::Os {
            what: what.to_string(),
            error: error.into(),
        }
    }

    /// The block device `dev` (a copy), or `what` fails with `error`.
    fn device(
        &self,
        dev: &DevId,
        what: &str,
        error: impl Into<String>,
    ) -> Result<BlockDevice, SystemError> {
        self.state
            .block(dev.devno)
            .cloned()
            .ok_or_else(|| Self::fail(what, error))
    }
}

impl System for FakeSystem {
    fn set_scope(&mut self, scope: ProbeScope) {
        self.scope = scope;
    }

    /// The state as the real probe would return it: content only of the devices in
    /// scope that read, the others in scope as unreadable.
    fn probe(&mut self) -> Result<Actual, SystemError> {
        self.probes += 1;
        let mut a = self.state.clone();
        a.memory = self.memory_view();
        let r = reach(&self.scope, &a);
        let mut unreadable = Vec::new();
        for b in &a.block_devices {
            if let Some(why) = r.blocked.get(&b.devno) {
                unreadable.push(Unreadable {
                    device: b.devno,
                    path: b.path.clone(),
                    error: why.clone(),
                });
            } else if r.read.contains(&b.devno) {
                self.reads.push(b.path.clone());
                if let Some(e) = self.read_errors.get(&b.devno) {
                    unreadable.push(Unreadable {
                        device: b.devno,
                        path: b.path.clone(),
                        error: format!("reading the start of {}: {e}", b.path),
                    });
                }
            }
        }
        let readable = |d: &Devno| r.read.contains(d) && !self.read_errors.contains_key(d);
        a.filesystems.retain(|f| readable(&f.device));
        a.partition_tables.retain(|t| readable(&t.disk));
        // LVM is read from the PVs' heads: a VG is known from any PV that read
        a.lvm.pvs.retain(|p| readable(&p.device));
        for g in &mut a.lvm.vgs {
            for p in &mut g.pvs {
                p.device = p.device.filter(readable);
            }
        }
        a.lvm
            .vgs
            .retain(|g| g.pvs.iter().any(|p| p.device.is_some()));
        // a PV whose own copy is missing (a stopped vgcreate) is its VG's, as LVM counts
        a.lvm.place_listed_pvs();
        for m in &mut a.mounts {
            if !readable(&m.devno) {
                m.root_extsize = None;
            }
        }
        a.unreadable = unreadable;
        a.apply_name_records();
        // other namespaces' mounts are listed for the runs that ask, of devices in scope
        if self.scope.elsewhere {
            a.elsewhere.retain(|m| r.in_scope(m.devno));
        } else {
            a.elsewhere.clear();
        }
        Ok(a)
    }

    fn execute(&mut self, op: &Op) -> Result<Output, SystemError> {
        let n = self.executed.len() + 1;
        if self.fail_at == Some(n) {
            return Err(SystemError::Command {
                argv: command_line(op).unwrap_or_else(|| vec![format!("{op:?}")]),
                rc: Some(1),
                stdout: String::new(),
                stderr: format!("injected fault at operation {n}"),
            });
        }
        let killed = self.kill_mid_op == Some(n);
        // where the real operation has steps a kill can come between
        let half_way = match op {
            Op::CreateNamespace { .. } | Op::ReconfigureNamespace { .. } => {
                Some("after ndctl, before the clearing")
            }
            Op::DmCreate { .. } => Some("after the table load, before the resume"),
            Op::CreateCxlRegion { .. } => {
                Some("with the region's size and targets set, before the commit")
            }
            Op::DaxToSystemRam { .. } => {
                Some("with the auto-online policy set aside, before daxctl ran")
            }
            Op::DaxToDevdax { .. } => Some("with its memory offline, before devdax"),
            Op::DaxOnlineMemory { .. } => Some("with one memory block online, the rest not"),
            Op::DmReload { .. } => Some("after the suspend, before the resume"),
            Op::Mkfs { .. } => Some("with the old signatures wiped, the superblock unwritten"),
            Op::GptCreate { .. } => Some("with the old table wiped, the new one incomplete"),
            Op::Lvm(crate::op::LvmOp::PvCreate { .. }) => {
                Some("after the label, before its metadata area's header")
            }
            Op::Lvm(crate::op::LvmOp::LvCreate(_)) => {
                Some("after the metadata was committed, inside the activation")
            }
            Op::Lvm(crate::op::LvmOp::VgCreate { .. } | crate::op::LvmOp::VgExtend { .. }) => {
                Some("with the new metadata written on the VG's first PV only")
            }
            Op::GptAdd { dm_disk: false, .. } => {
                Some("after the entry was written, before the kernel was told")
            }
            _ => None,
        };
        if killed && half_way.is_none() {
            return Err(Self::fail(
                "killed",
                format!("operation {n} stopped before it did anything"),
            ));
        }
        let out = self.apply(op, killed);
        // what the probe shows: the recorded names on the namespaces no label names
        self.state.apply_name_records();
        let out = out?;
        self.executed.push(op.clone());
        if let (true, Some(when)) = (killed, half_way) {
            return Err(Self::fail(
                "killed",
                format!("operation {n} stopped {when}"),
            ));
        }
        Ok(out)
    }

    fn pmd_check(&mut self, mount_point: &str) -> Result<PmdFaults, SystemError> {
        self.pmd_faults(mount_point)
    }

    fn dax_check(&mut self, mount_point: &str) -> Result<DaxCheck, SystemError> {
        self.statx_dax(mount_point)
    }
}
