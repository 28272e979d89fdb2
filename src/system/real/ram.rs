//! PMEM as system RAM from sysfs, as [`crate::actual::ram::Memory`] models it, and the
//! daxctl steps with the kernel's auto-online policy around them. Read by hand: no crate
//! reads the dax bus or memory blocks (daxctl's `libdaxctl` is C, and `daxctl list` would
//! start a process at every probe).
//!
//! - `/sys/bus/dax/devices/daxX.Y`: `driver` (a link: `kmem` or `device_dax`), `size`,
//!   `target_node`, `mapping0/start` (its first physical address; `resource` is root-only
//!   and absent on some kernels).
//! - `/sys/devices/system/memory`: `block_size_bytes` (hex), `auto_online_blocks`, and for
//!   a device in system-ram mode the blocks its range covers whole: `memoryN/state`,
//!   `valid_zones` (online: the zone it is in), the `nodeK` link.
//!
//! The policy: hot-added memory is onlined by the kernel itself unless
//! `auto_online_blocks` is `offline` (6.12's default is `online`), and daxctl then refuses
//! ("kernel policy will auto-online memory"). So it is set to `offline` while daxctl runs
//! and put back after; the value set aside is kept in [`SAVED_POLICY`] first, so that a
//! run stopped in between is finished by the next (`restore_auto_online`).

use crate::actual::ram::{DaxDevice, DaxMode, Memory, MemoryBlock};
use crate::system::{argv, Output, SystemError};
use crate::units::Bytes;
use std::path::Path;

use super::exec;
use super::record::Recorder;
use super::sysfs::{self, number, Dir};

/// Where the policy set aside while daxctl runs is kept (on the machine's root).
pub const SAVED_POLICY: &str = "/var/lib/pmem-stack/auto_online_blocks.saved";

/// The dax devices under `sys` and the memory they give; the policy set aside under `root`.
pub fn probe(sys: &Path, root: &Path) -> Memory {
    let mem = sys.join("devices/system/memory");
    let mut m = Memory {
        block_size: Bytes(
            sysfs::read(&mem.join("block_size_bytes"))
                .as_deref()
                .and_then(|s| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
                .unwrap_or(0),
        ),
        auto_online_blocks: sysfs::read(&mem.join("auto_online_blocks"))
            .map(|s| s.trim().to_string()),
        auto_online_saved: sysfs::read(&root.join(SAVED_POLICY.trim_start_matches('/')))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        dax: Vec::new(),
    };
    let bus = sys.join("bus/dax/devices");
    let Ok(mut names) = sysfs::list(&bus) else {
        return m;
    };
    names.sort();
    for name in names {
        let Some(dir) = Dir::open(&bus.join(&name)) else {
            continue;
        };
        let mode = match dir.link("driver").ok().as_deref().and_then(Path::file_name) {
            Some(d) if d == "kmem" => DaxMode::SystemRam,
            Some(d) if d == "device_dax" => DaxMode::Devdax,
            _ => DaxMode::Unbound,
        };
        let size = Bytes(dir.attr("size").as_deref().and_then(number).unwrap_or(0));
        let start = dir.attr("mapping0/start").as_deref().and_then(number);
        let target_node = dir
            .attr("target_node")
            .and_then(|s| s.trim().parse::<i32>().ok());
        let mut d = DaxDevice {
            name,
            mode,
            size,
            start,
            target_node,
            blocks: Vec::new(),
        };
        if let (DaxMode::SystemRam, Some(start)) = (mode, start) {
            for index in DaxDevice::block_range(start, size, m.block_size) {
                if let Some(b) = Dir::open(&mem.join(format!("memory{index}"))) {
                    d.blocks.push(block(index, &b));
                }
            }
        }
        m.dax.push(d);
    }
    m
}

fn block(index: u64, b: &Dir) -> MemoryBlock {
    let online = b.attr("state").as_deref().map(str::trim) == Some("online");
    let node = b.entries(".").ok().and_then(|e| {
        e.iter()
            .find_map(|n| n.strip_prefix("node").and_then(|k| k.parse::<i32>().ok()))
    });
    MemoryBlock {
        index,
        online,
        // an online block's valid_zones is the one zone it is in
        zone: online
            .then(|| b.attr("valid_zones"))
            .flatten()
            .and_then(|z| z.split_whitespace().next().map(str::to_string)),
        node,
    }
}

fn os(what: &str, e: std::io::Error) -> SystemError {
    SystemError::Os {
        what: what.to_string(),
        error: e.to_string(),
    }
}

/// Run `f` with the auto-online policy `offline` (set aside in [`SAVED_POLICY`] first,
/// put back after, whatever `f` did).
fn with_policy_offline(
    sys: &Path,
    root: &Path,
    f: impl FnOnce() -> Result<Output, SystemError>,
) -> Result<Output, SystemError> {
    let policy = sys.join("devices/system/memory/auto_online_blocks");
    let was = sysfs::read(&policy).map(|s| s.trim().to_string());
    let set_aside = was.as_deref().is_some_and(|w| w != "offline");
    if set_aside {
        let saved = root.join(SAVED_POLICY.trim_start_matches('/'));
        if let Some(dir) = saved.parent() {
            std::fs::create_dir_all(dir).map_err(|e| os("creating /var/lib/pmem-stack", e))?;
        }
        let w = was.clone().unwrap_or_default();
        write_synced(&saved, &w).map_err(|e| os(&format!("writing {SAVED_POLICY}"), e))?;
        std::fs::write(&policy, "offline")
            .map_err(|e| os("setting auto_online_blocks to offline", e))?;
    }
    let out = f();
    if set_aside {
        restore_auto_online(sys, root, was.as_deref().unwrap_or("online"))?;
    }
    out
}

fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Put the auto-online policy back to `policy` and drop what was set aside.
pub fn restore_auto_online(sys: &Path, root: &Path, policy: &str) -> Result<Output, SystemError> {
    std::fs::write(sys.join("devices/system/memory/auto_online_blocks"), policy)
        .map_err(|e| os(&format!("setting auto_online_blocks back to {policy}"), e))?;
    match std::fs::remove_file(root.join(SAVED_POLICY.trim_start_matches('/'))) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(os(&format!("removing {SAVED_POLICY}"), e)),
    }
    Ok(Output {
        argv: None,
        stdout: format!("auto_online_blocks: {policy}"),
        stderr: String::new(),
    })
}

/// `daxctl reconfigure-device --mode=system-ram`, with the policy offline around it.
pub fn to_system_ram(
    sys: &Path,
    root: &Path,
    record: &Recorder,
    words: &[String],
) -> Result<Output, SystemError> {
    with_policy_offline(sys, root, || exec::run(record, words))
}

/// `daxctl offline-memory` (when `offline_first`: it exits 1 when every block is offline
/// already, seen on both kernels), then `daxctl reconfigure-device --mode=devdax`. An
/// offline that fails (memory in use: EBUSY) onlines again what it did offline, so that
/// nothing is left half-done, and fails naming the reason.
pub fn to_devdax(
    record: &Recorder,
    dev: &str,
    movable: bool,
    offline_first: bool,
) -> Result<Output, SystemError> {
    let offline = || exec::run(record, &argv::words(&["daxctl", "offline-memory", dev]));
    if let Some(Err(e)) = offline_first.then(offline) {
        let mut again = argv::words(&["daxctl", "online-memory", dev]);
        if !movable {
            again.push("--no-movable".into());
        }
        let _ = exec::run(record, &again);
        return Err(e);
    }
    exec::run(
        record,
        &argv::words(&["daxctl", "reconfigure-device", "--mode=devdax", dev]),
    )
}
