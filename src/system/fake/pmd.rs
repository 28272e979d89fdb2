//! The PMD fault check, answered by the fake's own model of the kernel's 2 MiB DAX
//! fault (`dax_iomap_pmd_fault`), not by the module's audit: a file of 16 MiB is
//! fallocated where the filesystem's allocator puts it, and each 2 MiB of it maps a PMD
//! only when `dax_direct_access` through every layer under the filesystem returns the
//! whole 2 MiB and its physical address is 2 MiB aligned. The rules, from the kernel:
//! - no attempt at all (no events): no `pse` (no transparent huge pages), a page size
//!   other than 4 KiB, a file without DAX (mounted without `dax=always`, a kernel that
//!   gives files no DAX) or a block size other than the page size;
//! - allocation: xfs aligns a data extent of at least a stripe unit on the stripe unit
//!   (`sb_unit`; the width with `swalloc`); ext4's mballoc aligns on its stripe
//!   (`stripe=` mount option, else `s_raid_stripe_width`, else `s_raid_stride`, at most
//!   a block group) when the request is a whole number of stripes; otherwise both give
//!   the first free block, which the model puts one block past 2 MiB;
//! - a partition adds its start;
//! - dm (`dm_dax_direct_access`): the 2 MiB must not cross a target's end; dm-linear
//!   maps it to member + offset; dm-stripe gives at most what is left of the chunk and
//!   at most `queue/max_sectors_kb` of the dm device (`max_io_len`), then maps it to
//!   its stripe's member and offset;
//! - pmem: the 2 MiB lies within the data area; an fsdax info block's `align` is the
//!   largest page it maps (2 MiB or more for a PMD); the physical address is the
//!   namespace's start, its data offset (what the info block and page map take before
//!   the data), and the sector: it must be 2 MiB aligned.

use super::dm::member_sector;
use super::FakeSystem;
use crate::actual::dm::Target;
use crate::actual::{Devno, Filesystem, Mount, Namespace};
use crate::args::{DaxMode, NamespaceMode};
use crate::system::{PmdFaults, SystemError};

/// One PMD, bytes.
const PMD_BYTES: u64 = 2 << 20;
/// One PMD, sectors.
const PMD_SECTORS: u64 = PMD_BYTES / 512;
/// What the check faults in.
const CHECK_BYTES: u64 = 16 << 20;
/// The first free byte of a new filesystem in this model: one block past 2 MiB.
const FIRST_FREE: u64 = PMD_BYTES + 4096;

impl FakeSystem {
    /// Fault in a 16 MiB file on `mount_point` and count its PMD faults by result.
    pub(super) fn pmd_faults(&self, mount_point: &str) -> Result<PmdFaults, SystemError> {
        let m = self
            .state
            .mount_at(mount_point)
            .ok_or_else(|| Self::fail("pmd check", format!("{mount_point}: not mounted")))?;
        let none = PmdFaults {
            nopage: 0,
            fallback: 0,
            other: 0,
            bytes: CHECK_BYTES,
        };
        let platform = self
            .state
            .platform
            .as_ref()
            .is_none_or(|p| p.pse && p.page_size.0 == 4096);
        let fs = self.state.filesystem(m.devno);
        let file_dax = m.dax == Some(DaxMode::Always) && !self.files_without_dax;
        let Some(fs) = fs.filter(|f| f.block_size.is_some_and(|b| b.0 == 4096)) else {
            return Ok(none);
        };
        if !platform || !file_dax {
            return Ok(none);
        }
        let align = allocation_alignment(fs, m);
        let start = FIRST_FREE.div_ceil(align) * align;
        let mut out = none;
        for k in 0..CHECK_BYTES / PMD_BYTES {
            let at = start + k * PMD_BYTES;
            if at.is_multiple_of(512) && self.direct_access_pmd(m.devno, at / 512, 0) {
                out.nopage += 1;
            } else {
                out.fallback += 1;
            }
        }
        Ok(out)
    }

