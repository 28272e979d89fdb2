//! Filesystem geometry, typed: what pmem_stack asks mkfs for ([`FsGeometry`]: block
//! size, stripe unit and width, reflink) and what the made filesystem then records
//! ([`Layout`], the superblock's stripe unit and width in 4 KiB blocks, and reflink).
//!
//! The planner decides the geometry (`plan::filesystem`); the system boundary carries it
//! in `Op::Mkfs` and only `system/real` spells it as mkfs words. The user's
//! `mkfs_options` stay words: an option they give replaces ours (its field is `None`),
//! and [`FsGeometry::layout`] reads those words (typed by [`crate::args::mkfs::read`])
//! the way the superblock ends up.

use crate::args::mkfs::{self, MkfsOpt};
use crate::args::FsType;
use crate::units::{Bytes, HUGE_PAGE, PAGE};
use serde::Serialize;

/// Stripe unit in 4 KiB blocks for 2 MiB: 512.
pub const STRIPE_UNIT_BLOCKS: u32 = (HUGE_PAGE.0 / PAGE.0) as u32;

/// The geometry options pmem_stack passes to mkfs. A `None` is an option it leaves to
/// the user's `mkfs_options`, which give it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fs", rename_all = "snake_case")]
pub enum FsGeometry {
    /// mke2fs.
    Ext4 {
        /// `-b`: the block size.
        block_size: Option<Bytes>,
        /// `-E stride=..,stripe_width=..`.
        stripe: Option<Ext4Stripe>,
    },
    /// mkfs.xfs.
    Xfs {
        /// `-m reflink=`: whether reflink is on.
        reflink: Option<bool>,
        /// `-d su=..,sw=..`.
        stripe: Option<XfsStripe>,
    },
}

/// ext4's RAID hints, in filesystem blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ext4Stripe {
    /// `stride`: blocks per stripe unit.
    pub stride: u32,
    /// `stripe_width`: blocks per full stripe (none over a single device).
    pub stripe_width: Option<u32>,
}

/// xfs's data section alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct XfsStripe {
    /// `su`: the stripe unit.
    pub su: Bytes,
    /// `sw`: stripe units per full stripe.
    pub sw: u32,
}

/// What a made filesystem records: stripe unit and width in 4 KiB blocks (0: none), and
/// whether reflink is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Stripe unit (ext4 stride, xfs sunit), blocks.
    pub stripe_unit: u32,
    /// Stripe width (ext4 stripe_width, xfs swidth), blocks.
    pub stripe_width: u32,
    /// Reflink on.
    pub reflink: bool,
}

impl FsGeometry {
    /// What mkfs makes with this geometry followed by the user's `extra` words: the
    /// stripe unit and width and reflink, ours unless an option among `extra` says
    /// otherwise (the typed words of [`mkfs::read`]: `-E stride=`/`stripe_width=`,
    /// `-d su=`/`sw=` or `sunit=`/`swidth=`, `-m reflink=`; a later one wins).
    pub fn layout(&self, extra: &[String]) -> Layout {
        let mut su = 0;
        let mut sw = 0;
        let mut reflink = true;
        let mut sw_count = 1;
        let mut xfs_su = false;
        let fstype = match *self {
            FsGeometry::Ext4 { stripe, .. } => {
                if let Some(s) = stripe {
                    su = s.stride;
                    sw = s.stripe_width.unwrap_or(0);
                }
                FsType::Ext4
            }
            FsGeometry::Xfs { reflink: r, stripe } => {
                reflink = r.unwrap_or(true);
                if let Some(s) = stripe {
                    xfs_su = true;
                    su = blocks(s.su);
                    sw_count = s.sw;
                }
                FsType::Xfs
            }
        };
        for w in mkfs::read(fstype, extra) {
            match w.opt {
                MkfsOpt::Stride(v) => su = v.unwrap_or(0),
                MkfsOpt::StripeWidth(v) => sw = v.unwrap_or(0),
                MkfsOpt::Su(v) => {
                    xfs_su = true;
                    su = v.map(blocks).unwrap_or(0);
                }
                MkfsOpt::Sw(v) => sw_count = v.unwrap_or(1),
                MkfsOpt::Sunit(v) => su = v.map(sectors_to_blocks).unwrap_or(0),
                MkfsOpt::Swidth(v) => sw = v.map(sectors_to_blocks).unwrap_or(0),
                MkfsOpt::Reflink(Some(r)) => reflink = r,
                _ => {}
            }
        }
        if xfs_su {
            sw = su * sw_count;
        }
        Layout {
            stripe_unit: su,
            stripe_width: sw,
            reflink,
        }
    }
}

