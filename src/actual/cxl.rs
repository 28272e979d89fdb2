//! CXL as sysfs shows it (`/sys/bus/cxl/devices`): the memory devices (`memN`, known for
//! good by their serial number: `memN` follows enumeration), the root decoders (the
//! platform's fixed memory windows a region is made in) and the regions, each with its
//! members in interleave order and the NVDIMM region a pmem region shows as (which
//! ndctl, namespaces and everything above use as they use an NVDIMM's).
//!
//! Read by the real probe (`system/real/cxl.rs`); empty where the kernel has no CXL bus.
//! The decoders are reset at every boot, so a region is found only once it has been
//! made again (`cxl create-region`) at that boot.

use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// The CXL devices found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cxl {
    /// Memory devices (`memN`).
    #[serde(default)]
    pub memdevs: Vec<Memdev>,
    /// Root decoders (`decoderN.M` of a root port: the platform's memory windows).
    #[serde(default)]
    pub root_decoders: Vec<RootDecoder>,
    /// Regions (`regionN`).
    #[serde(default)]
    pub regions: Vec<CxlRegion>,
}

impl Cxl {
    /// No CXL device found.
    pub fn is_empty(&self) -> bool {
        self.memdevs.is_empty() && self.root_decoders.is_empty() && self.regions.is_empty()
    }

    /// The memory device named `name` (`mem0`).
    pub fn memdev(&self, name: &str) -> Option<&Memdev> {
        self.memdevs.iter().find(|m| m.name == name)
    }

    /// The memory device whose serial is `serial`.
    pub fn memdev_by_serial(&self, serial: u64) -> Option<&Memdev> {
        self.memdevs.iter().find(|m| m.serial == Some(serial))
    }
}

/// A CXL memory device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memdev {
    /// `memN` (follows enumeration: it can change between boots).
    pub name: String,
    /// Its serial number (stable: what identifies it across boots); `None` when sysfs
    /// gives none.
    #[serde(default)]
    pub serial: Option<u64>,
    /// Persistent capacity.
    #[serde(default)]
    pub pmem_size: Bytes,
    /// Volatile capacity.
    #[serde(default)]
    pub ram_size: Bytes,
    /// The PCI device it is (`0000:0d:00.0`), when known.
    #[serde(default)]
    pub host: Option<String>,
}

/// A root decoder: a window of host physical addresses the platform routes to CXL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootDecoder {
    /// `decoderN.M`.
    pub name: String,
    /// Where the window starts (host physical address).
    pub start: u64,
    /// Its size.
    pub size: Bytes,
    /// Host bridges it interleaves over.
    pub interleave_ways: u32,
    /// Bytes each of them takes in turn.
    pub interleave_granularity: u32,
    /// It can hold persistent-memory regions.
    pub pmem_capable: bool,
    /// It can hold volatile-memory regions.
    pub ram_capable: bool,
    /// Its configuration is locked (set up by firmware).
    pub locked: bool,
    /// What its regions leave of it (its size less theirs).
    pub free: Bytes,
}

/// A CXL region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CxlRegion {
    /// `regionN` (follows creation order: it can change between boots).
    pub name: String,
    /// The root decoder it was made in.
    pub root_decoder: String,
    /// Its uuid (a pmem region's; `None` for a volatile one).
    #[serde(default)]
    pub uuid: Option<String>,
    /// `pmem` or `ram`.
    pub mode: String,
    /// Its size (0 until one is set).
    pub size: Bytes,
    /// Where it starts (host physical address), once it has a size.
    #[serde(default)]
    pub start: Option<u64>,
    /// Memory devices it interleaves over.
    pub interleave_ways: u32,
    /// Bytes each of them takes in turn.
    pub interleave_granularity: u32,
    /// Its decoders are committed: it decodes memory.
    pub committed: bool,
    /// A decoder of it is locked (a region set up by firmware): not ours to change.
    pub locked: bool,
    /// Its members, by position.
    pub members: Vec<RegionMember>,
    /// The NVDIMM region a committed pmem region shows as (`regionN` of ndctl).
    #[serde(default)]
    pub nvdimm_region: Option<String>,
}

/// One member of a CXL region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionMember {
    /// Its position in the interleave (`targetN`).
    pub position: u32,
    /// The endpoint decoder (`decoderN.M` of the memory device's endpoint).
    pub decoder: String,
    /// The memory device (`memN`), when the decoder's endpoint names one.
    #[serde(default)]
    pub memdev: Option<String>,
    /// That memory device's serial.
    #[serde(default)]
    pub serial: Option<u64>,
}
