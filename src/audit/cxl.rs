//! The DAX audit's CXL layer: the CXL region under a namespace on its NVDIMM region.

use super::{layer, LayerAudit};
use crate::actual::cxl::CxlRegion;

/// The CXL region under a namespace whose NVDIMM region it shows as: its interleave
/// (memory devices by serial, in position order) and where it starts. Its interleave
/// granularity (256 B and up) does not decide 2 MiB faults: the region maps one
/// contiguous range of host addresses, and only where that starts does. A start off
/// 2 MiB is named at the namespace (its physical start), not again here.
pub(super) fn region_layer(r: &CxlRegion, depth: usize) -> LayerAudit {
    let serials: Vec<String> = r
        .members
        .iter()
        .map(|m| {
            m.serial
                .map(|s| format!("{s:#x}"))
                .unwrap_or_else(|| m.memdev.clone().unwrap_or_else(|| m.decoder.clone()))
        })
        .collect();
    let start = r
        .start
        .map(|s| format!("{s:#x}"))
        .unwrap_or_else(|| "unknown".into());
    layer(
        depth,
        "cxl_region",
        &r.name,
        format!(
            "CXL {} region {} in {}, {} way(s) x {} B over memory device serial(s) {}, start {start}, {}{}",
            r.mode,
            r.name,
            r.root_decoder,
            r.interleave_ways,
            r.interleave_granularity,
            serials.join(", "),
            if r.committed { "committed" } else { "not committed" },
            if r.locked { ", locked (firmware's)" } else { "" },
        ),
        true,
        None,
    )
}