/// 4 KiB blocks in `b`.
fn blocks(b: Bytes) -> u32 {
    (b.0 / PAGE.0) as u32
}

/// 4 KiB blocks in `s` 512-byte sectors (mkfs.xfs's `sunit=`/`swidth=` unit).
fn sectors_to_blocks(s: u32) -> u32 {
    blocks(Bytes(u64::from(s) * 512))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_words_override_ours_in_the_layout() {
        let xfs = FsGeometry::Xfs {
            reflink: Some(false),
            stripe: Some(XfsStripe {
                su: HUGE_PAGE,
                sw: 2,
            }),
        };
        assert_eq!(
            xfs.layout(&[]),
            Layout {
                stripe_unit: 512,
                stripe_width: 1024,
                reflink: false
            }
        );
        let user = FsGeometry::Xfs {
            reflink: Some(false),
            stripe: None,
        };
        let words = ["-d".to_string(), "su=1m,sw=4".to_string()];
        assert_eq!(
            user.layout(&words),
            Layout {
                stripe_unit: 256,
                stripe_width: 1024,
                reflink: false
            }
        );
        let ext4 = FsGeometry::Ext4 {
            block_size: Some(PAGE),
            stripe: None,
        };
        let words = ["-E".to_string(), "stride=16,stripe-width=64".to_string()];
        assert_eq!(
            ext4.layout(&words),
            Layout {
                stripe_unit: 16,
                stripe_width: 64,
                reflink: true
            }
        );
    }
}

/// The smallest device mkfs.xfs (xfsprogs 5.19 and later: Debian 12's 6.1) makes a
/// filesystem on: "Filesystem must be larger than 300MB".
pub const XFS_MIN_SIZE: Bytes = Bytes(300 * 1024 * 1024);

