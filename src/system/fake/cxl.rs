//! CXL: memory devices, one root decoder, `cxl create-region` and `destroy-region`, and
//! what the memory devices keep: the namespaces (their labels) and what is on them stay
//! on the media when a region is taken apart or the machine reboots (the decoders are
//! reset), and come back when a region of the same members, order and size is made
//! again; a region of another shape does not show them.

use super::nd::kernel_blockdev;
use super::FakeSystem;
use crate::actual::cxl::{Cxl, CxlRegion, Memdev, RegionMember, RootDecoder};
use crate::actual::{BlockDevice, Filesystem, Namespace, PartitionTable, Region};
use crate::system::SystemError;
use crate::units::Bytes;

/// The decoders' unit: a region takes this per memory device, in whole steps.
const STEP: u64 = 256 << 20;
/// Where the fake root decoder's window starts.
const WINDOW: u64 = 0x1_1000_0000;

/// What a region's memory devices keep while it is not assembled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CxlMedia {
    /// What its NVDIMM region had left.
    pub available: Bytes,
    /// Its namespaces, each with its block device and what was on it.
    pub namespaces: Vec<KeptNamespace>,
}

/// A namespace kept on the media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptNamespace {
    /// The namespace (its `dev`, `region` and block device are given again when it
    /// comes back).
    pub ns: Namespace,
    /// Its block device's size and whether it does DAX.
    pub block: Option<(Bytes, bool)>,
    /// Its filesystem.
    pub fs: Option<Filesystem>,
    /// Its partition table.
    pub gpt: Option<PartitionTable>,
}

/// What the media of a region is known by: its members in order, and its size.
fn media_key(serials: &[Option<u64>], size: Bytes) -> String {
    format!("{serials:?}/{}", size.0)
}

impl FakeSystem {
    /// A machine with `n` CXL memory devices of `size` persistent capacity each (serials
    /// 1..=n) under one 4 GiB pmem-capable root decoder, and no NVDIMM.
    pub fn cxl_memdevs(n: u32, size: Bytes) -> Self {
        let mut s = Self::fresh_dimms(0, size);
        let mut cxl = Cxl::default();
        for i in 0..n {
            cxl.memdevs.push(Memdev {
                name: format!("mem{i}"),
                serial: Some(u64::from(i) + 1),
                pmem_size: size,
                ram_size: Bytes(0),
                host: Some(format!("0000:{:02x}:00.0", 0x0d + i)),
            });
        }
        cxl.root_decoders.push(RootDecoder {
            name: "decoder0.0".into(),
            start: WINDOW,
            size: Bytes(4 << 30),
            interleave_ways: 1,
            interleave_granularity: 256,
            pmem_capable: true,
            ram_capable: true,
            locked: false,
            free: Bytes(4 << 30),
        });
        s.state.cxl = cxl;
        s
    }

    /// `cxl create-region`: a committed region over `memdevs` (by name) in `decoder`,
    /// showing as a new NVDIMM region with what its media keep for that shape. Killed
    /// half-way: the region is there with its size, not committed.
    pub(super) fn cxl_create_region(
        &mut self,
        decoder: &str,
        memdevs: &[String],
        granularity: Option<u32>,
        size: Option<Bytes>,
        killed: bool,
    ) -> Result<(), SystemError> {
        const WHAT: &str = "cxl create-region";
        let cxl = &self.state.cxl;
        let d = cxl
            .root_decoders
            .iter()
            .find(|d| d.name == decoder)
            .cloned()
            .ok_or_else(|| Self::fail(WHAT, format!("{decoder} not found")))?;
        let mut members = Vec::new();
        let mut per_device = u64::MAX;
        for (k, name) in memdevs.iter().enumerate() {
            let m = cxl
                .memdev(name)
                .ok_or_else(|| Self::fail(WHAT, format!("{name} not found")))?;
            if cxl.regions.iter().any(|r| {
                r.members
                    .iter()
                    .any(|x| x.memdev.as_deref() == Some(name.as_str()))
            }) {
                return Err(Self::fail(WHAT, format!("{name}: device busy")));
            }
            per_device = per_device.min(m.pmem_size.0 / STEP * STEP);
            members.push(RegionMember {
                position: k as u32,
                decoder: format!("decoder{}.0", k + 2),
                memdev: Some(name.clone()),
                serial: m.serial,
            });
        }
        let ways = memdevs.len() as u64;
        let size = size.unwrap_or(Bytes(per_device * ways));
        if size.is_zero() || size.0 > per_device * ways || size > d.free {
            return Err(Self::fail(WHAT, format!("no room for {size}")));
        }
        if ways > 1 && granularity.is_some_and(|g| g != d.interleave_granularity) {
            return Err(Self::fail(WHAT, "invalid granularity"));
        }
        let start = d.start + (d.size.0 - d.free.0);
        let taken: Vec<&str> = cxl.regions.iter().map(|r| r.name.as_str()).collect();
        let name = (0..)
            .map(|k| format!("region{k}"))
            .find(|n| !taken.contains(&n.as_str()))
            .unwrap_or_default();
        let mut r = CxlRegion {
            name: name.clone(),
            root_decoder: decoder.to_string(),
            uuid: Some(format!("00000000-0000-4000-8000-{:012x}", start)),
            mode: "pmem".into(),
            size,
            start: Some(start),
            interleave_ways: ways as u32,
            interleave_granularity: granularity.unwrap_or(d.interleave_granularity),
            committed: false,
            locked: false,
            members,
            nvdimm_region: None,
        };
        if let Some(d) = self
            .state
            .cxl
            .root_decoders
            .iter_mut()
            .find(|d| d.name == decoder)
        {
            d.free -= size;
        }
        if killed {
            self.state.cxl.regions.push(r);
            return Ok(());
        }
        r.committed = true;
        r.nvdimm_region = Some(self.nvdimm_region_for(&r));
        self.state.cxl.regions.push(r);
        Ok(())
    }

