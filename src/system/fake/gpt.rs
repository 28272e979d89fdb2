//! GPT: a new table, entries added and deleted, and the partitions the kernel is told
//! about (none on a dm disk: those are mapped by dm, as kpartx does).

use super::{FakeSystem, PMEM_MAJOR};
use crate::actual::{partition_name, BlockDevice, GptPartition, PartitionOf, PartitionTable};
use crate::system::{DevId, GptEntry, SystemError};
use crate::units::Sectors;

impl FakeSystem {
    /// A new empty GPT (refused while the disk is in use): what was on the disk is gone.
    /// `killed`: stopped half-way, the old content wiped and no complete table written.
    pub(super) fn gpt_create(&mut self, disk: &DevId, killed: bool) -> Result<(), SystemError> {
        let bd = self.device(disk, "write GPT", format!("{} not found", disk.path))?;
        if let Some(why) = self.busy(&bd) {
            return Err(Self::fail("write GPT", why));
        }
        self.wipe(disk.devno);
        if killed {
            return Ok(());
        }
        self.state.partition_tables.push(PartitionTable {
            disk: disk.devno,
            first_usable: Sectors(34),
            last_usable: bd.size.saturating_sub(Sectors(34)),
            partitions: vec![],
        });
        Ok(())
    }

    /// A new entry (refused over a taken number, past the end, or over another entry),
    /// and unless `dm_disk` its partition block device (`BLKPG`; not when `killed`
    /// after the entry was written).
    pub(super) fn gpt_add(
        &mut self,
        disk: &DevId,
        entry: &GptEntry,
        dm_disk: bool,
        killed: bool,
    ) -> Result<(), SystemError> {
        let GptEntry {
            name, start, size, ..
        } = entry;
        let number = entry.number;
        let bd = self.device(disk, "add partition", "no disk")?;
        let t = self
            .state
            .partition_tables
            .iter_mut()
            .find(|t| t.disk == disk.devno)
            .ok_or_else(|| Self::fail("add partition", "no GPT"))?;
        // as the real side: an identical entry already there is not written again
        // (the kernel is still told)
        let there = t
            .partitions
            .iter()
            .any(|p| p.number == number && p.name == *name && p.start == *start && p.size == *size);
        if there {
            t.partitions.retain(|p| p.number != number);
        }
        if t.partitions.iter().any(|p| p.number == number)
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
            number,
            name: name.clone(),
            start: *start,
            size: *size,
            type_guid: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()), // Linux filesystem data
            uuid: Some(uuid.clone()),
        });
        if !dm_disk && !killed {
            let pname = partition_name(&bd.name, number);
            if self.state.block_named(&pname).is_some() {
                return Err(Self::fail(
                    "BLKPG_ADD_PARTITION",
                    format!("{pname}: Device or resource busy"),
                ));
            }
            let devno = self.next_devno(PMEM_MAJOR);
            self.state.block_devices.push(BlockDevice {
                name: pname.clone(),
                devno,
                path: format!("/dev/{pname}"),
                aliases: vec![format!("/dev/disk/by-partuuid/{uuid}")],
                size: *size,
                dax: bd.dax && start.is_multiple_of(Sectors(8)) && size.is_multiple_of(Sectors(8)),
                holders: vec![],
                partition: Some(PartitionOf {
                    disk: bd.name.clone(),
                    number,
                    start: *start,
                }),
                max_sectors_kb: bd.max_sectors_kb,
            });
        }
        Ok(())
    }

    /// Entry `number` deleted (refused while its partition is in use).
    pub(super) fn gpt_delete(
        &mut self,
        disk: &DevId,
        number: u32,
        dm_disk: bool,
    ) -> Result<(), SystemError> {
        let bd = self.device(disk, "delete partition", "no disk")?;
        if !dm_disk {
            let part = self
                .state
                .partitions_of(&bd.name)
                .find(|p| p.partition.as_ref().is_some_and(|x| x.number == number))
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
            t.partitions.retain(|p| p.number != number);
        }
        Ok(())
    }
}
