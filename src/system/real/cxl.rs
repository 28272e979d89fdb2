//! CXL from sysfs (`/sys/bus/cxl/devices`), as [`crate::actual::Cxl`] models it. Read
//! by hand: no crate reads the CXL bus (ndctl's `libcxl` is C, and `cxl list` would
//! start a process at every probe). A device whose attributes cannot be read is listed
//! with what could be, never an error: CXL devices the stack does not use are none of
//! its business.
//!
//! - `memN`: `serial` (hex), `pmem/size`, `ram/size` (hex), the PCI device it is under
//!   (its sysfs path's parent).
//! - A root decoder is a `decoderN.M` whose `devtype` is `cxl_decoder_root`: `start`,
//!   `size` (hex), `interleave_ways`, `interleave_granularity`, `cap_pmem`, `cap_ram`,
//!   `locked`.
//! - `regionN` (a child of its root decoder): `uuid`, `mode`, `size`, `resource` (hex),
//!   `interleave_ways`, `interleave_granularity`, `commit`, `target0..` (the endpoint
//!   decoders by position; 6.1 has no `mode`: a pmem region is one with a `uuid`); an
//!   endpoint decoder's memory device is its endpoint's `uport`; the NVDIMM region a
//!   committed pmem region shows as is the one that starts where it does.

use crate::actual::cxl::{Cxl, CxlRegion, Memdev, RegionMember, RootDecoder};
use crate::units::Bytes;
use std::path::Path;

use super::sysfs::{self, number, Dir};

/// `cxl create-region`'s output, when it made a region: it prints the region as JSON. It
/// exits 0 also when it made none (seen with v76: "create_region: region1: failed to set
/// target0 to mem0 ... cmd_create_region: created 0 regions", status 0), which is a
/// failure here, with its words.
pub fn made_a_region(
    argv: &[String],
    out: crate::system::Output,
) -> Result<crate::system::Output, crate::system::SystemError> {
    let made = serde_json::from_str::<serde_json::Value>(out.stdout.trim())
        .ok()
        .is_some_and(|v| v.get("region").is_some());
    if made {
        return Ok(out);
    }
    Err(crate::system::SystemError::Command {
        argv: argv.to_vec(),
        rc: Some(0),
        stdout: out.stdout,
        stderr: format!("{} (it made no region)", out.stderr.trim()),
    })
}

