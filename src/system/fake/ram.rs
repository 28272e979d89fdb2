//! PMEM as system RAM: each devdax namespace's dax device, bound to kmem or not, its
//! memory blocks (128 MiB, whole ones inside its range), the kernel's auto-online policy
//! and the policy the module sets aside while daxctl runs; memory in use refuses to go
//! offline (EBUSY), as the kernel does while it holds unmovable pages.

use super::FakeSystem;
use crate::actual::ram::{DaxDevice, DaxMode, Memory, MemoryBlock};
use crate::system::SystemError;
use crate::units::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// The fake's memory block size.
const BLOCK: Bytes = Bytes(128 << 20);
/// What a devdax namespace keeps for its own metadata before its dax range.
const META: u64 = 16 << 20;

/// The fake's memory state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeRam {
    /// Dax devices bound to kmem, with their memory blocks.
    pub kmem: BTreeMap<String, Vec<MemoryBlock>>,
    /// `auto_online_blocks` (empty: `online`, 6.12's default).
    pub policy: String,
    /// What the module set aside (its marker file).
    pub saved: Option<String>,
    /// Dax devices whose memory holds pages that cannot move: offlining fails.
    pub in_use: BTreeSet<String>,
}

impl FakeRam {
    fn policy(&self) -> String {
        if self.policy.is_empty() {
            "online".into()
        } else {
            self.policy.clone()
        }
    }
}

impl FakeSystem {
    /// The memory as the probe shows it, from the namespaces and the kmem bindings.
    pub(super) fn memory_view(&self) -> Memory {
        let dax = self
            .state
            .namespaces
            .iter()
            .filter_map(|n| {
                let name = n.chardev.clone()?;
                let start = n.resource.map(|r| r + META);
                let blocks = self.ram.kmem.get(&name).cloned().unwrap_or_default();
                Some(DaxDevice {
                    mode: if self.ram.kmem.contains_key(&name) {
                        DaxMode::SystemRam
                    } else {
                        DaxMode::Devdax
                    },
                    size: Bytes(n.size.0.saturating_sub(META)),
                    start,
                    target_node: Some(1),
                    blocks,
                    name,
                })
            })
            .collect();
        Memory {
            block_size: BLOCK,
            auto_online_blocks: Some(self.ram.policy()),
            auto_online_saved: self.ram.saved.clone(),
            dax,
        }
    }

    fn dax_device(&self, dev: &str, what: &str) -> Result<DaxDevice, SystemError> {
        self.memory_view()
            .dax
            .into_iter()
            .find(|d| d.name == dev)
            .ok_or_else(|| Self::fail(what, format!("{dev} not found")))
    }

    /// `daxctl reconfigure-device --mode=system-ram`, the policy set aside around it.
    /// Killed half-way: the policy is set aside, daxctl has not run.
    pub(super) fn dax_to_system_ram(
        &mut self,
        dev: &str,
        online: bool,
        movable: bool,
        killed: bool,
    ) -> Result<(), SystemError> {
        const WHAT: &str = "daxctl reconfigure-device";
        let d = self.dax_device(dev, WHAT)?;
        if d.mode == DaxMode::SystemRam {
            return Err(Self::fail(
                WHAT,
                format!("{dev}: already in system-ram mode"),
            ));
        }
        let was = self.ram.policy();
        if was != "offline" {
            self.ram.saved = Some(was.clone());
            self.ram.policy = "offline".into();
        }
        if killed {
            return Ok(());
        }
        // kmem adds the whole blocks inside the range
        let start = d.start.unwrap_or(0);
        let (first, end) = (start.div_ceil(BLOCK.0), (start + d.size.0) / BLOCK.0);
        let blocks = (first..end)
            .map(|index| MemoryBlock {
                index,
                online,
                zone: online.then(|| if movable { "Movable" } else { "Normal" }.to_string()),
                node: d.target_node,
            })
            .collect();
        self.ram.kmem.insert(dev.to_string(), blocks);
        if self.ram.saved.is_some() {
            self.ram.policy = was;
            self.ram.saved = None;
        }
        Ok(())
    }

    /// `daxctl online-memory`: the offline blocks onlined (killed: the first of them).
    pub(super) fn dax_online(
        &mut self,
        dev: &str,
        movable: bool,
        killed: bool,
    ) -> Result<(), SystemError> {
        let blocks = self.ram.kmem.get_mut(dev).ok_or_else(|| {
            Self::fail(
                "daxctl online-memory",
                format!("{dev}: not in system-ram mode"),
            )
        })?;
        for b in blocks.iter_mut().filter(|b| !b.online) {
            b.online = true;
            b.zone = Some(if movable { "Movable" } else { "Normal" }.to_string());
            if killed {
                break;
            }
        }
        Ok(())
    }

    /// `daxctl offline-memory` (with `offline_first`: it fails when nothing is online, and
    /// while the memory is in use), then `reconfigure-device --mode=devdax`. Killed: all
    /// offline, still system-ram.
    pub(super) fn dax_to_devdax(
        &mut self,
        dev: &str,
        offline_first: bool,
        killed: bool,
    ) -> Result<(), SystemError> {
        const OFFLINE: &str = "daxctl offline-memory";
        if offline_first {
            let in_use = self.ram.in_use.contains(dev);
            let blocks = self
                .ram
                .kmem
                .get_mut(dev)
                .ok_or_else(|| Self::fail(OFFLINE, format!("{dev}: not in system-ram mode")))?;
            if blocks.iter().all(|b| !b.online) {
                return Err(Self::fail(
                    OFFLINE,
                    format!("{dev}: all memory sections already offline"),
                ));
            }
            if in_use {
                return Err(Self::fail(
                    OFFLINE,
                    format!("{dev}: offlining memory failed: Device or resource busy (EBUSY)"),
                ));
            }
            for b in blocks.iter_mut() {
                b.online = false;
                b.zone = None;
            }
        }
        if killed {
            return Ok(());
        }
        if self.ram.kmem.remove(dev).is_none() {
            return Err(Self::fail(
                "daxctl reconfigure-device",
                format!("{dev}: already in devdax mode"),
            ));
        }
        Ok(())
    }

    /// The policy put back.
    pub(super) fn restore_auto_online(&mut self, policy: &str) {
        self.ram.policy = policy.to_string();
        self.ram.saved = None;
    }

    /// Whether the namespace's dax device is the kernel's memory (ndctl then fails busy).
    pub(super) fn dax_is_memory(&self, chardev: Option<&str>) -> bool {
        chardev.is_some_and(|c| self.ram.kmem.contains_key(c))
    }
}
