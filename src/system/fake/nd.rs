//! Namespaces: `ndctl create-namespace` (new or in place), the clearing of a new one's
//! ends, `ndctl destroy-namespace`; with the sizes the kernel leaves a block device after
//! the fsdax/devdax metadata.

use super::{FakeSystem, PMEM_MAJOR, PMEM_MAX_SECTORS_KB};
use crate::actual::{BlockDevice, Filesystem, Namespace};
use crate::args::{MapMode, NamespaceMode};
use crate::system::{DevId, NamespaceConfig, SystemError};
use crate::units::Bytes;

/// The command both a new and a reconfigured namespace are made by (what their failures
/// name).
const CREATE_NAMESPACE: &str = "ndctl create-namespace";

impl FakeSystem {
    /// `ndctl create-namespace -r REGION`: a new namespace in what the region has left.
    pub(super) fn create_namespace(
        &mut self,
        region: &str,
        c: &NamespaceConfig,
        killed: bool,
    ) -> Result<(), SystemError> {
        let r = self
            .state
            .region_mut(region)
            .ok_or_else(|| Self::fail(CREATE_NAMESPACE, format!("{region} not found")))?;
        let s = c.size.unwrap_or(r.available_size);
        if s.is_zero() || s > r.available_size {
            return Err(Self::fail(
                CREATE_NAMESPACE,
                format!("{region}: not enough space"),
            ));
        }
        r.available_size -= s;
        // the region's lowest free namespace id, as the kernel's ida gives it
        let idx = region.trim_start_matches("region");
        let taken: Vec<String> = self
            .state
            .namespaces
            .iter()
            .filter(|n| n.region == *region)
            .map(|n| n.dev.clone())
            .collect();
        let k = (0..)
            .find(|k| !taken.contains(&format!("namespace{idx}.{k}")))
            .unwrap_or(0);
        let dev = format!("namespace{idx}.{k}");
        self.make_namespace(&dev, region, s, None, c, killed);
        Ok(())
    }

    /// `ndctl create-namespace -f -e DEV`: the namespace made again in place (refused
    /// while its block device is in use).
    pub(super) fn reconfigure_namespace(
        &mut self,
        dev: &str,
        c: &NamespaceConfig,
        killed: bool,
    ) -> Result<(), SystemError> {
        let ns = self.idle_namespace(dev, CREATE_NAMESPACE)?;
        let r = self
            .state
            .region_mut(&ns.region)
            .ok_or_else(|| Self::fail(CREATE_NAMESPACE, "no region"))?;
        let new_size = c.size.unwrap_or(ns.size);
        if ns.is_label_less() {
            r.available_size = r.size.saturating_sub(new_size);
        } else if new_size > r.available_size + ns.size {
            return Err(Self::fail(CREATE_NAMESPACE, "not enough space"));
        } else {
            r.available_size = r.available_size + ns.size - new_size;
        }
        self.make_namespace(dev, &ns.region, new_size, ns.blockdev.clone(), c, killed);
        Ok(())
    }

