//! Device mapper: create, reload (suspend, load, resume) and remove, with holders, DAX
//! and the queue limits the kernel gives a dm device (`max_sectors_kb`, changed only by
//! a write to its sysfs file, as the op asks); and where a sector of a dm device or a
//! partition lives on the device under it (the raw data model).

use super::{FakeSystem, DM_MAJOR};
use crate::actual::dm::{table_text, DmTable, TableLine, Target};
use crate::actual::{Actual, BlockDevice, Devno, DmDevice, Filesystem, PartitionTable};
use crate::dm_table::table_length;
use crate::system::SystemError;

/// `queue/max_hw_sectors_kb` of pmem and of dm over it: pmem sets no limit (UINT_MAX
/// sectors), and the fixtures show a dm device over nothing with this.
pub(super) const MAX_HW_SECTORS_KB: u32 = u32::MAX / 2;
/// The default cap of the largest I/O (`BLK_DEF_MAX_SECTORS_CAP`, 2560 sectors).
const DEF_MAX_SECTORS_KB: u32 = 1280;

impl FakeSystem {
    /// DM_DEV_CREATE, DM_TABLE_LOAD, resume: a new device over `table` (the lowest free
    /// minor, as dm's idr gives it); a filesystem its members held under the same table
    /// (or a linear one's first member) shows through it. Then, as the op asks, its
    /// `queue/max_sectors_kb` raised to `max_sectors_kb` where the kernel gave less.
    /// `killed`: stopped after the table load, before the resume (the disk is there,
    /// with no size; the members are held; no table is live).
    pub(super) fn dm_create(
        &mut self,
        name: &str,
        table: &[TableLine],
        max_sectors_kb: Option<u32>,
        killed: bool,
    ) -> Result<(), SystemError> {
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
        let disk = self.dm_disk(name, devno, table);
        self.state.block_devices.push(disk);
        self.state.dm_devices.push(DmDevice {
            name: name.to_string(),
            devno,
            uuid: None,
            table: DmTable::new(Vec::new()),
            suspended: false,
            open_count: 0,
        });
        if killed {
            return Ok(());
        }
        self.go_live(name, devno, table);
        self.raise_max_sectors(devno, max_sectors_kb)
    }

    /// The disk of dm device `name` (`devno`) as its first table load adds it: the table's
    /// queue limits (DAX, the largest I/O) and no size yet (that comes with the resume).
    fn dm_disk(&self, name: &str, devno: Devno, table: &[TableLine]) -> BlockDevice {
        let kname = format!("dm-{}", devno.minor);
        BlockDevice {
            aliases: vec![format!("/dev/{kname}")],
            name: kname,
            devno,
            path: format!("/dev/mapper/{name}"),
            size: crate::units::Sectors(0),
            dax: self.table_dax(table),
            holders: vec![],
            partition: None,
            max_sectors_kb: Some(self.kernel_max_sectors_kb(table)),
        }
    }

