//! The fake system: an in-memory [`Actual`] that operations mutate the way the kernel
//! and the tools would (device numbers, holders, sizes after fsdax metadata, busy
//! devices, mkfs geometry taken from the argv, XFS's silent DAX fall-back). It sits
//! *below* the planner, so tests exercise the real decisions. It can fail on purpose at
//! a chosen operation, and devices can fail to read ([`FakeSystem::read_errors`]).
//!
//! A probe returns what the real one would: the scope the run set applies (see
//! `system/scope.rs`), so the content of devices out of scope is not in the snapshot,
//! and a device in scope that fails to read, is suspended or sits on a suspended one is
//! in `unreadable` instead of its content.

use super::scope::{reach, ProbeScope};
use super::{DaxCheck, Output, System, SystemError};
use crate::actual::dm::{table_length, table_text, DmTable, TableLine};
use crate::actual::{
    Actual, BlockDevice, DaxSyntax, Devno, Extsize, Filesystem, GptPartition, Mount, Namespace,
    PartitionOf, PartitionTable, Region, Unreadable,
};
use crate::args::{DaxMode, MapMode, NamespaceMode};
use crate::plan::partition_block_name;
use crate::plan::Op;
use crate::units::{Bytes, Sectors};

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
    /// Stop the operation with this 1-based index half-way, as a SIGKILL would: a
    /// namespace is made (with its uncleared marker) but not cleared; other operations
    /// are not done at all. The execute returns an error, as the next run would find.
    pub kill_mid_op: Option<usize>,
    /// Content an earlier namespace left on the media: every namespace made shows this
    /// filesystem until its ends are cleared (ndctl does not clear them).
    pub left_on_media: Option<Filesystem>,
    /// Simulate an old kernel that shows dax=always in mountinfo while files get no DAX.
    pub files_without_dax: bool,
    /// Filesystems on dm devices, by the table in member identity (namespace devices):
    /// the data lives on the members, so it comes back when the same table is loaded.
    pub dm_content: std::collections::BTreeMap<String, Filesystem>,
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
}

