//! Regions and namespaces, read from the libnvdimm sysfs tree (`/sys/bus/nd/devices`).
//!
//! Hand-written rather than through a crate: no maintained Rust crate reads libnvdimm's
//! sysfs (ndctl's libndctl is C, and its JSON output is not meant for parsing: sizes are
//! humanised with `-u`, a single result is printed as an object, and its `uuid` of an
//! fsdax namespace is the pfn info-block uuid, not the label uuid we identify by).
//!
//! What is read, per device (all text attributes, one value per file):
//! - `regionN` (devtype `nd_pmem`): `size`, `available_size`, `align` (hex), `numa_node`,
//!   `mappings` and `mappingK` (`nmemM,offset,length,position`).
//! - `namespaceX.Y` (devtype `nd_namespace_pmem`, or `nd_namespace_io` for label-less
//!   DIMMs): `mode`, `size`, `uuid`, `alt_name`, `resource` (hex, root only), `numa_node`,
//!   `holder`. A namespace of size 0 is the region's seed (a placeholder for the next
//!   namespace), not a namespace.
//! - The holder (`pfnX.Y` for fsdax, `daxX.Y` for devdax, `bttX.Y` for sector): `align`
//!   and `mode` (`pmem` = page map on the device, `ram` = in memory). The block device is
//!   the directory under `<holder or namespace>/block/`; the devdax character device is the
//!   `daxX.Y` child (on the dax bus) of the nd `daxX.Y` device.
//!
//! The helpers at the bottom (`attr`, `parse_u64`, ...) are shared with `block.rs`.

use super::sysfs::{self, Dir};
use crate::actual::{Namespace, Region};
use crate::args::{MapMode, NamespaceMode};
use crate::system::SystemError;
use crate::units::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

/// Regions and namespaces under `sys`/bus/nd/devices. No nd bus (no NVDIMM support or
/// no NVDIMMs) is not an error: both lists are empty.
pub fn probe(sys: &Path) -> Result<(Vec<Region>, Vec<Namespace>), SystemError> {
    let l = list(sys, None)?;
    Ok((l.regions, l.namespaces))
}

/// What the nd listing found, with the DIMMs of each region.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Regions, in the kernel's order (`region2` before `region10`).
    pub regions: Vec<Region>,
    /// Namespaces (not the seeds), in the same order.
    pub namespaces: Vec<Namespace>,
    /// Region name -> the DIMMs (`nmemN`) it maps.
    pub dimms: BTreeMap<String, Vec<String>>,
}

/// The regions a change in `changed` (region names) can have changed: those, and every
/// region sharing a DIMM with one of them (a DIMM's label area holds the labels of
/// all its regions). A region `known` does not map is counted in.
pub fn affected(
    known: &BTreeMap<String, Vec<String>>,
    changed: &BTreeSet<String>,
) -> BTreeSet<String> {
    let dimms: BTreeSet<&String> = changed
        .iter()
        .filter_map(|r| known.get(r))
        .flatten()
        .collect();
    let mut out = changed.clone();
    out.extend(
        known
            .iter()
            .filter(|(_, ds)| ds.iter().any(|d| dimms.contains(d)))
            .map(|(r, _)| r.clone()),
    );
    out
}

/// The listing before a step, and the regions it changed.
#[derive(Debug, Clone, Copy)]
pub struct Again<'a> {
    /// Regions before.
    pub regions: &'a [Region],
    /// Namespaces before.
    pub namespaces: &'a [Namespace],
    /// The DIMMs of each region before.
    pub dimms: &'a BTreeMap<String, Vec<String>>,
    /// Regions to read again (see [`affected`]).
    pub changed: &'a BTreeSet<String>,
}