    /// `table` made live on dm device `name` (`devno`), whose disk exists: its size, DAX
    /// and queue limits from the table, and the content its members hold under it (a
    /// linear device over a filesystem from sector 0 shows it too).
    fn go_live(&mut self, name: &str, devno: Devno, table: &[TableLine]) {
        let through = table
            .first()
            .and_then(|l| match l.target {
                Target::Linear { dev, offset } if l.start.is_zero() && offset.is_zero() => {
                    self.state.filesystem(dev).cloned()
                }
                _ => None,
            })
            .filter(|f| f.size.is_some_and(|s| s <= table_length(table).bytes()));
        // members held by a dm device are not probed for filesystems
        let members: Vec<Devno> = table.iter().flat_map(|l| l.members()).collect();
        self.state
            .filesystems
            .retain(|f| !members.contains(&f.device) && f.device != devno);
        self.state.partition_tables.retain(|t| t.disk != devno);
        let key = self.identity(table);
        if let Some(fs) = key
            .as_ref()
            .and_then(|k| self.dm_content.get(k).cloned())
            .or(through)
        {
            self.state.filesystems.push(Filesystem {
                device: devno,
                ..fs
            });
        }
        if let Some(t) = key.as_ref().and_then(|k| self.dm_gpt.get(k).cloned()) {
            self.state
                .partition_tables
                .push(PartitionTable { disk: devno, ..t });
        }
        let dax = self.table_dax(table);
        let limit = self.kernel_max_sectors_kb(table);
        if let Some(b) = self
            .state
            .block_devices
            .iter_mut()
            .find(|b| b.devno == devno)
        {
            b.size = table_length(table);
            b.dax = dax;
            b.max_sectors_kb = Some(limit);
        }
        if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == name) {
            d.table = DmTable::new(table.to_vec());
            d.suspended = false;
        }
    }

    /// The largest I/O (KiB) the kernel gives a dm device when `table` goes live: 6.1
    /// stacks its members' limits (the smallest of theirs: pmem's 1280, seen); from
    /// 6.11 (6.12 seen: 4096 on two 2 MiB stripes) a device with no limit of the user's
    /// gets its optimal I/O size, else its minimum, where above the default cap.
    fn kernel_max_sectors_kb(&self, table: &[TableLine]) -> u32 {
        if self.kernel_at_least(6, 11) {
            let h = self.table_io_hints(table, 0);
            let kb = |b: u64| u32::try_from(b / 1024).unwrap_or(MAX_HW_SECTORS_KB);
            let cap = u64::from(DEF_MAX_SECTORS_KB) * 1024;
            return if h.opt > cap {
                kb(h.opt)
            } else if h.min > cap {
                kb(h.min)
            } else {
                DEF_MAX_SECTORS_KB
            }
            .min(MAX_HW_SECTORS_KB);
        }
        table
            .iter()
            .flat_map(|l| l.members())
            .filter_map(|m| self.state.block(m).and_then(|b| b.max_sectors_kb))
            .min()
            .unwrap_or(MAX_HW_SECTORS_KB)
    }

    /// Whether the machine's kernel (`platform.kernel`) is at least `major.minor`
    /// (unknown: no).
    fn kernel_at_least(&self, major: u32, minor: u32) -> bool {
        let Some(k) = self.state.kernel() else {
            return false;
        };
        let mut parts = k.split(|c: char| !c.is_ascii_digit());
        let n = |p: Option<&str>| p.and_then(|x| x.parse::<u32>().ok());
        match (n(parts.next()), n(parts.next())) {
            (Some(a), Some(b)) => (a, b) >= (major, minor),
            _ => false,
        }
    }

    /// What the op asks after the table is live: read `queue/max_sectors_kb` and, when
    /// below `want`, write `want` (within `max_hw_sectors_kb`) to it.
    fn raise_max_sectors(&mut self, devno: Devno, want: Option<u32>) -> Result<(), SystemError> {
        let Some(want) = want.filter(|w| *w != 0) else {
            return Ok(());
        };
        let now = self
            .state
            .block(devno)
            .and_then(|b| b.max_sectors_kb)
            .unwrap_or(0);
        if now >= want {
            return Ok(());
        }
        self.write_sysfs(
            &format!("/sys/dev/block/{devno}/queue/max_sectors_kb"),
            &want.min(MAX_HW_SECTORS_KB).to_string(),
        )
    }

    /// A write to a sysfs attribute the fake models: a block queue's `max_sectors_kb`
    /// (the kernel refuses a value above `max_hw_sectors_kb` or below one page).
    pub fn write_sysfs(&mut self, path: &str, value: &str) -> Result<(), SystemError> {
        let what = format!("write {path}");
        let devno = path
            .strip_prefix("/sys/dev/block/")
            .and_then(|r| r.strip_suffix("/queue/max_sectors_kb"))
            .and_then(|d| d.parse::<Devno>().ok())
            .ok_or_else(|| Self::fail(&what, "No such file or directory"))?;
        let kb: u32 = value
            .trim()
            .parse()
            .map_err(|_| Self::fail(&what, "Invalid argument"))?;
        if !(4..=MAX_HW_SECTORS_KB).contains(&kb) {
            return Err(Self::fail(&what, "Invalid argument"));
        }
        let b = self
            .state
            .block_devices
            .iter_mut()
            .find(|b| b.devno == devno)
            .ok_or_else(|| Self::fail(&what, "No such file or directory"))?;
        b.max_sectors_kb = Some(kb);
        Ok(())
    }

    /// Load `table` into `name`, suspend, resume: the device's content stays only when
    /// the new table starts with the old one (a grown device); a device with no live
    /// table before shows what its members hold under the new one. Then the largest I/O
    /// as [`Self::dm_create`] raises it. `killed`: stopped after the suspend, before the
    /// resume (the old table is still live, the device suspended).
    pub(super) fn dm_reload(
        &mut self,
        name: &str,
        table: &[TableLine],
        max_sectors_kb: Option<u32>,
        killed: bool,
    ) -> Result<(), SystemError> {
        self.check_table(table)?;
        let dm = self
            .state
            .dm(name)
            .cloned()
            .ok_or_else(|| Self::fail("DM_TABLE_LOAD", format!("{name}: no such device")))?;
        let old = dm.table.lines().unwrap_or_default().to_vec();
        let kname = format!("dm-{}", dm.devno.minor);
        if self.state.block(dm.devno).is_none() {
            // as the kernel does: a dm device gets its disk with its first table
            let disk = self.dm_disk(name, dm.devno, table);
            self.state.block_devices.push(disk);
        }
        if killed {
            if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == name) {
                d.suspended = true;
            }
            return Ok(());
        }
        self.set_holders(&kname, &old, table);
        if old.is_empty() {
            // nothing was live: no content of its own, only what the members hold
            self.state.filesystems.retain(|f| f.device != dm.devno);
            self.go_live(name, dm.devno, table);
        } else {
            let grow = old.len() <= table.len() && table[..old.len()] == old[..];
            if !grow {
                self.wipe(dm.devno);
            }
            let dax = self.table_dax(table);
            let limit = self.kernel_max_sectors_kb(table);
            if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == name) {
                d.table = DmTable::new(table.to_vec());
                d.suspended = false;
            }
            if let Some(b) = self
                .state
                .block_devices
                .iter_mut()
                .find(|b| b.devno == dm.devno)
            {
                b.size = table_length(table);
                // the new table's queue limits replace the old ones
                b.max_sectors_kb = Some(limit);
                b.dax = dax;
            }
        }
        self.raise_max_sectors(dm.devno, max_sectors_kb)
    }

    /// DM_DEV_REMOVE (refused while the device is in use or open): the device and its
    /// disk are gone; its content stays on its members (see [`Self::put_away`]).
    pub(super) fn dm_remove(&mut self, name: &str) -> Result<(), SystemError> {
        let dm = self
            .state
            .dm(name)
            .cloned()
            .ok_or_else(|| Self::fail("DM_DEV_REMOVE", format!("{name}: no such device")))?;
        if let Some(bd) = self.state.block(dm.devno).cloned() {
            if let Some(why) = self.busy(&bd).or_else(|| self.open_on(bd.devno)) {
                return Err(Self::fail(
                    "DM_DEV_REMOVE",
                    format!("{name}: device or resource busy ({why})"),
                ));
            }
        }
        let old = dm.table.lines().unwrap_or_default().to_vec();
        self.set_holders(&format!("dm-{}", dm.devno.minor), &old, &[]);
        self.put_away(&dm);
        self.read_errors.remove(&dm.devno);
        self.state.block_devices.retain(|b| b.devno != dm.devno);
        self.state.dm_devices.retain(|d| d.name != *name);
        Ok(())
    }

    /// A dm device going away (removed, or at a reboot): the filesystem it showed stays
    /// on its members, kept under its table in member identity (it shows again when the
    /// same table is loaded), and, when its sector 0 is sector 0 of its first member,
    /// seen there (a probe of the member finds the superblock). Nothing of it stays under
    /// its device number, which a new device may get.
    pub(super) fn put_away(&mut self, dm: &DmDevice) {
        let lines = dm.table.lines().unwrap_or_default().to_vec();
        let key = self.identity(&lines);
        if let (Some(key), Some(t)) = (key.clone(), self.state.gpt(dm.devno).cloned()) {
            self.dm_gpt.insert(key, t);
        }
        if let (Some(key), Some(fs)) = (key, self.state.filesystem(dm.devno).cloned()) {
            let first = lines.first().and_then(|l| match &l.target {
                Target::Linear { dev, offset } if l.start.is_zero() && offset.is_zero() => {
                    Some(*dev)
                }
                Target::Striped { stripes, .. } if l.start.is_zero() => stripes
                    .first()
                    .filter(|(_, o)| o.is_zero())
                    .map(|(d, _)| *d),
                _ => None,
            });
            if let Some(first) = first {
                self.state.filesystems.push(Filesystem {
                    device: first,
                    ..fs.clone()
                });
            }
            self.dm_content.insert(key, fs);
        }
        self.state.filesystems.retain(|f| f.device != dm.devno);
        self.state.partition_tables.retain(|t| t.disk != dm.devno);
    }

    /// A table with members named by their namespace device, or a dm member by its
    /// own table so named in brackets (stable across reboots); none with a member that
    /// is neither, or an empty table.
    pub(super) fn identity(&self, lines: &[TableLine]) -> Option<String> {
        self.identity_at(lines, 0)
    }

    fn identity_at(&self, lines: &[TableLine], depth: u8) -> Option<String> {
        if lines.is_empty() || depth > 16 {
            return None;
        }
        let mut key = table_text(lines).join("|");
        for l in lines {
            for m in l.members() {
                let name = match self.state.dm_by_devno(m) {
                    Some(dm) => {
                        format!("[{}]", self.identity_at(dm.table.lines().ok()?, depth + 1)?)
                    }
                    None => {
                        let bd = self.state.block(m)?;
                        self.state.namespace_of_block(&bd.name)?.dev.clone()
                    }
                };
                key = key.replace(&m.to_string(), &name);
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
pub(super) fn member_sector(table: &[TableLine], s: u64) -> Option<(Devno, u64)> {
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