    /// Whether 2 MiB of device `devno` from `sector` map as one PMD.
    fn direct_access_pmd(&self, devno: Devno, sector: u64, depth: u8) -> bool {
        let Some(bd) = self.state.block(devno) else {
            return false;
        };
        if depth > 16 || sector.saturating_add(PMD_SECTORS) > bd.size.0 {
            return false;
        }
        if let Some(p) = &bd.partition {
            return self.state.block_named(&p.disk).is_some_and(|d| {
                self.direct_access_pmd(d.devno, p.start.0.saturating_add(sector), depth + 1)
            });
        }
        if let Some(dm) = self.state.dm_by_devno(devno) {
            let Ok(table) = dm.table.lines() else {
                return false;
            };
            let Some(l) = table
                .iter()
                .find(|l| l.start.0 <= sector && sector - l.start.0 < l.length.0)
            else {
                return false;
            };
            let rel = sector - l.start.0;
            if rel + PMD_SECTORS > l.length.0 {
                return false;
            }
            if let Target::Striped { chunk, .. } = &l.target {
                let left = chunk
                    .0
                    .saturating_sub(rel.checked_rem(chunk.0).unwrap_or(0));
                let max_sectors = bd
                    .max_sectors_kb
                    .map_or(u64::MAX, |kb| u64::from(kb).saturating_mul(2));
                if left.min(max_sectors) < PMD_SECTORS {
                    return false;
                }
            }
            if matches!(l.target, Target::Other { .. }) {
                return false;
            }
            return member_sector(table, sector)
                .is_some_and(|(d, s)| self.direct_access_pmd(d, s, depth + 1));
        }
        let Some(ns) = self.state.namespace_of_block(&bd.name) else {
            return false;
        };
        if ns.mode != NamespaceMode::Fsdax {
            return false;
        }
        if ns.align.is_some_and(|a| a.0 == 0 || a.0 % PMD_BYTES != 0) {
            return false;
        }
        let data_offset = ns.size.0.saturating_sub(bd.size.bytes().0);
        let physical = self
            .namespace_start(ns)
            .saturating_add(data_offset)
            .saturating_add(sector.saturating_mul(512));
        physical % PMD_BYTES == 0
    }

    /// The physical start of a namespace: its `resource`, else its region's start plus
    /// the namespaces of the region before it.
    fn namespace_start(&self, ns: &Namespace) -> u64 {
        if let Some(r) = ns.resource {
            return r;
        }
        let id = |n: &Namespace| {
            n.dev
                .rsplit_once('.')
                .and_then(|(_, y)| y.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let before: u64 = self
            .state
            .namespaces
            .iter()
            .filter(|n| n.region == ns.region && id(n) < id(ns))
            .map(|n| n.size.0)
            .sum();
        self.state
            .region(&ns.region)
            .and_then(|r| r.start)
            .unwrap_or(0)
            .saturating_add(before)
    }
}

/// The alignment, in bytes, the filesystem's allocator gives the check's 16 MiB file
/// on the filesystem's device (see the module comment).
fn allocation_alignment(fs: &Filesystem, m: &Mount) -> u64 {
    let block = fs.block_size.map_or(4096, |b| b.0.max(1));
    let unit = u64::from(fs.stripe_unit.unwrap_or(0));
    let width = u64::from(fs.stripe_width.unwrap_or(0));
    let blocks = match fs.fstype.as_str() {
        "xfs" => {
            let a = if m.options.iter().any(|o| o == "swalloc") && width > 0 {
                width
            } else {
                unit
            };
            // aligned only for an allocation of at least that much
            if a.saturating_mul(block) <= CHECK_BYTES {
                a
            } else {
                0
            }
        }
        "ext4" => {
            let per_group = 8 * block;
            let mount_stripe = m.options.iter().find_map(|o| {
                o.strip_prefix("stripe=")
                    .and_then(|v| v.parse::<u64>().ok())
            });
            let stripe = [mount_stripe.unwrap_or(0), width, unit]
                .into_iter()
                .find(|s| *s != 0 && *s <= per_group)
                .unwrap_or(0);
            let request = CHECK_BYTES / block;
            if stripe > 1 && request.is_multiple_of(stripe) {
                stripe
            } else {
                0
            }
        }
        _ => 0,
    };
    blocks.max(1).saturating_mul(block)
}
