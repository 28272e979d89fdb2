//! mkfs: refused over an existing signature unless forced, or over a device in use;
//! the filesystem it makes records the geometry the fake's own model of mke2fs and
//! mkfs.xfs gives for the words the op runs (its command line, read here as those tools
//! read their argv, with their defaults where a word is absent), and the label.
//!
//! The model is written from the tools (e2fsprogs 1.47 `misc/mke2fs.c` and Debian's
//! `mke2fs.conf`, xfsprogs 6.1 `mkfs/xfs_mkfs.c`), not from the module's geometry: a
//! wrong word the module passes shows as a wrong superblock.

use super::FakeSystem;
use crate::actual::dm::{TableLine, Target};
use crate::actual::{Devno, Filesystem};
use crate::op::argv::command_line;
use crate::system::{Op, SystemError};
use crate::units::Bytes;

/// What a made filesystem records (`block_size` in bytes, the stripe fields in blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Made {
    /// Block size.
    pub block_size: u64,
    /// ext4 `s_raid_stride`, xfs `sb_unit`, in blocks.
    pub stripe_unit: u32,
    /// ext4 `s_raid_stripe_width`, xfs `sb_width`, in blocks.
    pub stripe_width: u32,
    /// xfs reflink (none for ext4).
    pub reflink: Option<bool>,
}

/// The I/O hints a device's queue shows (`minimum_io_size`, `optimal_io_size`), which
/// both tools read through libblkid's topology when no stripe word is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IoHints {
    /// `queue/minimum_io_size`.
    pub min: u64,
    /// `queue/optimal_io_size` (0: none).
    pub opt: u64,
}

/// A size as mkfs.xfs reads it: a number with an optional `k`/`m`/`g`/`t` (powers of
/// 1024), `s` (512-byte sectors) or `b` (filesystem blocks of `block`).
fn xfs_size(text: &str, block: u64) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        (i, 't' | 'T') => (&t[..i], 1 << 40),
        (i, 's' | 'S') => (&t[..i], 512),
        (i, 'b' | 'B') => (&t[..i], block),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The `key=value` pairs of one option word (`su=2m,sw=2`).
fn pairs(word: &str) -> impl Iterator<Item = (&str, &str)> {
    word.split(',').filter_map(|kv| kv.split_once('='))
}

/// mke2fs (`mkfs.ext4`) on a device of `size` with `hints`: `-b SIZE`, `-E
/// stride=N,stripe_width=N` (also `stripe-width`); a later word overrides an earlier one.
/// Without `-b`, Debian's mke2fs.conf gives a device under 512 MiB (`small`) 1 KiB
/// blocks, else 4 KiB. Without `stride`, a minimum I/O size above the block size gives
/// it (and the optimal I/O size the stripe width).
pub(super) fn mke2fs(args: &[String], size: Bytes, hints: IoHints) -> Result<Made, String> {
    let mut block: Option<u64> = None;
    let mut stride: Option<u32> = None;
    let mut width: Option<u32> = None;
    let mut words = args.iter();
    while let Some(w) = words.next() {
        match w.as_str() {
            "-b" => {
                let v = words.next().ok_or("option requires an argument -- 'b'")?;
                let b: u64 = v.parse().map_err(|_| format!("invalid block size - {v}"))?;
                if !(1024..=65536).contains(&b) || !b.is_power_of_two() {
                    return Err(format!("invalid block size - {v}"));
                }
                block = Some(b);
            }
            "-E" => {
                let v = words.next().ok_or("option requires an argument -- 'E'")?;
                for (k, x) in pairs(v) {
                    let n = || {
                        x.parse::<u32>()
                            .map_err(|_| format!("Invalid {k} parameter: {x}"))
                    };
                    match k {
                        "stride" => stride = Some(n()?),
                        "stripe_width" | "stripe-width" => width = Some(n()?),
                        _ => {}
                    }
                }
            }
            // options that take a value the model does not need
            "-L" | "-m" | "-O" | "-T" | "-t" | "-N" | "-i" | "-I" | "-J" | "-U" | "-G" | "-g"
            | "-C" | "-d" | "-e" | "-M" | "-o" | "-r" | "-z" => {
                words.next();
            }
            _ => {}
        }
    }
    let block = block.unwrap_or(if size.0 < 512 << 20 { 1024 } else { 4096 });
    let from_topology = stride.is_none() && hints.min > block;
    let stride = stride.unwrap_or(if from_topology {
        u32::try_from(hints.min / block).unwrap_or(0)
    } else {
        0
    });
    let width = width.unwrap_or(if from_topology && hints.opt > hints.min {
        u32::try_from(hints.opt / block).unwrap_or(0)
    } else {
        0
    });
    Ok(Made {
        block_size: block,
        stripe_unit: stride,
        stripe_width: width,
        reflink: None,
    })
}