/// The last component of a path, as a string.
fn last(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The CXL devices under `sys` (`/sys`); empty when there is no CXL bus.
pub fn probe(sys: &Path) -> Cxl {
    let bus = sys.join("bus/cxl/devices");
    let Ok(mut names) = sysfs::list(&bus) else {
        return Cxl::default();
    };
    names.sort_by_key(|n| natural(n));
    let mut cxl = Cxl::default();
    for name in &names {
        let Some(dir) = Dir::open(&bus.join(name)) else {
            continue;
        };
        if name.starts_with("mem") && dir.has("serial") {
            cxl.memdevs.push(memdev(name, &dir));
        } else if name.starts_with("decoder")
            && dir.attr("devtype").as_deref() == Some("cxl_decoder_root")
        {
            cxl.root_decoders.push(root_decoder(name, &dir));
        }
    }
    for name in &names {
        if !name.starts_with("region") {
            continue;
        }
        if let Some(dir) = Dir::open(&bus.join(name)) {
            if dir.attr("devtype").as_deref() == Some("cxl_region") {
                cxl.regions.push(region(name, &dir, &bus, &cxl));
            }
        }
    }
    // the NVDIMM regions are read only when a region can show as one
    let shows = |r: &CxlRegion| r.committed && r.mode == "pmem";
    let nd = if cxl.regions.iter().any(shows) {
        nvdimm_regions(sys)
    } else {
        Vec::new()
    };
    for r in &mut cxl.regions {
        if shows(r) {
            r.nvdimm_region = r
                .start
                .and_then(|s| nd.iter().find(|(at, _)| *at == s))
                .map(|(_, n)| n.clone());
        }
    }
    for d in &mut cxl.root_decoders {
        let used: u64 = cxl
            .regions
            .iter()
            .filter(|r| r.root_decoder == d.name)
            .map(|r| r.size.0)
            .sum();
        d.free = Bytes(d.size.0.saturating_sub(used));
    }
    cxl
}

/// `mem10` after `mem9`: the name's text, then its numbers.
fn natural(name: &str) -> (String, Vec<u64>) {
    let text: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
    let nums = name
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (text, nums)
}

fn memdev(name: &str, dir: &Dir) -> Memdev {
    let size = |rel: &str| Bytes(dir.attr(rel).as_deref().and_then(number).unwrap_or(0));
    // /sys/bus/cxl/devices/mem0 -> ../../../devices/pci0000:0c/0000:0c:00.0/0000:0d:00.0/mem0
    let host = std::fs::read_link(dir.path())
        .ok()
        .and_then(|p| p.parent().and_then(last))
        .filter(|h| h.contains(':'));
    Memdev {
        name: name.to_string(),
        serial: dir.attr("serial").as_deref().and_then(number),
        pmem_size: size("pmem/size"),
        ram_size: size("ram/size"),
        host,
    }
}

fn root_decoder(name: &str, dir: &Dir) -> RootDecoder {
    let n = |rel: &str| dir.attr(rel).as_deref().and_then(number).unwrap_or(0);
    let flag = |rel: &str| n(rel) == 1;
    RootDecoder {
        name: name.to_string(),
        start: n("start"),
        size: Bytes(n("size")),
        interleave_ways: u32::try_from(n("interleave_ways")).unwrap_or(0),
        interleave_granularity: u32::try_from(n("interleave_granularity")).unwrap_or(0),
        pmem_capable: flag("cap_pmem"),
        ram_capable: flag("cap_ram"),
        locked: flag("locked"),
        free: Bytes(0),
    }
}

/// Region `name`; `found` holds the memory devices and root decoders read before it.
fn region(name: &str, dir: &Dir, bus: &Path, found: &Cxl) -> CxlRegion {
    let n = |rel: &str| dir.attr(rel).as_deref().and_then(number);
    let ways = u32::try_from(n("interleave_ways").unwrap_or(0)).unwrap_or(0);
    // its root decoder is its parent: .../root0/decoder0.0/region0
    let root_decoder = std::fs::read_link(dir.path())
        .ok()
        .and_then(|p| p.parent().and_then(last))
        .unwrap_or_default();
    let mut locked = found
        .root_decoders
        .iter()
        .any(|d| d.name == root_decoder && d.locked);
    let mut members = Vec::new();
    for position in 0..ways {
        let Some(decoder) = dir
            .attr(&format!("target{position}"))
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        let d = Dir::open(&bus.join(&decoder));
        locked |= d
            .as_ref()
            .and_then(|d| d.attr("locked"))
            .is_some_and(|l| l == "1");
        // the decoder's endpoint (its parent) names its memory device through `uport`
        let memdev = std::fs::read_link(bus.join(&decoder))
            .ok()
            .and_then(|p| p.parent().and_then(last))
            .and_then(|endpoint| std::fs::read_link(bus.join(endpoint).join("uport")).ok())
            .and_then(|u| last(&u));
        let serial = memdev
            .as_deref()
            .and_then(|m| found.memdev(m))
            .and_then(|d| d.serial);
        members.push(RegionMember {
            position,
            decoder,
            memdev,
            serial,
        });
    }
    CxlRegion {
        name: name.to_string(),
        root_decoder,
        uuid: dir
            .attr("uuid")
            .filter(|u| !u.is_empty() && u != "00000000-0000-0000-0000-000000000000"),
        // 6.1 has no `mode`: only a pmem region has a uuid there
        mode: dir
            .attr("mode")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| if dir.has("uuid") { "pmem" } else { "ram" }.to_string()),
        size: Bytes(n("size").unwrap_or(0)),
        start: n("resource").filter(|r| *r != u64::MAX),
        interleave_ways: ways,
        interleave_granularity: u32::try_from(n("interleave_granularity").unwrap_or(0))
            .unwrap_or(0),
        committed: n("commit") == Some(1),
        locked,
        members,
        nvdimm_region: None,
    }
}

