//! Filesystem geometry, typed: what pmem_stack asks mkfs for ([`FsGeometry`]: block
//! size, stripe unit and width, reflink) and what the made filesystem then records
//! ([`Layout`], the superblock's stripe unit and width in 4 KiB blocks, and reflink).
//!
//! The planner decides the geometry (`plan::filesystem`); the system boundary carries it
//! in `Op::Mkfs` and only `system/real` spells it as mkfs words. The user's
//! `mkfs_options` stay words: an option they give replaces ours (its field is `None`),
//! and [`FsGeometry::layout`] reads those words the way the superblock ends up.

use crate::units::{parse_size, Bytes, HUGE_PAGE, PAGE};
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
    /// otherwise (read as mkfs reads `-E stride=`/`stripe_width=`, `-d su=`/`sw=` and
    /// `-m reflink=0`).
    pub fn layout(&self, extra: &[String]) -> Layout {
        let mut su = 0;
        let mut sw = 0;
        let mut reflink = true;
        let mut sw_count = 1;
        let mut xfs_su = false;
        match *self {
            FsGeometry::Ext4 { stripe, .. } => {
                if let Some(s) = stripe {
                    su = s.stride;
                    sw = s.stripe_width.unwrap_or(0);
                }
            }
            FsGeometry::Xfs { reflink: r, stripe } => {
                reflink = r.unwrap_or(true);
                if let Some(s) = stripe {
                    xfs_su = true;
                    su = blocks(s.su);
                    sw_count = s.sw;
                }
            }
        }
        for w in extra.windows(2) {
            match w[0].as_str() {
                "-E" => {
                    for kv in w[1].split(',') {
                        match kv.split_once('=') {
                            Some(("stride", v)) => su = v.parse().unwrap_or(0),
                            Some(("stripe_width" | "stripe-width", v)) => {
                                sw = v.parse().unwrap_or(0)
                            }
                            _ => {}
                        }
                    }
                }
                "-d" => {
                    for kv in w[1].split(',') {
                        match kv.split_once('=') {
                            Some(("su", v)) => {
                                xfs_su = true;
                                su = parse_size(v).map(blocks).unwrap_or(0);
                            }
                            Some(("sw", v)) => sw_count = v.parse().unwrap_or(1),
                            _ => {}
                        }
                    }
                }
                "-m" if w[1].split(',').any(|kv| kv == "reflink=0") => reflink = false,
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
