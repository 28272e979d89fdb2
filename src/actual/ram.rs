//! Persistent memory used as system RAM, as sysfs shows it: every dax device
//! (`/sys/bus/dax/devices/daxX.Y`: a devdax namespace's character device) with the driver
//! it is bound to (`device_dax`: a character device; `kmem`: hot-added memory), its
//! range and target NUMA node, and, in system-ram mode, the memory blocks its range
//! covers (`/sys/devices/system/memory/memoryN`: online or not, their zone and node);
//! the memory block size and the kernel's auto-online policy.
//!
//! kmem adds only whole memory blocks inside the device's range: what is left at its
//! ends is lost to the rounding ([`DaxDevice::lost_to_rounding`]).

use crate::units::Bytes;
use serde::{Deserialize, Serialize};

/// The machine's memory as system RAM sees it, for the dax devices.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Memory {
    /// The memory block size (`block_size_bytes`): the unit memory is added and onlined in.
    #[serde(default)]
    pub block_size: Bytes,
    /// `auto_online_blocks`: the kernel's policy for memory added (`offline`, `online`,
    /// `online_movable`, `online_kernel`).
    #[serde(default)]
    pub auto_online_blocks: Option<String>,
    /// The policy this module set aside while daxctl ran, when a run stopped before it
    /// was put back (the module's marker file): the next run puts it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_online_saved: Option<String>,
    /// Every dax device.
    #[serde(default)]
    pub dax: Vec<DaxDevice>,
}

impl Memory {
    /// Nothing found (no dax device).
    pub fn is_empty(&self) -> bool {
        self.dax.is_empty() && self.auto_online_saved.is_none()
    }

    /// The dax device `name` (`dax0.0`).
    pub fn dax(&self, name: &str) -> Option<&DaxDevice> {
        self.dax.iter().find(|d| d.name == name)
    }
}

/// What a dax device is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaxMode {
    /// `device_dax`: a character device applications map.
    Devdax,
    /// `kmem`: its range is the kernel's memory.
    SystemRam,
    /// No driver.
    Unbound,
}

/// A dax device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaxDevice {
    /// `daxX.Y`.
    pub name: String,
    /// Its mode (driver).
    pub mode: DaxMode,
    /// Its size.
    pub size: Bytes,
    /// Its first physical address.
    #[serde(default)]
    pub start: Option<u64>,
    /// The NUMA node its memory becomes (`target_node`).
    #[serde(default)]
    pub target_node: Option<i32>,
    /// In system-ram mode: the memory blocks its range covers, in address order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<MemoryBlock>,
}

/// A memory block (`memoryN`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryBlock {
    /// `N`: its first address over the block size.
    pub index: u64,
    /// Online.
    pub online: bool,
    /// The zone it is online in (`Movable`, `Normal`), when online.
    #[serde(default)]
    pub zone: Option<String>,
    /// Its NUMA node.
    #[serde(default)]
    pub node: Option<i32>,
}

impl DaxDevice {
    /// Bytes online as memory.
    pub fn online_bytes(&self, block_size: Bytes) -> Bytes {
        Bytes(block_size.0 * self.blocks.iter().filter(|b| b.online).count() as u64)
    }

    /// What of its range no memory block covers (system-ram mode).
    pub fn lost_to_rounding(&self, block_size: Bytes) -> Bytes {
        Bytes(
            self.size
                .0
                .saturating_sub(block_size.0 * self.blocks.len() as u64),
        )
    }

    /// Whether every block is online, in ZONE_MOVABLE when `movable` (else not in it).
    pub fn online_as(&self, movable: bool) -> bool {
        !self.blocks.is_empty()
            && self
                .blocks
                .iter()
                .all(|b| b.online && (b.zone.as_deref() == Some("Movable")) == movable)
    }

    /// The memory block indices its range covers whole (what kmem adds).
    pub fn block_range(start: u64, size: Bytes, block_size: Bytes) -> std::ops::Range<u64> {
        if block_size.is_zero() {
            return 0..0;
        }
        let first = start.div_ceil(block_size.0);
        let end = (start + size.0) / block_size.0;
        first..end.max(first)
    }
}
