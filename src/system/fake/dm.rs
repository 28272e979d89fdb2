//! Device mapper: create, reload (suspend, load, resume) and remove, with holders, DAX
//! and `max_sectors_kb` as the kernel sets them; and where a sector of a dm device or a
//! partition lives on the device under it (the raw data model).

use super::{FakeSystem, DM_MAJOR, PMEM_MAX_SECTORS_KB};
use crate::actual::dm::{striped_chunk_kb, table_length, table_text, DmTable, TableLine};
use crate::actual::{Actual, BlockDevice, Devno, Filesystem};
use crate::system::SystemError;

impl FakeSystem {
    /// DM_DEV_CREATE, DM_TABLE_LOAD, resume: a new device over `table`; a filesystem
    /// its members held under the same table (or a linear one's first member) shows
    /// through it.
    pub(super) fn dm_create(&mut self, name: &str, table: &[TableLine]) -> Result<(), SystemError> {
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
            max_sectors_kb: Some(PMEM_MAX_SECTORS_KB.max(striped_chunk_kb(table))),
        });
        self.state.dm_devices.push(crate::actual::DmDevice {
            name: name.to_string(),
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
        Ok(())
    }

    /// Suspend, DM_TABLE_LOAD, resume: the device's content stays only when the new
    /// table starts with the old one (a grown device).
    pub(super) fn dm_reload(&mut self, name: &str, table: &[TableLine]) -> Result<(), SystemError> {
        self.check_table(table)?;
        let dm = self
            .state
            .dm(name)
            .cloned()
            .ok_or_else(|| Self::fail("DM_TABLE_LOAD", format!("{name}: no such device")))?;
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
        if let Some(d) = self.state.dm_devices.iter_mut().find(|d| d.name == name) {
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
            b.max_sectors_kb = b.max_sectors_kb.map(|k| k.max(striped_chunk_kb(table)));
            b.dax = dax;
        }
        Ok(())
    }

    /// DM_DEV_REMOVE (refused while the device is in use).
    pub(super) fn dm_remove(&mut self, name: &str) -> Result<(), SystemError> {
        let dm = self
            .state
            .dm(name)
            .cloned()
            .ok_or_else(|| Self::fail("DM_DEV_REMOVE", format!("{name}: no such device")))?;
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
        Ok(())
    }

    /// A table with members named by their namespace device (stable across reboots).
    pub(super) fn identity(&self, lines: &[TableLine]) -> Option<String> {
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