impl FakeSystem {
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
            });
            let devno = s.next_devno(PMEM_MAJOR);
            s.state.block_devices.push(BlockDevice {
                name: blk.clone(),
                devno,
                path: format!("/dev/{blk}"),
                aliases: vec![],
                size: size.sectors(),
                dax: false,
                holders: vec![],
                partition: None,
                max_sectors_kb: Some(PMEM_MAX_SECTORS_KB),
            });
        }
        s
    }

    /// A machine of `n` DIMMs, each region in one fsdax namespace named `pm<i>`.
    pub fn with_fsdax(n: u32, size: Bytes) -> Self {
        let mut s = Self::fresh_dimms(n, size);
        for i in 0..n {
            let op = Op::Namespace {
                reconfigure: Some(format!("namespace{i}.0")),
                region: format!("region{i}"),
                name: format!("pm{i}"),
                mode: NamespaceMode::Fsdax,
                size: None,
                align: Bytes(2 << 20),
                map: MapMode::Dev,
            };
            if let Err(e) = s.apply(&op, false) {
                unreachable!("a fresh fake machine converts: {e}");
            }
        }
        s
    }

    /// The saved states, as `pmem_stack --boot` without a file finds them: `(path, text)`
    /// in replay order (the legacy file, then `state.d` by name), for `crate::replay`
    /// after a [`reboot`](Self::reboot). Files survive a reboot (all but /run). The fake
    /// does not run units: the tests model what systemd does with them.
    pub fn saved_states(&self) -> Vec<(String, Result<String, String>)> {
        crate::boot::saved_states(&self.state)
            .into_iter()
            .map(|s| {
                let text = match self.state.file(&s.path).map(|f| &f.content) {
                    Some(crate::actual::FileContent::Text { text }) => Ok(text.clone()),
                    _ => Err(format!("{}: not a text file", s.path)),
                };
                (s.path, text)
            })
            .collect()
    }

    /// A reboot: dm devices and mounts are gone (tables live only in the kernel), the
    /// `/dev/pmemN` names and numbers of the namespaces swap around; data stays on the
    /// namespaces (a dm device's filesystem returns when the same table is loaded).
    pub fn reboot(&mut self) {
        for dm in self.state.dm_devices.clone() {
            if let (Some(key), Some(fs)) = (
                dm.table.lines().ok().and_then(|t| self.identity(t)),
                self.state.filesystem(dm.devno).cloned(),
            ) {
                // with the device down, its superblock is seen on its first member
                let first = dm
                    .table
                    .lines()
                    .ok()
                    .and_then(|t| t.first().and_then(|l| l.members().first().copied()));
                if let Some(first) = first {
                    self.state.filesystems.push(Filesystem {
                        device: first,
                        ..fs.clone()
                    });
                }
                self.dm_content.insert(key, fs);
            }
            self.state.filesystems.retain(|f| f.device != dm.devno);
            self.state.block_devices.retain(|b| b.devno != dm.devno);
        }
        self.state.dm_devices.clear();
        self.state.mounts.clear();
        // /run is empty after a boot
        self.state.files.retain(|f| !f.path.starts_with("/run/"));
        for b in &mut self.state.block_devices {
            b.holders.clear();
        }
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
                b.name = partition_block_name(new, p.number);
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
    }

    /// A table with members named by their namespace device (stable across reboots).
    fn identity(&self, lines: &[TableLine]) -> Option<String> {
        let mut key = table_text(lines).join("|");
        for l in lines {
            for m in l.members() {
                let bd = self.state.block(m)?;
                let ns = self.state.namespace_of_block(&bd.name)?;
                key = key.replace(&m.to_string(), &ns.dev);
            }
        }
        Some(key)
    }

    /// An application writes `sectors` sectors of raw data from the start of device
    /// `name` (no filesystem, no partition table: nothing the probe recognises): a dm
    /// device by its dm name (a declared device, or a kpartx-style partition mapping), else
    /// a block device by its kernel name (`pmem0p1`). Returns false when the device does
    /// not exist or does not map that much.
    pub fn write_raw(&mut self, name: &str, sectors: u64) -> bool {
        let Some(devno) = self.raw_devno(name) else {
            return false;
        };
        let placed: Option<Vec<(u64, Devno, u64)>> = (0..sectors)
            .map(|s| bottom_sector(&self.state, devno, s, 0).map(|(d, o)| (s, d, o)))
            .collect();
        match placed {
            Some(p) => {
                self.raw_data.insert(name.to_string(), p);
                true
            }
            None => false,
        }
    }

    /// Whether the raw data written to `name` reads back: the device still exists under
    /// that name and every sector still maps, through dm-linear/dm-stripe tables and
    /// partition starts, to the sector of the bottom device it was written to.
    pub fn raw_intact(&self, name: &str) -> bool {
        let Some(devno) = self.raw_devno(name) else {
            return false;
        };
        self.raw_data.get(name).is_some_and(|written| {
            written
                .iter()
                .all(|(s, d, o)| bottom_sector(&self.state, devno, *s, 0) == Some((*d, *o)))
        })
    }

    /// The device raw data is written to: a dm name first, then a kernel name.
    fn raw_devno(&self, name: &str) -> Option<Devno> {
        self.state
            .dm(name)
            .map(|d| d.devno)
            .or_else(|| self.state.block_named(name).map(|b| b.devno))
    }

    /// Count of mutating operations executed.
    pub fn mutations(&self) -> usize {
        self.executed.len()
    }

    fn next_devno(&self, major: u32) -> Devno {
        let minor = self
            .state
            .block_devices
            .iter()
            .filter(|b| b.devno.major == major)
            .map(|b| b.devno.minor + 1)
            .max()
            .unwrap_or(0);
        Devno { major, minor }
    }

    fn busy(&self, bd: &BlockDevice) -> Option<String> {
        if !bd.holders.is_empty() {
            return Some(format!("{} is held by {}", bd.path, bd.holders.join(", ")));
        }
        if let Some(m) = self.state.mounts.iter().find(|m| m.devno == bd.devno) {
            return Some(format!("{} is mounted on {}", bd.path, m.target));
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

    /// Forget what was on a device (its content was destroyed).
    fn wipe(&mut self, devno: Devno) {
        self.state.filesystems.retain(|f| f.device != devno);
        self.state.partition_tables.retain(|t| t.disk != devno);
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

    /// A kernel before 5.8 refuses `dax=MODE` ("Unrecognized mount option").
    fn dax_options_known(
        syntax: DaxSyntax,
        options: &[String],
        what: &str,
    ) -> Result<(), SystemError> {
        match options.iter().find(|o| o.starts_with("dax=")) {
            Some(o) if syntax == DaxSyntax::Flag => Err(Self::fail(
                what,
                format!("Unrecognized mount option \"{o}\" or missing value"),
            )),
            _ => Ok(()),
        }
    }

    fn fail(what: &str, error: impl Into<String>) -> SystemError {
        SystemError::Os {
            what: what.to_string(),
            error: error.into(),
        }
    }

    /// Usable block device size of a namespace in a mode.
    fn usable(size: Bytes, mode: NamespaceMode, align: Bytes, map: MapMode) -> Bytes {
        let align = if align.is_zero() {
            Bytes(2 << 20)
        } else {
            align
        };
        match mode {
            NamespaceMode::Raw => size,
            NamespaceMode::Sector => (size - size / 256).align_down(Bytes(4096)),
            NamespaceMode::Fsdax | NamespaceMode::Devdax => {
                let meta = match map {
                    MapMode::Dev => size.0 / 64 + (2 << 20),
                    MapMode::Mem => 2 << 20,
                };
                let meta = align * meta.div_ceil(align.0);
                size.saturating_sub(meta)
            }
        }
    }

    fn apply(&mut self, op: &Op, killed: bool) -> Result<Output, SystemError> {
        let out = Output {
            argv: op.argv(),
            ..Output::default()
        };
        match op {
            Op::Namespace {
                reconfigure,
                region,
                name,
                mode,
                size,
                align,
                map,
            } => {
                let what = "ndctl create-namespace";
                let (dev, ns_size, old_blk) = match reconfigure {
                    Some(dev) => {
                        let ns = self
                            .state
                            .namespaces
                            .iter()
                            .find(|n| n.dev == *dev)
                            .cloned()
                            .ok_or_else(|| Self::fail(what, format!("{dev} not found")))?;
                        if let Some(bd) = ns
                            .blockdev
                            .as_deref()
                            .and_then(|b| self.state.block_named(b))
                        {
                            if let Some(why) = self.busy(bd) {
                                return Err(Self::fail(
                                    what,
                                    format!("{dev}: device busy ({why})"),
                                ));
                            }
                        }
                        let r = self
                            .state
                            .regions
                            .iter_mut()
                            .find(|r| r.name == ns.region)
                            .ok_or_else(|| Self::fail(what, "no region"))?;
                        let new_size = size.unwrap_or(ns.size);
                        if ns.is_label_less() {
                            r.available_size = r.size.saturating_sub(new_size);
                        } else if new_size > r.available_size + ns.size {
                            return Err(Self::fail(what, "not enough space"));
                        } else {
                            r.available_size = r.available_size + ns.size - new_size;
                        }
                        (dev.clone(), new_size, ns.blockdev.clone())
                    }
                    None => {
                        let r = self
                            .state
                            .regions
                            .iter_mut()
                            .find(|r| r.name == *region)
                            .ok_or_else(|| Self::fail(what, format!("{region} not found")))?;
                        let s = size.unwrap_or(r.available_size);
                        if s.is_zero() || s > r.available_size {
                            return Err(Self::fail(what, format!("{region}: not enough space")));
                        }
                        r.available_size -= s;
                        let idx = region.trim_start_matches("region");
                        let k = self
                            .state
                            .namespaces
                            .iter()
                            .filter(|n| n.region == *region)
                            .count();
                        (format!("namespace{idx}.{k}"), s, None)
                    }
                };
                if let Some(old) = &old_blk {
                    if let Some(devno) = self.state.block_named(old).map(|b| b.devno) {
                        self.wipe(devno);
                    }
                    self.state.block_devices.retain(|b| b.name != *old);
                }
                let blockdev = match mode {
                    NamespaceMode::Devdax => None,
                    _ => Some(old_blk.clone().unwrap_or_else(|| {
                        let n = (0..)
                            .find(|i| self.state.block_named(&format!("pmem{i}")).is_none())
                            .unwrap_or(0);
                        format!("pmem{n}")
                    })),
                };
                if let Some(b) = &blockdev {
                    let devno = self.next_devno(PMEM_MAJOR);
                    let usable = Self::usable(ns_size, *mode, *align, *map);
                    self.state.block_devices.push(BlockDevice {
                        name: b.clone(),
                        devno,
                        path: format!("/dev/{b}"),
                        aliases: vec![],
                        size: usable.sectors(),
                        dax: *mode == NamespaceMode::Fsdax,
                        holders: vec![],
                        partition: None,
                        max_sectors_kb: Some(PMEM_MAX_SECTORS_KB),
                    });
                }
                let region_name = self
                    .state
                    .namespaces
                    .iter()
                    .find(|n| n.dev == dev)
                    .map(|n| n.region.clone())
                    .unwrap_or_else(|| region.clone());
                let dax_like = matches!(mode, NamespaceMode::Fsdax | NamespaceMode::Devdax);
                let ns = Namespace {
                    dev: dev.clone(),
                    region: region_name,
                    name: Some(name.clone()),
                    mode: *mode,
                    size: ns_size,
                    uuid: Some(format!(
                        "00000000-0000-4000-8000-{:012x}",
                        self.executed.len() + 1
                    )),
                    align: dax_like.then_some(*align),
                    map: dax_like.then_some(*map),
                    chardev: (*mode == NamespaceMode::Devdax)
                        .then(|| format!("dax{}", dev.trim_start_matches("namespace"))),
                    blockdev,
                    resource: None,
                    numa_node: Some(0),
                };
                let uuid = ns.uuid.clone().unwrap_or_default();
                let blk = ns.blockdev.clone();
                match self.state.namespaces.iter_mut().find(|n| n.dev == dev) {
                    Some(slot) => *slot = ns,
                    None => self.state.namespaces.push(ns),
                }
                // as the real system: marker, ndctl, clearing, marker dropped
                if let Some(devno) = blk
                    .as_deref()
                    .and_then(|b| self.state.block_named(b))
                    .map(|b| b.devno)
                {
                    self.state.uncleared.push(crate::actual::Uncleared {
                        uuid,
                        name: name.clone(),
                    });
                    if let Some(fs) = &self.left_on_media {
                        self.state.filesystems.push(Filesystem {
                            device: devno,
                            ..fs.clone()
                        });
                    }
                    if !killed {
                        self.wipe(devno);
                        self.state.uncleared.retain(|m| m.name != *name);
                    }
                }
            }
            Op::ClearNamespace { name, device } => {
                self.wipe(device.devno);
                self.state.uncleared.retain(|m| m.name != *name);
            }
            Op::DestroyNamespace { dev } => {
                let what = "ndctl destroy-namespace";
                let ns = self
                    .state
                    .namespaces
                    .iter()
                    .find(|n| n.dev == *dev)
                    .cloned()
                    .ok_or_else(|| Self::fail(what, format!("{dev} not found")))?;
                if let Some(bd) = ns
                    .blockdev
                    .as_deref()
                    .and_then(|b| self.state.block_named(b))
                    .cloned()
                {
                    if let Some(why) = self.busy(&bd) {
                        return Err(Self::fail(what, format!("{dev}: device busy ({why})")));
                    }
                    self.wipe(bd.devno);
                    self.state.block_devices.retain(|b| b.devno != bd.devno);
                }
                if let Some(r) = self.state.regions.iter_mut().find(|r| r.name == ns.region) {
                    r.available_size += ns.size;
                }
                self.state.namespaces.retain(|n| n.dev != *dev);
            }
            Op::DmCreate { name, table } => {
                if self.state.dm(name).is_some() {
                    return Err(Self::fail(
                        "DM_DEV_CREATE",
                        format!("{name}: device exists"),
                    ));
                }
                self.check_table(table)?;
                let devno = self.next_devno(DM_MAJOR);
                let kname = format!("dm-{}", devno.minor);
                self.set_holders(&kname, &[], table);
                self.state.block_devices.push(BlockDevice {
                    name: kname.clone(),
                    devno,
                    path: format!("/dev/mapper/{name}"),
                    aliases: vec![format!("/dev/{kname}")],
                    size: table_length(table),
                    dax: self.table_dax(table),
                    holders: vec![],
                    partition: None,
                    // as the real create does: raised to the stripe chunk
                    max_sectors_kb: Some(
                        PMEM_MAX_SECTORS_KB.max(crate::plan::striped_chunk_kb(table)),
                    ),
                });
                self.state.dm_devices.push(crate::actual::DmDevice {
                    name: name.clone(),
                    devno,
                    uuid: None,
                    table: DmTable::new(table.to_vec()),
                    suspended: false,
                    open_count: 0,
                });
                // a linear device maps its first member from sector 0: a filesystem there
                // that fits in the device shows through it, as the kernel would show it
                let through = table
                    .first()
                    .and_then(|l| match l.target {
                        crate::actual::dm::Target::Linear { dev, offset }
                            if l.start.is_zero() && offset.is_zero() =>
                        {
                            self.state.filesystem(dev).cloned()
                        }
                        _ => None,
                    })
                    .filter(|f| f.size.is_some_and(|s| s <= table_length(table).bytes()));
                // members held by a dm device are not probed for filesystems
                let members: Vec<Devno> = table.iter().flat_map(|l| l.members()).collect();
                self.state
                    .filesystems
                    .retain(|f| !members.contains(&f.device));
                if let Some(fs) = self
                    .identity(table)
                    .and_then(|k| self.dm_content.get(&k).cloned())
                    .or(through)
                {
                    self.state.filesystems.push(Filesystem {
                        device: devno,
                        ..fs
                    });
                }
            }
            Op::DmReload { name, table } => {
                self.check_table(table)?;
                let dm = self.state.dm(name).cloned().ok_or_else(|| {
                    Self::fail("DM_TABLE_LOAD", format!("{name}: no such device"))
                })?;
                let old = dm.table.lines().unwrap_or_default().to_vec();
                if self.state.block(dm.devno).is_none() {
                    // as the kernel does: a dm device gets its disk with its first table
                    let kname = format!("dm-{}", dm.devno.minor);
                    self.state.block_devices.push(BlockDevice {
                        name: kname.clone(),
                        devno: dm.devno,
                        path: format!("/dev/mapper/{name}"),
                        aliases: vec![format!("/dev/{kname}")],
                        size: crate::units::Sectors(0),
                        dax: false,
                        holders: vec![],
                        partition: None,
                        max_sectors_kb: Some(PMEM_MAX_SECTORS_KB),
                    });
                }
                let kname = self
                    .state
                    .block(dm.devno)
                    .map(|b| b.name.clone())
                    .unwrap_or_default();
                self.set_holders(&kname, &old, table);
                let grow = old.len() <= table.len() && table[..old.len()] == old[..];
                if !grow {
                    self.wipe(dm.devno);
                }
                let dax = self.table_dax(table);
                if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == *name) {
                    d.table = DmTable::new(table.to_vec());
                    // the reload ends with a resume
                    d.suspended = false;
                }
                if let Some(b) = self
                    .state
                    .block_devices
                    .iter_mut()
                    .find(|b| b.devno == dm.devno)
                {
                    b.size = table_length(table);
                    // as the real reload does: raised to the stripe chunk
                    b.max_sectors_kb = b
                        .max_sectors_kb
                        .map(|k| k.max(crate::plan::striped_chunk_kb(table)));
                    b.dax = dax;
                }
            }
            Op::DmRemove { name } => {
                let dm = self.state.dm(name).cloned().ok_or_else(|| {
                    Self::fail("DM_DEV_REMOVE", format!("{name}: no such device"))
                })?;
                let bd = self
                    .state
                    .block(dm.devno)
                    .cloned()
                    .ok_or_else(|| Self::fail("DM_DEV_REMOVE", "no block device"))?;
                if let Some(why) = self.busy(&bd) {
                    return Err(Self::fail(
                        "DM_DEV_REMOVE",
                        format!("{name}: device or resource busy ({why})"),
                    ));
                }
                let old = dm.table.lines().unwrap_or_default().to_vec();
                self.set_holders(&bd.name, &old, &[]);
                self.state.block_devices.retain(|b| b.devno != dm.devno);
                self.state.dm_devices.retain(|d| d.name != *name);
            }
            Op::GptCreate { disk } => {
                let bd =
                    self.state.block(disk.devno).cloned().ok_or_else(|| {
                        Self::fail("write GPT", format!("{} not found", disk.path))
                    })?;
                if let Some(why) = self.busy(&bd) {
                    return Err(Self::fail("write GPT", why));
                }
                self.wipe(disk.devno);
                self.state.partition_tables.push(PartitionTable {
                    disk: disk.devno,
                    first_usable: Sectors(34),
                    last_usable: bd.size.saturating_sub(Sectors(34)),
                    partitions: vec![],
                });
            }
            Op::GptAdd {
                disk,
                number,
                name,
                start,
                size,
                dm_disk,
            } => {
                let bd = self
                    .state
                    .block(disk.devno)
                    .cloned()
                    .ok_or_else(|| Self::fail("add partition", "no disk"))?;
                let t = self
                    .state
                    .partition_tables
                    .iter_mut()
                    .find(|t| t.disk == disk.devno)
                    .ok_or_else(|| Self::fail("add partition", "no GPT"))?;
                if t.partitions.iter().any(|p| p.number == *number)
                    || *start + *size > t.last_usable + Sectors(1)
                {
                    return Err(Self::fail("add partition", "slot taken or out of range"));
                }
                // as the real side checks: a new entry never overlaps another one
                if let Some(p) = t.partitions.iter().find(|p| {
                    *start < p.start.saturating_add(p.size) && p.start < start.saturating_add(*size)
                }) {
                    return Err(Self::fail(
                        "add partition",
                        format!("it overlaps entry {} ({:?})", p.number, p.name),
                    ));
                }
                // a unique partition GUID, as the real side writes (made up from the
                // disk and the number: the fake is deterministic)
                let uuid = format!(
                    "{:08x}-{:04x}-4000-8000-{:012x}",
                    disk.devno.major,
                    disk.devno.minor & 0xffff,
                    number
                );
                t.partitions.push(GptPartition {
                    number: *number,
                    name: name.clone(),
                    start: *start,
                    size: *size,
                    type_guid: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()), // Linux filesystem data
                    uuid: Some(uuid.clone()),
                });
                if !dm_disk {
                    let pname = partition_block_name(&bd.name, *number);
                    let devno = self.next_devno(PMEM_MAJOR);
                    self.state.block_devices.push(BlockDevice {
                        name: pname.clone(),
                        devno,
                        path: format!("/dev/{pname}"),
                        aliases: vec![format!("/dev/disk/by-partuuid/{uuid}")],
                        size: *size,
                        dax: bd.dax
                            && start.is_multiple_of(Sectors(8))
                            && size.is_multiple_of(Sectors(8)),
                        holders: vec![],
                        partition: Some(PartitionOf {
                            disk: bd.name.clone(),
                            number: *number,
                            start: *start,
                        }),
                        max_sectors_kb: bd.max_sectors_kb,
                    });
                }
            }
            Op::GptDelete {
                disk,
                number,
                dm_disk,
            } => {
                let bd = self
                    .state
                    .block(disk.devno)
                    .cloned()
                    .ok_or_else(|| Self::fail("delete partition", "no disk"))?;
                if !dm_disk {
                    let part = self
                        .state
                        .partitions_of(&bd.name)
                        .find(|p| p.partition.as_ref().is_some_and(|x| x.number == *number))
                        .cloned();
                    if let Some(p) = part {
                        if let Some(why) = self.busy(&p) {
                            return Err(Self::fail("delete partition", why));
                        }
                        self.state.block_devices.retain(|b| b.devno != p.devno);
                    }
                }
                if let Some(t) = self
                    .state
                    .partition_tables
                    .iter_mut()
                    .find(|t| t.disk == disk.devno)
                {
                    t.partitions.retain(|p| p.number != *number);
                }
            }
            Op::Mkfs {
                device,
                fstype,
                argv,
            } => {
                let bd = self
                    .state
                    .block(device.devno)
                    .cloned()
                    .ok_or_else(|| Self::fail("mkfs", "no device"))?;
                let force = argv.iter().any(|a| a == "-f" || a == "-F");
                if !force
                    && (self.state.filesystem(bd.devno).is_some()
                        || self.state.gpt(bd.devno).is_some())
                {
                    return Err(SystemError::Command {
                        argv: argv.clone(),
                        rc: Some(1),
                        stdout: String::new(),
                        stderr: format!(
                            "{}: appears to contain an existing filesystem or partition table",
                            bd.path
                        ),
                    });
                }
                if let Some(why) = self.busy(&bd) {
                    return Err(SystemError::Command {
                        argv: argv.clone(),
                        rc: Some(1),
                        stdout: String::new(),
                        stderr: why,
                    });
                }
                self.wipe(bd.devno);
                let (su, sw, reflink) = crate::plan::mkfs_geometry(argv);
                let label = argv
                    .iter()
                    .position(|a| a == "-L")
                    .and_then(|i| argv.get(i + 1))
                    .cloned();
                self.state.filesystems.push(Filesystem {
                    device: bd.devno,
                    fstype: fstype.as_str().to_string(),
                    uuid: Some(format!("fs-{}", self.executed.len() + 1)),
                    label,
                    block_size: Some(Bytes(4096)),
                    stripe_unit: Some(su),
                    stripe_width: Some(sw),
                    reflink: (fstype.as_str() == "xfs").then_some(reflink),
                    size: Some(bd.size.bytes()),
                });
                return Ok(Output {
                    argv: Some(argv.clone()),
                    ..Output::default()
                });
            }
            Op::Mount {
                source,
                target,
                fstype,
                options,
            } => {
                let bd = self
                    .state
                    .block(source.devno)
                    .cloned()
                    .ok_or_else(|| Self::fail("mount", "no device"))?;
                let fs = self.state.filesystem(bd.devno).cloned().ok_or_else(|| {
                    Self::fail(
                        "mount",
                        format!("{}: wrong fs type, bad superblock", bd.path),
                    )
                })?;
                if fs.fstype != *fstype {
                    return Err(Self::fail(
                        "mount",
                        format!("{} is {}, not {fstype}", bd.path, fs.fstype),
                    ));
                }
                if self.state.mount_at(target).is_some() {
                    return Err(Self::fail(
                        "mount",
                        format!("{target} is already a mount point"),
                    ));
                }
                // the kernel of `state.platform.kernel`: before 5.8 only a bare `dax`
                let syntax = self.state.dax_syntax();
                Self::dax_options_known(syntax, options, "mount")?;
                let wanted = options.iter().find_map(|o| match o.as_str() {
                    "dax" => Some(DaxMode::Always),
                    o => o.strip_prefix("dax=").map(|d| match d {
                        "always" => DaxMode::Always,
                        "inode" => DaxMode::Inode,
                        _ => DaxMode::Never,
                    }),
                });
                let dax = match wanted {
                    Some(DaxMode::Always | DaxMode::Inode) if !bd.dax => {
                        if fstype == "ext4" {
                            return Err(Self::fail(
                                "mount",
                                format!("{}: DAX unsupported by block device", bd.path),
                            ));
                        }
                        Some(DaxMode::Never) // xfs turns DAX off silently
                    }
                    other => other.or(Some(DaxMode::Never)),
                };
                let mut opts: Vec<String> = vec!["rw".into()];
                opts.extend(
                    options
                        .iter()
                        .filter(|o| *o != "dax" && !o.starts_with("dax="))
                        .cloned(),
                );
                // as mountinfo shows it: `dax=MODE` from 5.8, `dax` or nothing before
                let shown = match (syntax, dax) {
                    (DaxSyntax::Modes, Some(d)) => Some(format!("dax={}", d.as_str())),
                    (DaxSyntax::Flag, Some(DaxMode::Always | DaxMode::Inode)) => {
                        Some("dax".to_string())
                    }
                    _ => None,
                };
                opts.extend(shown);
                self.state.mounts.push(Mount {
                    target: target.clone(),
                    devno: bd.devno,
                    source: bd.path.clone(),
                    fstype: fstype.clone(),
                    options: opts,
                    dax,
                    root_extsize: (fstype == "xfs").then(|| {
                        fs.uuid
                            .as_ref()
                            .and_then(|u| self.extsize_by_fs.get(u).copied())
                            .unwrap_or(Extsize {
                                size: Bytes(0),
                                inherit: false,
                            })
                    }),
                });
            }
            Op::Remount { target, options } => {
                Self::dax_options_known(self.state.dax_syntax(), options, "remount")?;
                let m = self
                    .state
                    .mounts
                    .iter_mut()
                    .rev()
                    .find(|m| m.target == *target)
                    .ok_or_else(|| Self::fail("remount", format!("{target}: not mounted")))?;
                for o in options {
                    if !m.options.contains(o) {
                        m.options.push(o.clone());
                    }
                }
            }
            Op::Umount { target, .. } => {
                let i = self
                    .state
                    .mounts
                    .iter()
                    .rposition(|m| m.target == *target)
                    .ok_or_else(|| Self::fail("umount", format!("{target}: not mounted")))?;
                self.state.mounts.remove(i);
            }
            Op::WriteFile {
                path,
                content,
                mode,
            } => {
                self.before_unit_change(path);
                let f = crate::actual::FileState {
                    path: path.clone(),
                    content: content.clone(),
                    mode: Some(*mode),
                };
                match self.state.files.iter_mut().find(|x| x.path == *path) {
                    Some(slot) => *slot = f,
                    None => self.state.files.push(f),
                }
            }
            Op::RemoveFile { path } => {
                self.before_unit_change(path);
                self.state.files.retain(|f| f.path != *path)
            }
            Op::DaemonReload => self
                .state
                .files
                .retain(|f| f.path != crate::boot::RELOAD_PENDING),
            Op::SetExtsize { target, size } => {
                let m = self
                    .state
                    .mounts
                    .iter_mut()
                    .rev()
                    .find(|m| m.target == *target)
                    .ok_or_else(|| {
                        Self::fail("FS_IOC_FSSETXATTR", format!("{target}: not mounted"))
                    })?;
                let e = Extsize {
                    size: *size,
                    inherit: true,
                };
                m.root_extsize = Some(e);
                let devno = m.devno;
                if let Some(u) = self.state.filesystem(devno).and_then(|f| f.uuid.clone()) {
                    self.extsize_by_fs.insert(u, e);
                }
            }
        }
        Ok(out)
    }

    /// As the real system: a unit change marks the daemon-reload pending.
    fn before_unit_change(&mut self, path: &str) {
        let pending = crate::boot::RELOAD_PENDING;
        if crate::boot::is_unit_path(path) && self.state.file(pending).is_none() {
            self.state
                .files
                .push(crate::boot::reload_pending_marker(path));
        }
    }

    fn check_table(&self, table: &[TableLine]) -> Result<(), SystemError> {
        for l in table {
            for m in l.members() {
                let Some(bd) = self.state.block(m) else {
                    return Err(Self::fail("DM_TABLE_LOAD", format!("{m}: no such device")));
                };
                let per = match &l.target {
                    crate::actual::dm::Target::Striped { stripes, .. } => {
                        l.length / stripes.len() as u64
                    }
                    _ => l.length,
                };
                if per > bd.size {
                    return Err(Self::fail(
                        "DM_TABLE_LOAD",
                        format!("{}: device too small for {l}", bd.path),
                    ));
                }
            }
        }
        Ok(())
    }

    fn table_dax(&self, table: &[TableLine]) -> bool {
        table.iter().all(|l| {
            l.supports_dax()
                && l.members()
                    .iter()
                    .all(|m| self.state.block(*m).is_some_and(|b| b.dax))
        })
    }

    fn set_holders(&mut self, holder: &str, old: &[TableLine], new: &[TableLine]) {
        let old: Vec<Devno> = old.iter().flat_map(|l| l.members()).collect();
        let new: Vec<Devno> = new.iter().flat_map(|l| l.members()).collect();
        for b in self.state.block_devices.iter_mut() {
            if old.contains(&b.devno) {
                b.holders.retain(|h| h != holder);
            }
            if new.contains(&b.devno) && !b.holders.iter().any(|h| h == holder) {
                b.holders.push(holder.to_string());
            }
        }
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
        for m in &mut a.mounts {
            if !readable(&m.devno) {
                m.root_extsize = None;
            }
        }
        a.unreadable = unreadable;
        Ok(a)
    }

    fn execute(&mut self, op: &Op) -> Result<Output, SystemError> {
        let n = self.executed.len() + 1;
        if self.fail_at == Some(n) {
            return Err(SystemError::Command {
                argv: op.argv().unwrap_or_else(|| vec![format!("{op:?}")]),
                rc: Some(1),
                stdout: String::new(),
                stderr: format!("injected fault at operation {n}"),
            });
        }
        let killed = self.kill_mid_op == Some(n);
        if killed && !matches!(op, Op::Namespace { .. }) {
            return Err(Self::fail(
                "killed",
                format!("operation {n} stopped before it did anything"),
            ));
        }
        let out = self.apply(op, killed)?;
        self.executed.push(op.clone());
        if killed {
            return Err(Self::fail(
                "killed",
                format!("operation {n} stopped after ndctl, before the clearing"),
            ));
        }
        Ok(out)
    }

    /// The fake kernel maps 2 MiB pages exactly where the audit finds every layer aligned.
    fn pmd_check(&mut self, mount_point: &str) -> Result<super::PmdFaults, SystemError> {
        let a = crate::audit::audit(&self.state, Some(&[mount_point.to_string()]));
        let s = a
            .mounts
            .first()
            .ok_or_else(|| Self::fail("pmd check", format!("{mount_point}: not mounted")))?;
        let faults = 8;
        Ok(super::PmdFaults {
            nopage: if s.pmd_ok { faults } else { 0 },
            fallback: if s.pmd_ok { 0 } else { faults },
            other: 0,
            bytes: 16 << 20,
        })
    }

    fn dax_check(&mut self, mount_point: &str) -> Result<DaxCheck, SystemError> {
        let m = self
            .state
            .mount_at(mount_point)
            .ok_or_else(|| Self::fail("dax check", format!("{mount_point}: not mounted")))?;
        let statx_dax = m.dax == Some(DaxMode::Always) && !self.files_without_dax;
        Ok(DaxCheck {
            statx_dax,
            kernel_log: if statx_dax {
                Vec::new()
            } else {
                vec![format!(
                    "{}: DAX unsupported by block device. Turning off DAX.",
                    m.source
                )]
            },
        })
    }
}