/// List the nd devices. With `again`, only the regions it names (and their namespaces)
/// are read; the other regions and their namespaces are kept (they cannot have
/// changed: see [`affected`]). A region the listing before did not have is read too.
pub fn list(sys: &Path, again: Option<Again<'_>>) -> Result<Listing, SystemError> {
    let mut out = Listing::default();
    let path = sys.join("bus/nd/devices");
    let mut names = list_dir(&path)?;
    let Some(devices) = Dir::open(&path) else {
        return Ok(out); // no nd bus
    };
    names.sort_by_key(|n| natural_key(n));
    let fresh = |region: &str| {
        again.is_none_or(|g| g.changed.contains(region) || !g.dimms.contains_key(region))
    };
    // a device gone since the directory was listed is not there
    let dir = |name: &str| devices.at(name);
    for name in &names {
        if name.starts_with("region") {
            if fresh(name) {
                let Some(d) = dir(name) else { continue };
                if let Some((r, dimms)) = region(&devices, name, &d)? {
                    out.regions.push(r);
                    out.dimms.insert(name.clone(), dimms);
                }
            } else if let Some(g) = again {
                out.regions
                    .extend(g.regions.iter().find(|r| r.name == *name).cloned());
                out.dimms.extend(
                    g.dimms
                        .get_key_value(name)
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
        } else if name.starts_with("namespace") {
            if region_of(name).is_none_or(|of| fresh(&of)) {
                let Some(d) = dir(name) else { continue };
                out.namespaces.extend(namespace(&devices, name, &d)?);
            } else if let Some(g) = again {
                // a name the last listing did not keep is a seed (size 0), as it was
                out.namespaces
                    .extend(g.namespaces.iter().find(|n| n.dev == *name).cloned());
            }
        }
    }
    Ok(out)
}

/// Whether an NVDIMM bus is registered (`sys`/bus/nd/devices/ndbusN): without one the
/// NVDIMM drivers are not loaded or the machine has no persistent memory.
pub fn has_bus(sys: &Path) -> bool {
    list_dir(&sys.join("bus/nd/devices"))
        .map(|names| names.iter().any(|n| n.starts_with("ndbus")))
        .unwrap_or(false)
}

/// A region and the DIMMs it maps.
fn region(
    devices: &Dir,
    name: &str,
    dir: &Dir,
) -> Result<Option<(Region, Vec<String>)>, SystemError> {
    if devtype(dir).as_deref() != Some("nd_pmem") {
        return Ok(None);
    }
    let size = required_u64(dir, "size")?;
    // Legacy (e820) regions, what the kernel's `memmap=` option makes, have no
    // `available_size` (nothing can be carved from them): none available.
    let available_size = attr_u64(dir, "available_size")?.unwrap_or(0);
    let align = attr_u64(dir, "align")?.map(Bytes);
    let numa_node = attr_parsed::<i32>(dir, "numa_node")?;
    let mappings = match attr_parsed::<u32>(dir, "mappings")? {
        Some(n) => n,
        None => {
            // older kernels without `mappings`: count the mappingK attributes
            let mut n = 0;
            while dir.has(&format!("mapping{n}")) {
                n += 1;
            }
            n
        }
    };
    // Label area: a DIMM's `available_slots` (free label slots) is readable exactly when
    // the nvdimm driver found a label area (config data) on it; DIMMs without one (e.g.
    // NVDIMM-N, or QEMU without `label-size`) get no driver data and the read fails
    // (ENXIO). It is readable on fresh DIMMs whose label area holds no index block yet
    // (those are label-less *in use* but can be labelled in place), which the region's
    // `nstype` (4 = label-less io, 5 = labelled pmem) does not tell apart.
    let mut labels = mappings > 0;
    let mut dimms = Vec::new();
    for k in 0..mappings {
        let file = format!("mapping{k}");
        let Some(text) = attr(dir, &file) else {
            labels = false;
            continue;
        };
        let nmem = text.split(',').next().unwrap_or_default();
        if nmem.is_empty() || nmem.contains('/') {
            return Err(malformed(
                &dir.path().join(&file),
                &text,
                "nmemN,offset,length,position",
            ));
        }
        if devices.attr(&format!("{nmem}/available_slots")).is_none() {
            labels = false;
        }
        dimms.push(nmem.to_string());
    }
    let region = Region {
        name: name.to_string(),
        size: Bytes(size),
        available_size: Bytes(available_size),
        align,
        numa_node,
        interleave_ways: Some(mappings),
        labels,
        start: attr_u64(dir, "resource")?,
    };
    Ok(Some((region, dimms)))
}

fn namespace(devices: &Dir, name: &str, dir: &Dir) -> Result<Option<Namespace>, SystemError> {
    // seeds read as 0; an unreadable size is a namespace going away under us (the size
    // first: a region's seed is then skipped without reading its type)
    let size_text = match attr(dir, "size") {
        None => return Ok(None),
        Some(t) if t == "0" => return Ok(None),
        Some(t) => t,
    };
    if !matches!(
        devtype(dir).as_deref(),
        Some("nd_namespace_pmem" | "nd_namespace_io")
    ) {
        return Ok(None);
    }
    let size = parse_u64(&dir.path().join("size"), &size_text)?;
    if size == 0 {
        return Ok(None);
    }
    let region = region_of(name).ok_or_else(|| SystemError::Probe {
        msg: format!("{}: not a namespaceX.Y device name", dir.path().display()),
    })?;
    let mode_text = attr(dir, "mode").unwrap_or_default();
    let mode = match mode_text.as_str() {
        "memory" => NamespaceMode::Fsdax,
        "dax" => NamespaceMode::Devdax,
        "safe" => NamespaceMode::Sector,
        "raw" => NamespaceMode::Raw,
        _ => {
            return Err(malformed(
                &dir.path().join("mode"),
                &mode_text,
                "memory, dax, safe or raw",
            ))
        }
    };
    let holder = attr(dir, "holder").filter(|h| !h.is_empty() && !h.contains('/'));
    let holder_dir = holder.as_ref().and_then(|h| devices.at(h));
    let (mut align, mut map, mut info_uuid) = (None, None, None);
    if let (Some(_), Some(hd)) = (&holder, &holder_dir) {
        info_uuid = attr(hd, "uuid").filter(|s| !s.is_empty());
    }
    if mode_text == "memory" && holder.is_none() {
        // a label-less range the kernel maps with pages in RAM and no info block (a
        // `memmap=` range): fsdax with its page map in memory, as `ndctl list` shows it
        map = Some(MapMode::Mem);
    }
    if let (Some(h), Some(hd)) = (&holder, &holder_dir) {
        if h.starts_with("pfn") || h.starts_with("dax") {
            align = attr_u64(hd, "align")?.map(Bytes);
            map = match attr(hd, "mode").as_deref() {
                Some("pmem") => Some(MapMode::Dev),
                Some("ram") => Some(MapMode::Mem),
                _ => None,
            };
        }
    }
    let host = holder_dir.as_ref().unwrap_or(dir);
    let blockdev = first_entry(host, "block", |_| true)?;
    let chardev = match (mode, &holder_dir) {
        (NamespaceMode::Devdax, Some(hd)) => {
            first_entry(hd, ".", |n| hd.has(&format!("{n}/dev")))?.filter(|n| n.starts_with("dax"))
        }
        _ => None,
    };
    Ok(Some(Namespace {
        dev: name.to_string(),
        region,
        name: attr(dir, "alt_name").filter(|s| !s.is_empty()),
        mode,
        size: Bytes(size),
        uuid: attr(dir, "uuid").filter(|s| !s.is_empty()),
        align,
        map,
        blockdev,
        chardev,
        resource: attr_u64(dir, "resource")?,
        numa_node: attr_parsed::<i32>(dir, "numa_node")?,
        info_uuid,
        name_recorded: false,
    }))
}

/// Whether `dev` (`namespaceX.Y`) is a label-less namespace that still exists (a
/// destroyed one stays, disabled, spanning its region).
pub fn is_label_less_namespace(sys: &Path, dev: &str) -> bool {
    Dir::open(&sys.join("bus/nd/devices").join(dev)).is_some_and(|dir| {
        devtype(&dir).as_deref() == Some("nd_namespace_io")
            && attr(&dir, "size").is_some_and(|s| s != "0")
    })
}

/// `namespaceX.Y` -> `regionX` (the kernel names namespaces after their region's id).
pub fn region_of(name: &str) -> Option<String> {
    let (x, y) = name.strip_prefix("namespace")?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(x) && digits(y)).then(|| format!("region{x}"))
}

/// The device type: the `devtype` attribute, or `DEVTYPE=` in `uevent`.
fn devtype(dir: &Dir) -> Option<String> {
    attr(dir, "devtype").or_else(|| {
        attr(dir, "uevent")?
            .lines()
            .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
    })
}

/// The first (sorted) entry name of directory `rel` in `dir` for which `keep(name)`
/// holds; `None` when there is none or the directory does not exist.
fn first_entry(
    dir: &Dir,
    rel: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Option<String>, SystemError> {
    let mut names = dir.entries(rel).map_err(|e| SystemError::Probe {
        msg: format!("{}: {e}", dir.path().join(rel).display()),
    })?;
    names.sort_by_key(|n| natural_key(n));
    Ok(names.into_iter().find(|n| keep(n)))
}

/// Entry names of a directory; a missing directory has none.
pub(super) fn list_dir(dir: &Path) -> Result<Vec<String>, SystemError> {
    sysfs::list(dir).map_err(|e| SystemError::Probe {
        msg: format!("{}: {e}", dir.display()),
    })
}

/// Sort key that orders `region2` before `region10` and `namespace0.2` before
/// `namespace0.10`: the name's letters, then each run of digits as a number.
pub(super) fn natural_key(name: &str) -> (String, Vec<u64>) {
    let letters: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
    let numbers = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect();
    (letters, numbers)
}

/// One sysfs attribute, trimmed. `None` when the file is missing or cannot be read:
/// sysfs answers ENXIO or EIO for attributes that have no value in a device's current
/// state (a seed's `resource`, an unbound DIMM's `available_slots`).
pub(super) fn attr(dir: &Dir, name: &str) -> Option<String> {
    dir.attr(name)
}

/// A number attribute (decimal, or hex with `0x` as the kernel prints addresses and
/// alignments); `None` when unreadable, an error naming the file when malformed.
pub(super) fn attr_u64(dir: &Dir, name: &str) -> Result<Option<u64>, SystemError> {
    attr(dir, name)
        .map(|t| parse_u64(&dir.path().join(name), &t))
        .transpose()
}

/// A number attribute that must be there.
pub(super) fn required_u64(dir: &Dir, name: &str) -> Result<u64, SystemError> {
    attr_u64(dir, name)?.ok_or_else(|| SystemError::Probe {
        msg: format!("{}: missing or unreadable", dir.path().join(name).display()),
    })
}

/// A decimal attribute parsed as `T`; `None` when unreadable.
pub(super) fn attr_parsed<T: FromStr>(dir: &Dir, name: &str) -> Result<Option<T>, SystemError> {
    match attr(dir, name) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| malformed(&dir.path().join(name), &t, "a number")),
    }
}