/// mkfs.xfs with `hints`: `-b size=`, `-d su=,sw=` (bytes and units) or `-d sunit=,swidth=`
/// (512-byte sectors), `-m reflink=`; a later word overrides an earlier one. Defaults:
/// 4 KiB blocks, reflink on, the stripe from the device's I/O hints when both are set
/// and above a sector. su and sw go together, and su must be a whole number of blocks.
pub(super) fn mkfs_xfs(args: &[String], hints: IoHints) -> Result<Made, String> {
    let mut block = 4096u64;
    let mut su: Option<String> = None;
    let mut sw: Option<u64> = None;
    let mut sunit: Option<u64> = None;
    let mut swidth: Option<u64> = None;
    let mut reflink = true;
    let mut words = args.iter();
    while let Some(w) = words.next() {
        let mut value = |o: &str| {
            words
                .next()
                .cloned()
                .ok_or(format!("option requires an argument -- '{o}'"))
        };
        match w.as_str() {
            "-b" => {
                for (k, x) in pairs(&value("b")?) {
                    if k == "size" {
                        block = xfs_size(x, 4096)
                            .filter(|b| (512..=65536).contains(b) && b.is_power_of_two())
                            .ok_or(format!("Invalid value {x} for -b size option"))?;
                    }
                }
            }
            "-d" => {
                for (k, x) in pairs(&value("d")?) {
                    let n = || {
                        x.parse::<u64>()
                            .map_err(|_| format!("Invalid value {x} for -d {k} option"))
                    };
                    match k {
                        "su" => su = Some(x.to_string()),
                        "sw" => sw = Some(n()?),
                        "sunit" => sunit = Some(n()?),
                        "swidth" => swidth = Some(n()?),
                        _ => {}
                    }
                }
            }
            "-m" => {
                for (k, x) in pairs(&value("m")?) {
                    if k == "reflink" {
                        reflink = match x {
                            "0" => false,
                            "1" => true,
                            _ => return Err(format!("Invalid value {x} for -m reflink option")),
                        };
                    }
                }
            }
            "-L" | "-l" | "-i" | "-n" | "-r" | "-s" | "-p" => {
                value("x")?;
            }
            _ => {}
        }
    }
    // the stripe in bytes: su/sw, else sunit/swidth, else the device's hints
    let (unit, width) = match (su, sw, sunit, swidth) {
        (Some(su), Some(sw), _, _) => {
            let su = xfs_size(&su, block).ok_or(format!("Invalid value {su} for -d su option"))?;
            (su, su.saturating_mul(sw))
        }
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            return Err("both data su and data sw options must be specified".into())
        }
        (None, None, Some(u), Some(w)) => (u.saturating_mul(512), w.saturating_mul(512)),
        (None, None, Some(_), None) | (None, None, None, Some(_)) => {
            return Err("both data sunit and data swidth options must be specified".into())
        }
        (None, None, None, None) if hints.min > 512 && hints.opt > 512 => (hints.min, hints.opt),
        (None, None, None, None) => (0, 0),
    };
    if unit % block != 0 || width % block != 0 {
        return Err(format!(
            "data stripe unit ({unit}) must be a multiple of the block size ({block})"
        ));
    }
    if unit != 0 && width % unit != 0 {
        return Err(format!(
            "data stripe width ({width}) must be a multiple of the data stripe unit ({unit})"
        ));
    }
    let blocks = |b: u64| u32::try_from(b / block).unwrap_or(u32::MAX);
    Ok(Made {
        block_size: block,
        stripe_unit: blocks(unit),
        stripe_width: blocks(width),
        reflink: Some(reflink),
    })
}