    /// Namespace `dev`, found and not in use (`what` fails otherwise).
    fn idle_namespace(&self, dev: &str, what: &str) -> Result<Namespace, SystemError> {
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
                return Err(Self::fail(what, format!("{dev}: device busy ({why})")));
            }
        }
        if self.dax_is_memory(ns.chardev.as_deref()) {
            return Err(Self::fail(
                what,
                format!("{dev}: device busy (its dax device is system RAM)"),
            ));
        }
        Ok(ns)
    }

    /// Namespace `dev` of `ns_size` made as `c` (over block device `old_blk`, if it had
    /// one): its block device, and as the real system does, the uncleared marker, then
    /// (unless `killed` half-way) the clearing of its ends.
    fn make_namespace(
        &mut self,
        dev: &str,
        region: &str,
        ns_size: Bytes,
        old_blk: Option<String>,
        c: &NamespaceConfig,
        killed: bool,
    ) {
        if let Some(old) = &old_blk {
            if let Some(devno) = self.state.block_named(old).map(|b| b.devno) {
                self.wipe(devno);
            }
            self.state.block_devices.retain(|b| b.name != *old);
        }
        // the disk keeps its name across a reconfiguration (a boot may have renumbered
        // it), with the btt's `s` as the mode has it
        let blockdev = match c.mode {
            NamespaceMode::Devdax => None,
            mode => {
                let base = old_blk
                    .as_deref()
                    .map(|b| b.trim_end_matches('s').to_string())
                    .unwrap_or_else(|| kernel_blockdev(dev, NamespaceMode::Raw));
                Some(if mode == NamespaceMode::Sector {
                    format!("{base}s")
                } else {
                    base
                })
            }
        };
        if let Some(b) = &blockdev {
            let usable = Self::usable(ns_size, c.mode, c.align, c.map);
            self.add_pmem_block(b, usable, c.mode == NamespaceMode::Fsdax);
        }
        let region_name = self
            .state
            .namespaces
            .iter()
            .find(|n| n.dev == dev)
            .map(|n| n.region.clone())
            .unwrap_or_else(|| region.to_string());
        let dax_like = matches!(c.mode, NamespaceMode::Fsdax | NamespaceMode::Devdax);
        // without a label area ndctl writes no label: no name, no label uuid, only the
        // info block (fsdax/devdax/sector) with a uuid of its own
        let labels = self.state.region(&region_name).is_none_or(|r| r.labels);
        let uuid = format!("00000000-0000-4000-8000-{:012x}", self.executed.len() + 1);
        let info_uuid = (c.mode != NamespaceMode::Raw)
            .then(|| format!("00000000-0000-4000-9000-{:012x}", self.executed.len() + 1));
        let ns = Namespace {
            dev: dev.to_string(),
            region: region_name,
            name: labels.then(|| c.name.clone()),
            mode: c.mode,
            size: ns_size,
            uuid: labels.then_some(uuid),
            info_uuid,
            name_recorded: false,
            align: dax_like.then_some(c.align),
            map: dax_like.then_some(c.map),
            chardev: (c.mode == NamespaceMode::Devdax)
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
                name: c.name.clone(),
            });
            if let Some(fs) = &self.left_on_media {
                self.state.filesystems.push(Filesystem {
                    device: devno,
                    ..fs.clone()
                });
            }
            if !killed {
                self.wipe(devno);
                self.state.uncleared.retain(|m| m.name != c.name);
            }
        }
    }

    /// The ends of a new namespace cleared, its marker dropped.
    pub(super) fn clear_namespace(&mut self, name: &str, device: &DevId) {
        self.wipe(device.devno);
        self.state.uncleared.retain(|m| m.name != *name);
    }

    /// `ndctl destroy-namespace -f DEV` (refused while its block device is in use).
    pub(super) fn destroy_namespace(&mut self, dev: &str) -> Result<(), SystemError> {
        let ns = self.idle_namespace(dev, "ndctl destroy-namespace")?;
        if let Some(bd) = ns
            .blockdev
            .as_deref()
            .and_then(|b| self.state.block_named(b))
            .cloned()
        {
            self.wipe(bd.devno);
            self.state.block_devices.retain(|b| b.devno != bd.devno);
        }
        if ns.is_label_less() {
            // a label-less namespace spans its region and stays: its info block zeroed,
            // enabled again (the real system does) as raw, or page-mapped in RAM for a
            // `memmap=` range (a region without mappings)
            let memmap = self
                .state
                .region(&ns.region)
                .is_some_and(|r| r.interleave_ways == Some(0));
            let blk = ns
                .blockdev
                .clone()
                .map(|b| b.trim_end_matches('s').to_string())
                .unwrap_or_else(|| kernel_blockdev(dev, NamespaceMode::Raw));
            self.add_pmem_block(&blk, ns.size, memmap);
            if let Some(n) = self.state.namespaces.iter_mut().find(|n| n.dev == *dev) {
                n.mode = if memmap {
                    NamespaceMode::Fsdax
                } else {
                    NamespaceMode::Raw
                };
                n.map = memmap.then_some(MapMode::Mem);
                n.align = None;
                n.info_uuid = None;
                n.chardev = None;
                n.blockdev = Some(blk);
            }
            return Ok(());
        }
        if let Some(r) = self.state.region_mut(&ns.region) {
            r.available_size += ns.size;
        }
        self.state.namespaces.retain(|n| n.dev != *dev);
        Ok(())
    }

    /// A new pmem block device `name` of `size` (the kernel's queue limits of pmem).
    pub(super) fn add_pmem_block(&mut self, name: &str, size: Bytes, dax: bool) {
        let devno = self.next_devno(PMEM_MAJOR);
        self.state.block_devices.push(BlockDevice {
            name: name.to_string(),
            devno,
            path: format!("/dev/{name}"),
            aliases: vec![],
            size: size.sectors(),
            dax,
            holders: vec![],
            partition: None,
            max_sectors_kb: Some(PMEM_MAX_SECTORS_KB),
        });
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
}

/// The block device the kernel names for namespace `dev` (`namespaceX.Y`, in
/// `nvdimm_namespace_disk_name`): `pmemX` for namespace 0 of region X, `pmemX.Y` for
/// the others, and `s` after it for a sector (btt) namespace.
pub(super) fn kernel_blockdev(dev: &str, mode: NamespaceMode) -> String {
    let id = dev.trim_start_matches("namespace");
    let base = match id.split_once('.') {
        Some((x, "0")) => format!("pmem{x}"),
        Some((x, y)) => format!("pmem{x}.{y}"),
        None => format!("pmem{id}"),
    };
    if mode == NamespaceMode::Sector {
        format!("{base}s")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_devices_are_named_as_the_kernel_names_them() {
        for (dev, mode, disk) in [
            ("namespace0.0", NamespaceMode::Fsdax, "pmem0"),
            ("namespace1.2", NamespaceMode::Raw, "pmem1.2"),
            ("namespace0.2", NamespaceMode::Sector, "pmem0.2s"),
            ("namespace3.0", NamespaceMode::Sector, "pmem3s"),
        ] {
            assert_eq!(kernel_blockdev(dev, mode), disk);
        }
    }
}