/// Where sector `s` of device `devno` lives on the device at the bottom of its stack
/// (neither dm nor a partition): through dm tables ([`member_sector`]) and partition
/// starts, as the kernel maps them. `None` past the device's end or through a table
/// that maps nothing there.
fn bottom_sector(a: &Actual, devno: Devno, s: u64, depth: u8) -> Option<(Devno, u64)> {
    if depth > 16 {
        return None;
    }
    let bd = a.block(devno)?;
    if s >= bd.size.0 {
        return None;
    }
    if let Some(dm) = a.dm_by_devno(devno) {
        let table = dm.table.lines().ok()?;
        let (d, o) = member_sector(table, s)?;
        return bottom_sector(a, d, o, depth + 1);
    }
    if let Some(p) = &bd.partition {
        let disk = a.block_named(&p.disk)?;
        return bottom_sector(a, disk.devno, p.start.0.checked_add(s)?, depth + 1);
    }
    Some((devno, s))
}

/// Where sector `s` of a dm device lives: (member, sector on it), the way the kernel's
/// dm-linear and dm-stripe map it (a model of the kernel, independent of the planner's
/// rule about which reloads keep data, so the tests check one against the other).
fn member_sector(table: &[TableLine], s: u64) -> Option<(Devno, u64)> {
    let l = table
        .iter()
        .find(|l| l.start.0 <= s && s - l.start.0 < l.length.0)?;
    let rel = s - l.start.0;
    match &l.target {
        crate::actual::dm::Target::Linear { dev, offset } => Some((*dev, offset.0 + rel)),
        crate::actual::dm::Target::Striped { chunk, stripes } => {
            let c = rel.checked_div(chunk.0)?;
            let n = u64::try_from(stripes.len()).ok()?;
            let (dev, offset) = stripes.get(usize::try_from(c.checked_rem(n)?).ok()?)?;
            Some((*dev, offset.0 + (c / n) * chunk.0 + rel % chunk.0))
        }
        crate::actual::dm::Target::Other { .. } => None,
    }
}