/// The NVDIMM regions by where they start: `/sys/bus/nd/devices/regionN/resource`. A
/// committed pmem region shows as the NVDIMM region at its own start (the NVDIMM region
/// sits under the CXL nvdimm bridge's bus, not under the CXL region, in sysfs).
fn nvdimm_regions(sys: &Path) -> Vec<(u64, String)> {
    let nd = sys.join("bus/nd/devices");
    sysfs::list(&nd)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.strip_prefix("region")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        })
        .filter_map(|n| {
            let start = sysfs::read(&nd.join(&n).join("resource"))
                .as_deref()
                .and_then(number)?;
            Some((start, n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cxl-cli v76 exits 0 when it made no region (seen in the VM: a second region behind
    /// a host bridge whose one decoder the first takes): that is a failed step.
    #[test]
    fn a_create_region_that_made_no_region_fails() {
        let argv: Vec<String> = ["cxl", "create-region"].map(String::from).to_vec();
        let out = |stdout: &str, stderr: &str| crate::system::Output {
            argv: None,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let made = out(
            "{\n  \"region\":\"region0\",\n  \"size\":536870912\n}\n",
            "cxl region: cmd_create_region: created 1 region\n",
        );
        assert!(made_a_region(&argv, made).is_ok());
        let none = out(
            "",
            "cxl region: create_region: region1: failed to set target0 to mem0\ncxl region: cmd_create_region: created 0 regions\n",
        );
        let e = made_a_region(&argv, none)
            .expect_err("no region made")
            .to_string();
        assert!(
            e.contains("failed to set target0 to mem0") && e.contains("it made no region"),
            "{e}"
        );
    }

    /// tests/fixtures/sysfs-trees/cxl (6.1, two memory devices, a 2-way pmem region made
    /// in the order serial 0x2, serial 0x1): the probe over the copy reads what it read
    /// over the live tree when it was captured (its `facts.json`).
    #[test]
    fn the_captured_cxl_tree() {
        let t = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sysfs-trees/cxl");
        let cxl = probe(&t.join("sys"));
        let serials: Vec<Option<u64>> = cxl.memdevs.iter().map(|m| m.serial).collect();
        assert_eq!(serials, [Some(1), Some(2)]);
        assert!(cxl.memdevs.iter().all(|m| m.pmem_size == Bytes(512 << 20)));
        let d = &cxl.root_decoders[0];
        assert_eq!(
            (d.name.as_str(), d.size, d.free),
            ("decoder0.0", Bytes(4 << 30), Bytes(3 << 30))
        );
        let r = &cxl.regions[0];
        // 6.1 has no `mode` attribute: a region with a uuid is pmem
        assert_eq!(
            (r.mode.as_str(), r.committed, r.locked),
            ("pmem", true, false)
        );
        let order: Vec<Option<u64>> = r.members.iter().map(|m| m.serial).collect();
        assert_eq!(order, [Some(2), Some(1)]);
        assert_eq!(r.nvdimm_region.as_deref(), Some("region0"));
        let facts = std::fs::read_to_string(t.join("facts.json")).expect("facts.json");
        let facts: serde_json::Value = serde_json::from_str(&facts).expect("json");
        let live: Cxl = serde_json::from_value(facts["ansible_facts"]["pmem_stack"]["cxl"].clone())
            .expect("the live probe's cxl");
        assert_eq!(cxl, live);
    }

    /// No CXL bus: nothing, and no error.
    #[test]
    fn no_cxl_bus() {
        assert!(probe(Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn sysfs_numbers() {
        assert_eq!(number("0x20000000"), Some(1 << 29));
        assert_eq!(number("256\n"), Some(256));
        assert_eq!(number("-1"), None);
        assert!(natural("mem10") > natural("mem9"));
    }
}