/// Decimal or `0x` hex.
pub(super) fn parse_u64(file: &Path, text: &str) -> Result<u64, SystemError> {
    let r = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    r.map_err(|_| malformed(file, text, "a number"))
}

/// The error for an attribute whose content is not what the kernel writes.
pub(super) fn malformed(file: &Path, text: &str, want: &str) -> SystemError {
    SystemError::Probe {
        msg: format!("{}: {text:?} is not {want}", file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }

    fn ns<'a>(list: &'a [Namespace], dev: &str) -> &'a Namespace {
        list.iter()
            .find(|n| n.dev == dev)
            .expect("namespace in fixture")
    }

    #[test]
    fn vm_fsdax_flat_attributes() {
        let (regions, namespaces) = probe(&fixture("vm/sysfs-fsdax")).expect("probe");
        assert_eq!(regions.len(), 2);
        let r1 = &regions[1];
        assert_eq!(r1.name, "region1");
        assert_eq!(r1.size, Bytes(268_435_456));
        assert_eq!(r1.available_size, Bytes(0));
        assert_eq!(r1.align, Some(Bytes(0x100_0000)));
        assert_eq!(r1.numa_node, Some(0));
        assert_eq!(r1.interleave_ways, Some(1));
        // seeds (namespace0.1, namespace1.1: size 0) are not namespaces
        let devs: Vec<&str> = namespaces.iter().map(|n| n.dev.as_str()).collect();
        assert_eq!(devs, ["namespace0.0", "namespace1.0"]);
        let n = ns(&namespaces, "namespace0.0");
        assert_eq!(n.region, "region0");
        assert_eq!(n.mode, NamespaceMode::Fsdax);
        assert_eq!(n.name.as_deref(), Some("pm0"));
        // the label uuid, not the pfn's 883cfc32-...
        assert_eq!(
            n.uuid.as_deref(),
            Some("6a2044a5-0ba1-49e7-84e8-b8973fa48925")
        );
        assert_eq!(n.size, Bytes(268_435_456));
        assert_eq!(n.resource, Some(0x1_1000_0000));
        assert_eq!(n.numa_node, Some(0));
        assert_eq!(n.align, Some(Bytes(2 * 1024 * 1024)));
        assert_eq!(n.map, Some(MapMode::Dev));
        // this capture copied attributes only (no pfn0.0/block/ directory)
        assert_eq!(n.blockdev, None);
        assert!(!n.is_label_less());
    }

    /// A full copy of sysfs (tests/fixtures/sysfs-trees/capture.sh, "stack" state):
    /// region0 = pm0 fsdax map=mem 512M, pmd devdax 256M, pms sector 128M;
    /// region1 = pm1 fsdax 512M, pm2 fsdax 256M (GPT), pmr raw 128M.
    #[test]
    fn tree_every_mode() {
        let (regions, namespaces) = probe(&fixture("sysfs-trees/stack/sys")).expect("probe");
        assert_eq!(regions.len(), 2);
        for r in &regions {
            assert_eq!(r.size, Bytes(1 << 30));
            assert_eq!(r.available_size, Bytes(128 << 20));
            assert_eq!(r.align, Some(Bytes(16 << 20)));
            assert_eq!(r.interleave_ways, Some(1));
            assert!(r.labels);
        }
        let got: Vec<_> = namespaces
            .iter()
            .map(|n| {
                (
                    n.dev.as_str(),
                    n.name.as_deref().unwrap_or("-"),
                    n.mode,
                    n.size.0 >> 20,
                    n.map,
                    n.blockdev.as_deref().unwrap_or("-"),
                    n.chardev.as_deref().unwrap_or("-"),
                )
            })
            .collect();
        use MapMode::{Dev, Mem};
        use NamespaceMode::*;
        assert_eq!(
            got,
            [
                ("namespace0.0", "pm0", Fsdax, 512, Some(Mem), "pmem0", "-"),
                ("namespace0.1", "pmd", Devdax, 256, Some(Dev), "-", "dax0.1"),
                ("namespace0.2", "pms", Sector, 128, None, "pmem0.2s", "-"),
                ("namespace1.0", "pm1", Fsdax, 512, Some(Dev), "pmem1", "-"),
                ("namespace1.1", "pm2", Fsdax, 256, Some(Dev), "pmem1.1", "-"),
                ("namespace1.2", "pmr", Raw, 128, None, "pmem1.2", "-"),
            ]
        );
        let pm0 = ns(&namespaces, "namespace0.0");
        // label uuid; udev's by-id link and ndctl's "uuid" carry the pfn's 3d0aa4d4-...
        assert_eq!(
            pm0.uuid.as_deref(),
            Some("a070e76a-4dbf-48d4-a8dc-5afeebecbf1a")
        );
        assert_eq!(pm0.align, Some(Bytes(2 << 20)));
        assert_eq!(pm0.resource, Some(0x1_4000_0000));
        assert_eq!(ns(&namespaces, "namespace0.1").align, Some(Bytes(2 << 20)));
        assert_eq!(ns(&namespaces, "namespace0.2").align, None);
    }

    #[test]
    fn tree_fresh_label_areas_without_labels() {
        let (regions, namespaces) = probe(&fixture("sysfs-trees/fresh/sys")).expect("probe");
        // nstype 4 (label-less io namespaces), but the DIMMs have label areas
        assert!(regions.iter().all(|r| r.labels));
        assert_eq!(regions[0].available_size, Bytes(1 << 30));
        let n = ns(&namespaces, "namespace0.0");
        assert_eq!(
            (n.mode, n.blockdev.as_deref()),
            (NamespaceMode::Raw, Some("pmem0"))
        );
        assert!(n.is_label_less());
    }

    #[test]
    fn tree_dimm_without_label_area() {
        let (regions, namespaces) = probe(&fixture("sysfs-trees/nolabel/sys")).expect("probe");
        assert_eq!(regions.len(), 1);
        assert!(!regions[0].labels);
        assert_eq!(namespaces.len(), 1);
        assert!(namespaces[0].is_label_less());
    }

    #[test]
    fn vm_fresh_is_label_less_raw() {
        let (_, namespaces) = probe(&fixture("vm/sysfs-fresh")).expect("probe");
        assert_eq!(namespaces.len(), 2);
        let n = ns(&namespaces, "namespace0.0");
        assert_eq!(n.mode, NamespaceMode::Raw);
        assert_eq!(n.name, None);
        assert_eq!(n.uuid, None);
        assert_eq!((n.align, n.map), (None, None));
        assert!(n.is_label_less());
    }

    #[test]
    fn vm_devdax_attributes() {
        let (_, namespaces) = probe(&fixture("vm/sysfs-devdax")).expect("probe");
        let n = ns(&namespaces, "namespace1.0");
        assert_eq!(n.mode, NamespaceMode::Devdax);
        assert_eq!(n.name.as_deref(), Some("pmd"));
        assert_eq!(n.align, Some(Bytes(2 * 1024 * 1024)));
        assert_eq!(n.map, Some(MapMode::Dev));
    }

    /// After a step, the regions it changed (and their namespaces) are read; the others
    /// are kept as they were: from the "fresh" tree to the "stack" one, with both
    /// regions changed it is the full listing, with one, the other is the old one.
    #[test]
    fn a_listing_after_a_step_reads_the_regions_it_changed() {
        let fresh = list(&fixture("sysfs-trees/fresh/sys"), None).expect("fresh");
        let stack_sys = fixture("sysfs-trees/stack/sys");
        let stack = list(&stack_sys, None).expect("stack");
        let after = |changed: &[&str]| {
            let changed: BTreeSet<String> = changed.iter().map(|r| r.to_string()).collect();
            let again = Again {
                regions: &fresh.regions,
                namespaces: &fresh.namespaces,
                dimms: &fresh.dimms,
                changed: &changed,
            };
            list(&stack_sys, Some(again)).expect("listing")
        };
        assert_eq!(after(&["region0", "region1"]), stack);
        assert_eq!(after(&[]).regions, fresh.regions);
        let one = after(&["region1"]);
        assert_eq!(
            one.regions,
            [fresh.regions[0].clone(), stack.regions[1].clone()]
        );
        let mut want: Vec<Namespace> = fresh
            .namespaces
            .iter()
            .filter(|n| n.region == "region0")
            .cloned()
            .collect();
        want.extend(
            stack
                .namespaces
                .iter()
                .filter(|n| n.region == "region1")
                .cloned(),
        );
        assert_eq!(one.namespaces, want);
        // a region the listing before did not have is read
        let mut known = fresh.dimms.clone();
        known.remove("region0");
        let again = Again {
            regions: &fresh.regions,
            namespaces: &fresh.namespaces,
            dimms: &known,
            changed: &BTreeSet::new(),
        };
        assert_eq!(
            list(&stack_sys, Some(again)).expect("listing").regions[0],
            stack.regions[0]
        );
    }

    #[test]
    fn regions_sharing_a_dimm_change_together() {
        let dimms = |v: &[&str]| v.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        let known = BTreeMap::from([
            ("region0".to_string(), dimms(&["nmem0"])),
            ("region1".to_string(), dimms(&["nmem1"])),
            ("region2".to_string(), dimms(&["nmem0", "nmem2"])),
        ]);
        let set = |v: &[&str]| v.iter().map(|r| r.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            affected(&known, &set(&["region0"])),
            set(&["region0", "region2"])
        );
        assert_eq!(affected(&known, &set(&["region1"])), set(&["region1"]));
        assert_eq!(affected(&known, &set(&["region9"])), set(&["region9"]));
    }

    #[test]
    fn no_nd_bus_is_empty() {
        let (r, n) = probe(&fixture("does-not-exist")).expect("probe");
        assert!(r.is_empty() && n.is_empty());
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(region_of("namespace12.3").as_deref(), Some("region12"));
        assert_eq!(region_of("namespace1"), None);
        assert_eq!(region_of("namespacex.1"), None);
        let mut v = vec!["region10", "region2", "namespace0.10", "namespace0.2"];
        v.sort_by_key(|n| natural_key(n));
        assert_eq!(v, ["namespace0.2", "namespace0.10", "region2", "region10"]);
        let f = Path::new("/sys/x/align");
        assert_eq!(parse_u64(f, "0x1000000").expect("hex"), 16 << 20);
        assert_eq!(parse_u64(f, "4096").expect("dec"), 4096);
        let e = parse_u64(f, "12k").expect_err("malformed");
        assert!(matches!(e, SystemError::Probe { ref msg } if msg.contains("/sys/x/align")));
    }
}
