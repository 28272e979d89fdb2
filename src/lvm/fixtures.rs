//! The first bytes of devices as lvm 2.03.16 wrote them (tests/fixtures/lvm/; its README
//! has the commands and what `pvs`/`vgs`/`lvs`/`pvck` reported), for the tests of the
//! reader, the probe and the audit.

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lvm/",
            $name
        ))
        .as_slice()
    };
}

/// The first PV of `vgp` (`pvcreate --dataalignment 2m`: pe_start 2 MiB; 4 MiB extents;
/// LVs `lvs`, 2 stripes of 2 MiB, and `lvl`, linear at extent 8).
pub(crate) const VGP_PV0: &[u8] = fixture!("vgp-pv0.bin");
/// The second PV of `vgp`.
pub(crate) const VGP_PV1: &[u8] = fixture!("vgp-pv1.bin");
/// The PV of `vgd`, made with LVM's defaults (pe_start 1 MiB; 4 MiB extents; LV `lvd`,
/// linear, 25 extents).
pub(crate) const VGD_PV0: &[u8] = fixture!("vgd-pv0.bin");
/// A PV whose metadata text wrapped around the end of its area.
pub(crate) const VGW_PV0: &[u8] = fixture!("vgw-pv0.bin");
/// A PV in no VG, its label in sector 3.
pub(crate) const ORPHAN: &[u8] = fixture!("orphan-labelsector3.bin");