/// Least common multiple (0 when either is 0).
fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == 0 || b == 0 {
        a.max(b)
    } else {
        a / gcd(a, b) * b
    }
}

impl FakeSystem {
    /// The I/O hints of `devno` as the kernel stacks them: a pmem disk has a 4 KiB
    /// minimum and no optimum; dm-stripe sets the chunk and chunk x stripes; a dm device
    /// takes the largest minimum and the least common multiple of the optimums of its
    /// targets and members; a partition those of its disk.
    pub(super) fn io_hints(&self, devno: Devno, depth: u8) -> IoHints {
        let base = IoHints { min: 4096, opt: 0 };
        if depth > 16 {
            return base;
        }
        let Some(bd) = self.state.block(devno) else {
            return base;
        };
        if let Some(p) = &bd.partition {
            return self
                .state
                .block_named(&p.disk)
                .map(|d| self.io_hints(d.devno, depth + 1))
                .unwrap_or(base);
        }
        match self.state.dm_by_devno(devno) {
            Some(dm) => self.table_io_hints(dm.table.lines().unwrap_or_default(), depth),
            None => base,
        }
    }

    /// The I/O hints of a dm device over `table` (see [`Self::io_hints`]).
    pub(super) fn table_io_hints(&self, table: &[TableLine], depth: u8) -> IoHints {
        let mut h = IoHints { min: 512, opt: 0 };
        for l in table {
            if let Target::Striped { chunk, stripes } = &l.target {
                let c = chunk.0.saturating_mul(512);
                h.min = h.min.max(c);
                h.opt = lcm(h.opt, c.saturating_mul(stripes.len() as u64));
            }
            for m in l.members() {
                let mh = self.io_hints(m, depth + 1);
                h.min = h.min.max(mh.min);
                h.opt = lcm(h.opt, mh.opt);
            }
        }
        h
    }