/// Why mkfs.xfs cannot make `geometry` on a device of `size`, if it cannot, with what
/// to do instead. mkfs.xfs fails such a device only after printing its whole usage text
/// ("Log size must be at least 64MB"); the planner refuses it first.
///
/// Written from mkfs.xfs's own rules (xfsprogs 6.1, `calc_default_ag_geometry`,
/// `align_ag_geometry`, `calculate_log_size`) because no crate computes XFS geometry,
/// and checked against real mkfs.xfs runs (`mkfs.xfs -N`, unit test below):
/// - a filesystem of 300 MB or more gets an internal log of at least 64 MiB, which must
///   fit in one allocation group;
/// - with a stripe unit (the DAX geometry's `su=2m`) mkfs takes the device for a RAID
///   and, up to 8 GiB, makes 8 allocation groups: each `size / 8` blocks, rounded up to
///   the stripe unit, and one stripe unit less when that is a whole stripe width (so the
///   groups do not all start on one member);
/// - the log starts on a stripe unit boundary after the group's headers, so a group
///   must hold one stripe unit more than the log.
///
/// Only the geometry this module asks for is judged: with `mkfs_options` of their own
/// for the log or the allocation groups (`-l`, `-d agcount=`/`agsize=`) the user's
/// mkfs decides.
pub fn xfs_cannot_fit(size: Bytes, geometry: &FsGeometry, extra: &[String]) -> Option<String> {
    let FsGeometry::Xfs { stripe, .. } = geometry else {
        return None;
    };
    if mkfs::gives(&mkfs::read(FsType::Xfs, extra), |o| o == MkfsOpt::XfsLayout) {
        return None;
    }
    if size < XFS_MIN_SIZE {
        return Some(format!(
            "mkfs.xfs makes no filesystem under 300 MB, and the device has {size}; use ext4 there, or a larger device"
        ));
    }
    let stripe = (*stripe)?;
    const BLOCK: u64 = 4096;
    const LOG_BLOCKS: u64 = (64 << 20) / BLOCK;
    const MULTIDISK_SMALL: u64 = 8 << 30;
    if size.0 > MULTIDISK_SMALL {
        return None;
    }
    let sunit = (stripe.su.0 / BLOCK).max(1);
    let swidth = sunit * u64::from(stripe.sw.max(1));
    let agsize = |size: u64| {
        let ag = ((size / BLOCK) >> 3).div_ceil(sunit) * sunit;
        if swidth != sunit && ag.is_multiple_of(swidth) {
            ag - sunit
        } else {
            ag
        }
    };
    let fits = |size: u64| agsize(size) >= LOG_BLOCKS + sunit;
    if fits(size.0) {
        return None;
    }
    // the smallest size that fits, in MiB (a few hundred steps at most)
    let least = (size.0 >> 20..=MULTIDISK_SMALL >> 20)
        .find(|m| fits(m << 20))
        .unwrap_or(MULTIDISK_SMALL >> 20);
    Some(format!(
        "mkfs.xfs cannot fit its 64 MiB log into an allocation group of this device ({size}): with a {} stripe unit it makes 8 groups of {} MiB. Use a device of at least {least} MiB (larger members), or ext4, which has no such limit",
        stripe.su,
        (agsize(size.0) * BLOCK) >> 20,
    ))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    fn dax(sw: u32) -> FsGeometry {
        FsGeometry::Xfs {
            reflink: Some(false),
            stripe: Some(XfsStripe { su: HUGE_PAGE, sw }),
        }
    }

    /// The first size mkfs.xfs 6.1.0 accepted, found with `mkfs.xfs -N -m reflink=0 -d
    /// su=2m,sw=N` on sparse files in 256 KiB steps: 512 MiB + 256 KiB for sw 1, 2, 4,
    /// 5, 6, 8; 528 MiB + 256 KiB for sw 3. The step below each failed ("Log size must
    /// be at least 64MB").
    #[test]
    fn the_rule_agrees_with_mkfs_xfs() {
        let kib = |k: u64| Bytes(k * 1024);
        for sw in [1, 2, 4, 5, 6, 8] {
            assert!(
                xfs_cannot_fit(kib(524544), &dax(sw), &[]).is_none(),
                "sw={sw}"
            );
            assert!(
                xfs_cannot_fit(kib(524288), &dax(sw), &[]).is_some(),
                "sw={sw}"
            );
        }
        assert!(xfs_cannot_fit(kib(540928), &dax(3), &[]).is_none());
        assert!(xfs_cannot_fit(kib(540672), &dax(3), &[]).is_some());
        assert!(xfs_cannot_fit(kib(524544), &dax(3), &[]).is_some());
        // no stripe unit: only the 300 MB floor (307200 KiB accepted, 307136 not)
        let plain = FsGeometry::Xfs {
            reflink: Some(false),
            stripe: None,
        };
        assert!(xfs_cannot_fit(kib(307200), &plain, &[]).is_none());
        assert!(xfs_cannot_fit(kib(307136), &plain, &[]).is_some());
        // ext4 has no such limit; the user's own log options are theirs
        let ext4 = FsGeometry::Ext4 {
            block_size: Some(PAGE),
            stripe: None,
        };
        assert!(xfs_cannot_fit(kib(1024), &ext4, &[]).is_none());
        assert!(
            xfs_cannot_fit(kib(400 << 10), &dax(2), &["-l".into(), "size=32m".into()]).is_none()
        );
        // the user's log, read as mkfs.xfs's getopt reads it: `-ql` takes the next word;
        // a label `-l` is no log
        let w = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(xfs_cannot_fit(kib(400 << 10), &dax(2), &w(&["-ql", "size=32m"])).is_none());
        assert!(xfs_cannot_fit(kib(400 << 10), &dax(2), &w(&["-dagcount=16"])).is_none());
        assert!(xfs_cannot_fit(kib(400 << 10), &dax(2), &w(&["-L", "-l"])).is_some());
        let why = xfs_cannot_fit(Bytes(500 << 20), &dax(2), &[]).expect("too small");
        assert!(
            why.contains("8 groups of 62 MiB") && why.contains("at least 513 MiB"),
            "{why}"
        );
    }
}