    /// The NVDIMM region a committed CXL region shows as, with what its media keep.
    fn nvdimm_region_for(&mut self, r: &CxlRegion) -> String {
        let taken: Vec<&str> = self.state.regions.iter().map(|x| x.name.as_str()).collect();
        let name = (0..)
            .map(|k| format!("region{k}"))
            .find(|n| !taken.contains(&n.as_str()))
            .unwrap_or_default();
        let serials: Vec<Option<u64>> = r.members.iter().map(|m| m.serial).collect();
        let media = self
            .cxl_media
            .remove(&media_key(&serials, r.size))
            .unwrap_or(CxlMedia {
                available: r.size,
                namespaces: Vec::new(),
            });
        self.state.regions.push(Region {
            name: name.clone(),
            size: r.size,
            available_size: media.available,
            align: Some(Bytes(16 << 20)),
            numa_node: Some(0),
            interleave_ways: Some(1),
            labels: true,
            start: r.start,
        });
        let idx = name.trim_start_matches("region").to_string();
        for kept in media.namespaces {
            let mut ns = kept.ns;
            let k = ns.dev.rsplit('.').next().unwrap_or("0").to_string();
            ns.dev = format!("namespace{idx}.{k}");
            ns.region = name.clone();
            if let Some((size, dax)) = kept.block {
                let blk = kernel_blockdev(&ns.dev, ns.mode);
                self.add_pmem_block(&blk, size, dax);
                let devno = self.state.block_named(&blk).map(|b| b.devno);
                if let Some(devno) = devno {
                    if let Some(mut fs) = kept.fs {
                        fs.device = devno;
                        self.state.filesystems.push(fs);
                    }
                    if let Some(mut t) = kept.gpt {
                        t.disk = devno;
                        self.state.partition_tables.push(t);
                    }
                }
                ns.blockdev = Some(blk);
            }
            self.state.namespaces.push(ns);
        }
        name
    }

    /// `cxl destroy-region -f`: refused while a namespace on it is in use; what is on
    /// it stays on the media.
    pub(super) fn cxl_destroy_region(&mut self, region: &str) -> Result<(), SystemError> {
        const WHAT: &str = "cxl destroy-region";
        let r = self
            .state
            .cxl
            .regions
            .iter()
            .find(|r| r.name == region)
            .cloned()
            .ok_or_else(|| Self::fail(WHAT, format!("{region} not found")))?;
        if r.locked {
            return Err(Self::fail(
                WHAT,
                format!("{region}: Operation not permitted"),
            ));
        }
        if let Some(nr) = &r.nvdimm_region {
            for n in self.state.namespaces.iter().filter(|n| n.region == *nr) {
                if let Some(bd) = n
                    .blockdev
                    .as_deref()
                    .and_then(|b| self.state.block_named(b))
                {
                    if let Some(why) = self.busy(bd) {
                        return Err(Self::fail(WHAT, format!("{region}: disable failed: {why}")));
                    }
                }
            }
        }
        self.take_apart(&r);
        Ok(())
    }

    /// Decoders reset (a reboot): every region is gone, what was on them kept.
    pub(super) fn cxl_reset(&mut self) {
        for r in self.state.cxl.regions.clone() {
            self.take_apart(&r);
        }
    }

    fn take_apart(&mut self, r: &CxlRegion) {
        if let Some(nr) = &r.nvdimm_region {
            let available = self
                .state
                .region(nr)
                .map(|x| x.available_size)
                .unwrap_or_default();
            let mut media = CxlMedia {
                available,
                namespaces: Vec::new(),
            };
            let on: Vec<Namespace> = self
                .state
                .namespaces
                .iter()
                .filter(|n| n.region == *nr)
                .cloned()
                .collect();
            for ns in on {
                let bd: Option<BlockDevice> = ns
                    .blockdev
                    .as_deref()
                    .and_then(|b| self.state.block_named(b))
                    .cloned();
                let (fs, gpt) = match &bd {
                    Some(b) => (
                        self.state.filesystem(b.devno).cloned(),
                        self.state.gpt(b.devno).cloned(),
                    ),
                    None => (None, None),
                };
                if let Some(b) = &bd {
                    self.state.filesystems.retain(|f| f.device != b.devno);
                    self.state.partition_tables.retain(|t| t.disk != b.devno);
                    self.state.block_devices.retain(|x| x.devno != b.devno);
                }
                let block = bd.map(|b| (b.size.bytes(), b.dax));
                media.namespaces.push(KeptNamespace { ns, block, fs, gpt });
            }
            self.state.namespaces.retain(|n| n.region != *nr);
            self.state.regions.retain(|x| x.name != *nr);
            let serials: Vec<Option<u64>> = r.members.iter().map(|m| m.serial).collect();
            self.cxl_media.insert(media_key(&serials, r.size), media);
        }
        self.state.cxl.regions.retain(|x| x.name != r.name);
        if let Some(d) = self
            .state
            .cxl
            .root_decoders
            .iter_mut()
            .find(|d| d.name == r.root_decoder)
        {
            d.free += r.size;
        }
    }
}