    /// The mkfs `op` (an [`Op::Mkfs`]), making the filesystem its words describe; a
    /// failure reports its command line. `killed`: stopped half-way, after the old
    /// signatures were wiped and before the superblock was complete (an xfs one is there,
    /// marked in progress).
    pub(super) fn mkfs(&mut self, op: &Op, killed: bool) -> Result<(), SystemError> {
        let Op::Mkfs {
            device,
            fstype,
            label,
            force,
            ..
        } = op
        else {
            return Err(Self::fail("mkfs", format!("not a mkfs: {op:?}")));
        };
        let argv = command_line(op).unwrap_or_default();
        let failed = |stderr: String| SystemError::Command {
            argv: argv.clone(),
            rc: Some(1),
            stdout: String::new(),
            stderr,
        };
        let bd = self.device(device, "mkfs", "no device")?;
        // as mke2fs and mkfs.xfs: nothing is made on an empty device
        if bd.size.0 == 0 {
            return Err(failed(format!(
                "{}: Device size reported to be zero",
                device.path
            )));
        }
        if !*force
            && (self.state.filesystem(bd.devno).is_some() || self.state.gpt(bd.devno).is_some())
        {
            return Err(failed(format!(
                "{}: appears to contain an existing filesystem or partition table",
                bd.path
            )));
        }
        if let Some(why) = self.busy(&bd) {
            return Err(failed(why));
        }
        // the words between the program and the device
        let words = argv
            .get(1..argv.len().saturating_sub(1))
            .unwrap_or_default();
        let hints = self.io_hints(bd.devno, 0);
        let made = match argv.first().map(String::as_str) {
            Some("mkfs.ext4") => mke2fs(words, bd.size.bytes(), hints),
            Some("mkfs.xfs") => mkfs_xfs(words, hints),
            other => Err(format!("no model of {other:?}")),
        }
        .map_err(failed)?;
        self.wipe(bd.devno);
        let fs = Filesystem {
            device: bd.devno,
            fstype: fstype.as_str().to_string(),
            uuid: Some(format!("fs-{}", self.executed.len() + 1)),
            label: label.clone(),
            block_size: Some(Bytes(made.block_size)),
            stripe_unit: Some(made.stripe_unit),
            stripe_width: Some(made.stripe_width),
            reflink: made.reflink,
            size: Some(bd.size.bytes()),
            incomplete: false,
        };
        if killed {
            // mkfs.xfs writes its superblock first, marked in progress, and clears the
            // mark last; mke2fs writes its superblocks last
            if fs.fstype == "xfs" {
                self.state.filesystems.push(Filesystem {
                    incomplete: true,
                    ..fs
                });
            }
            return Ok(());
        }
        self.state.filesystems.push(fs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    const PMEM: IoHints = IoHints { min: 4096, opt: 0 };

    #[test]
    fn mke2fs_reads_its_words_and_defaults() {
        let big = Bytes(1 << 30);
        let m = mke2fs(&w("-q -b 4096 -E stride=512,stripe_width=1024"), big, PMEM);
        assert_eq!(
            m.map(|m| (m.block_size, m.stripe_unit, m.stripe_width)),
            Ok((4096, 512, 1024))
        );
        // Debian's `small`: 1 KiB blocks under 512 MiB
        let m = mke2fs(&w("-q"), Bytes(256 << 20), PMEM).map(|m| m.block_size);
        assert_eq!(m, Ok(1024));
        // a later word wins; the hyphenated spelling too
        let m = mke2fs(&w("-E stride=512 -E stripe-width=64,stride=16"), big, PMEM);
        assert_eq!(m.map(|m| (m.stripe_unit, m.stripe_width)), Ok((16, 64)));
        // the topology of a 2-way 2 MiB stripe
        let hints = IoHints {
            min: 2 << 20,
            opt: 4 << 20,
        };
        let m = mke2fs(&w("-b 4096"), big, hints);
        assert_eq!(m.map(|m| (m.stripe_unit, m.stripe_width)), Ok((512, 1024)));
        assert!(mke2fs(&w("-b 3000"), big, PMEM).is_err());
    }

    #[test]
    fn mkfs_xfs_reads_its_words_and_defaults() {
        let m = mkfs_xfs(&w("-q -f -m reflink=0 -d su=2m,sw=2"), PMEM);
        assert_eq!(
            m,
            Ok(Made {
                block_size: 4096,
                stripe_unit: 512,
                stripe_width: 1024,
                reflink: Some(false)
            })
        );
        let m = mkfs_xfs(&w("-q"), PMEM);
        assert_eq!(
            m.map(|m| (m.stripe_unit, m.stripe_width, m.reflink)),
            Ok((0, 0, Some(true)))
        );
        let m = mkfs_xfs(&w("-d su=2m,sw=2 -d su=1m,sw=4"), PMEM);
        assert_eq!(m.map(|m| (m.stripe_unit, m.stripe_width)), Ok((256, 1024)));
        let m = mkfs_xfs(&w("-d sunit=4096,swidth=8192"), PMEM);
        assert_eq!(m.map(|m| (m.stripe_unit, m.stripe_width)), Ok((512, 1024)));
        assert!(mkfs_xfs(&w("-d sw=2"), PMEM).is_err());
        assert!(mkfs_xfs(&w("-d su=6k,sw=1"), PMEM).is_err());
    }
}
