//! Filesystem signatures and DAX geometry, read from the superblocks on the devices.
//!
//! Hand-written: no Rust crate reads ext4 or xfs stripe geometry (ext4 `s_raid_stride`
//! / `s_raid_stripe_width`, xfs `sb_unit` / `sb_width` / the reflink feature bit), and
//! the alternatives are spawning `blkid`, `dumpe2fs` and `xfs_db` (probing spawns no
//! process) or linking libblkid (C, and it does not report xfs stripe units either).
//! The layouts are fixed on-disk formats:
//! - ext2/3/4: superblock at byte 1024, little-endian; magic 0xEF53 at +0x38.
//! - xfs: superblock at byte 0, big-endian; magic `XFSB`; `sb_inprogress` at 0x7E (a
//!   mkfs that did not finish).
//!
//! Other signatures are recognised by magic only, so that nothing is ever created over
//! them unknowingly (names as blkid prints them): btrfs, swap, crypto_LUKS, LVM2_member,
//! linux_raid_member (md 1.1/1.2), f2fs, bcache, iso9660, vfat, exfat, ntfs.
//!
//! `content.rs` opens the devices (read-only, `O_RDONLY|O_CLOEXEC`, never `O_EXCL`, so a
//! mounted or held device can be read; only those in the probe's scope) and
//! [`read_head`] reads the first [`READ_LEN`] bytes.

use crate::actual::{Devno, Filesystem};
use crate::units::Bytes;
use std::fs::File;
use std::io::ErrorKind;

/// Bytes read from the start of each device: 64 KiB + 4 KiB covers every superblock we
/// look for (btrfs sits at 64 KiB; swap's signature ends its first page, up to 64 KiB).
pub const READ_LEN: usize = 0x11000;

/// The first [`READ_LEN`] bytes of an opened device (fewer if it is smaller).
pub fn read_head(f: &File) -> std::io::Result<Vec<u8>> {
    read_at(f, 0, READ_LEN)
}

/// Direct reads are made in whole pages, into a buffer aligned to a page.
const DIRECT_ALIGN: usize = 4096;

/// Up to `len` bytes of `f` from `offset` (fewer at its end). A device the probe opened
/// with `O_DIRECT` (`content::open_device`) is read in whole aligned pages straight into
/// this buffer: no page cache is filled (a block device's is dropped at its last close,
/// so a buffered read would allocate, zero and fill pages, and read ahead, on every
/// probe). When the device refuses direct reads (EINVAL), `O_DIRECT` is dropped from the
/// descriptor and the read goes through the page cache.
pub fn read_at(f: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let align = DIRECT_ALIGN as u64;
    let start = offset - offset % align;
    let end = (offset + len as u64).next_multiple_of(align);
    let span = usize::try_from(end - start).map_err(|_| ErrorKind::InvalidInput)?;
    let mut buf: Vec<u8> = Vec::with_capacity(span + DIRECT_ALIGN);
    // the bytes before the first aligned one are zeroed (and skipped)
    let lead = buf.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
    buf.resize(lead, 0);
    let mut got = 0;
    while got < span {
        let spare = &mut buf.spare_capacity_mut()[..span - got];
        // SAFETY: pread(2) writes at most `spare.len()` bytes at `spare`'s start, inside
        // the vector's capacity.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                (start + got as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) if got == 0 && buffered(f)? => continue,
                _ => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        got += n as usize;
        // SAFETY: the kernel initialised the bytes up to `lead + got`.
        unsafe { buf.set_len(lead + got) };
    }
    let from = lead + (offset - start) as usize;
    let to = buf.len().min(from + len);
    Ok(buf.get(from..to).map(<[u8]>::to_vec).unwrap_or_default())
}

/// Drop `O_DIRECT` from `f`'s flags: whether it had it.
pub fn buffered(f: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL and F_SETFL on an open descriptor take and return plain ints.
    let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & libc::O_DIRECT == 0 {
        return Ok(false);
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(true)
}

/// What the first bytes of a device hold, if we recognise it. `buf` is the start of the
/// device (ideally [`READ_LEN`] bytes; signatures beyond its end are not seen).
///
/// A device with a GPT header at LBA 1 (512- or 4096-byte sectors) has no filesystem:
/// the GPT overwrote what ext and xfs keep there (xfs's AGF, ext's superblock and group
/// descriptors), so a superblock still found at the start is stale. Seen in the VM:
/// sgdisk keeps bytes 0-445 of sector 0 (MBR boot code), where an old xfs superblock
/// lives, and udev's blkid then still links `by-uuid/<old xfs uuid>` to the disk.
/// Partition tables themselves are probed by `gpt.rs`.
pub fn parse_superblock(buf: &[u8], device: Devno) -> Option<Filesystem> {
    let gpt_at = |off: usize| buf.get(off..off + 8) == Some(b"EFI PART".as_slice());
    if gpt_at(512) || gpt_at(4096) {
        return None;
    }
    let sig = if buf.starts_with(b"LUKS\xba\xbe") {
        Sig::named("crypto_LUKS").uuid(text(buf, 0xA8, 40))
    } else if let Some(s) = xfs(buf) {
        s
    } else if let Some(s) = ext(buf) {
        s
    } else {
        magic_only(buf)?
    };
    Some(Filesystem {
        device,
        fstype: sig.fstype.to_string(),
        uuid: sig.uuid,
        label: sig.label,
        block_size: sig.block_size.map(Bytes),
        stripe_unit: sig.stripe_unit,
        stripe_width: sig.stripe_width,
        reflink: sig.reflink,
        size: sig.size.map(Bytes),
        incomplete: sig.incomplete,
    })
}

/// A recognised signature, before it is tied to a device.
#[derive(Default)]
struct Sig {
    fstype: &'static str,
    uuid: Option<String>,
    label: Option<String>,
    block_size: Option<u64>,
    stripe_unit: Option<u32>,
    stripe_width: Option<u32>,
    reflink: Option<bool>,
    /// Bytes the filesystem spans (blocks x block size).
    size: Option<u64>,
    /// Its mkfs did not finish (xfs `sb_inprogress`).
    incomplete: bool,
}

impl Sig {
    fn named(fstype: &'static str) -> Sig {
        Sig {
            fstype,
            ..Sig::default()
        }
    }
    fn uuid(mut self, u: Option<String>) -> Sig {
        self.uuid = u;
        self
    }
    fn label(mut self, l: Option<String>) -> Sig {
        self.label = l;
        self
    }
}

// ext2/3/4 superblock (at byte 1024), little-endian
const EXT_SB: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const EXT_COMPAT_HAS_JOURNAL: u32 = 0x0004;
const EXT_INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
/// Incompatible features ext3 knows: filetype, recover, meta_bg.
const EXT3_INCOMPAT: u32 = 0x0002 | 0x0004 | 0x0010;
/// Read-only features ext3 knows: sparse_super, large_file, btree_dir.
const EXT3_RO_COMPAT: u32 = 0x0001 | 0x0002 | 0x0004;

/// ext2/ext3/ext4 (or an external ext journal, `jbd`), told apart as blkid does: features
/// ext3 does not know make it ext4; a journal without them ext3; neither ext2.
fn ext(buf: &[u8]) -> Option<Sig> {
    let sb = buf.get(EXT_SB..EXT_SB + 1024)?;
    if le16(sb, 0x38)? != EXT_MAGIC {
        return None;
    }
    let compat = le32(sb, 0x5C)?;
    let incompat = le32(sb, 0x60)?;
    let ro_compat = le32(sb, 0x64)?;
    let fstype = if incompat & EXT_INCOMPAT_JOURNAL_DEV != 0 {
        "jbd"
    } else if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
        "ext4"
    } else if compat & EXT_COMPAT_HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    };
    let log = le32(sb, 0x18)?;
    const EXT4_INCOMPAT_64BIT: u32 = 0x80;
    let hi = if incompat & EXT4_INCOMPAT_64BIT != 0 {
        u64::from(le32(sb, 0x150)?)
    } else {
        0
    };
    let blocks = (hi << 32) | u64::from(le32(sb, 0x04)?);
    Some(Sig {
        fstype,
        uuid: uuid(sb.get(0x68..0x78)?),
        label: text(sb, 0x78, 16),
        block_size: (log <= 6).then(|| 1024u64 << log),
        stripe_unit: Some(u32::from(le16(sb, 0x164)?)),
        stripe_width: Some(le32(sb, 0x170)?),
        reflink: None,
        size: (log <= 6).then(|| blocks.saturating_mul(1024u64 << log)),
        incomplete: false,
    })
}

const XFS_SB_VERSION_NUMBITS: u16 = 0x000f;
const XFS_SB_VERSION_5: u16 = 5;
const XFS_SB_FEAT_RO_COMPAT_REFLINK: u32 = 1 << 2;
/// Offset of `sb_inprogress` in the xfs superblock.
const XFS_SB_INPROGRESS: usize = 0x7E;

/// xfs (superblock at byte 0, big-endian). sb_unit / sb_width are in fs blocks.
fn xfs(buf: &[u8]) -> Option<Sig> {
    if !buf.starts_with(b"XFSB") {
        return None;
    }
    let block_size = be32(buf, 0x04)?;
    let version = be16(buf, 0x64)?;
    let v5 = version & XFS_SB_VERSION_NUMBITS == XFS_SB_VERSION_5;
    let ro_compat = if v5 { be32(buf, 0xD4)? } else { 0 };
    Some(Sig {
        fstype: "xfs",
        uuid: uuid(buf.get(0x20..0x30)?),
        label: text(buf, 0x6C, 12),
        block_size: (block_size.is_power_of_two() && (512..=65536).contains(&block_size))
            .then_some(u64::from(block_size)),
        stripe_unit: Some(be32(buf, 0xB8)?),
        stripe_width: Some(be32(buf, 0xBC)?),
        reflink: Some(ro_compat & XFS_SB_FEAT_RO_COMPAT_REFLINK != 0),
        size: be64(buf, 0x08).map(|dblocks| dblocks.saturating_mul(u64::from(block_size))),
        // sb_inprogress: mkfs.xfs writes the superblock with it set and clears it last
        incomplete: buf.get(XFS_SB_INPROGRESS).is_some_and(|b| *b != 0),
    })
}

/// Signatures we only name (and give a uuid/label where it is one read away).
fn magic_only(buf: &[u8]) -> Option<Sig> {
    let at = |off: usize, magic: &[u8]| buf.get(off..off + magic.len()) == Some(magic);
    if at(0x10040, b"_BHRfS_M") {
        return Some(
            Sig::named("btrfs")
                .uuid(buf.get(0x10020..0x10030).and_then(uuid))
                .label(text(buf, 0x1012B, 256)),
        );
    }
    if le32(buf, 1024) == Some(0xF2F5_2010) {
        return Some(Sig::named("f2fs"));
    }
    if (0..4).any(|s| at(s * 512, b"LABELONE") && at(s * 512 + 0x18, b"LVM2 001")) {
        return Some(Sig::named("LVM2_member"));
    }
    if le32(buf, 0) == Some(0xA92B_4EFC) || le32(buf, 4096) == Some(0xA92B_4EFC) {
        return Some(Sig::named("linux_raid_member"));
    }
    for page in [4096usize, 8192, 16384, 32768, 65536] {
        if at(page - 10, b"SWAPSPACE2") {
            return Some(
                Sig::named("swap")
                    .uuid(buf.get(1036..1052).and_then(uuid))
                    .label(text(buf, 1052, 16)),
            );
        }
        if at(page - 10, b"SWAP-SPACE") {
            return Some(Sig::named("swap"));
        }
    }
    const BCACHE: [u8; 16] = [
        0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d,
        0x81,
    ];
    if at(4096 + 24, &BCACHE) {
        return Some(Sig::named("bcache"));
    }
    if at(0x8001, b"CD001") {
        return Some(Sig::named("iso9660"));
    }
    if at(3, b"EXFAT   ") {
        return Some(Sig::named("exfat"));
    }
    if at(3, b"NTFS    ") {
        return Some(Sig::named("ntfs"));
    }
    if at(510, &[0x55, 0xAA]) && (at(0x36, b"FAT1") || at(0x52, b"FAT32   ")) {
        return Some(Sig::named("vfat"));
    }
    None
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// 16 bytes as a uuid string, in on-disk byte order (as blkid prints ext, xfs and btrfs
/// uuids); `None` when all zero.
fn uuid(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    Some(uuid_text(b.try_into().ok()?))
}

/// 16 bytes in the 8-4-4-4-12 hex form of a uuid, in the order given.
pub(crate) fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn text(b: &[u8], off: usize, len: usize) -> Option<String> {
    let field = b.get(off..off + len)?;
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let s = String::from_utf8_lossy(&field[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_head_of_a_file_up_to_read_len() {
        let dir = std::env::temp_dir().join(format!("pmem-stack-head-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for len in [0, 100, READ_LEN, READ_LEN + 5000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = dir.join(format!("f{len}"));
            std::fs::write(&p, &bytes).expect("write");
            let f = File::open(&p).expect("open");
            let got = read_head(&f).expect("read");
            assert_eq!(got, bytes[..len.min(READ_LEN)], "{len} bytes");
            // unaligned pieces, and past the end
            for (at, n) in [(1u64, 7usize), (510, 9), (4095, 4098), (len as u64, 8)] {
                let want = bytes
                    .get(at as usize..)
                    .map_or(&[][..], |b| &b[..n.min(b.len())]);
                assert_eq!(
                    read_at(&f, at, n).expect("read_at"),
                    want,
                    "{len}: {at}+{n}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Through `O_DIRECT` where the filesystem of the build directory allows it (tmpfs
    /// does not: then the plain read is checked again).
    #[test]
    fn direct_reads_of_unaligned_pieces() {
        use std::os::unix::fs::OpenOptionsExt;
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("pmem-stack-direct-{}", std::process::id()));
        let bytes: Vec<u8> = (0..3 * DIRECT_ALIGN + 100)
            .map(|i| (i % 253) as u8)
            .collect();
        std::fs::write(&p, &bytes).expect("write");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&p)
            .or_else(|_| File::open(&p))
            .expect("open");
        for (at, n) in [
            (0u64, READ_LEN),
            (1, 7),
            (511, 600),
            (4096, 4096),
            (12290, 99),
        ] {
            let want = bytes
                .get(at as usize..)
                .map_or(&[][..], |b| &b[..n.min(b.len())]);
            assert_eq!(read_at(&f, at, n).expect("read_at"), want, "{at}+{n}");
        }
        let _ = std::fs::remove_file(&p);
    }

    const DEV: Devno = Devno {
        major: 254,
        minor: 0,
    };

    fn fixture(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vm")
            .join(name);
        std::fs::read(&p).expect("fixture")
    }

    /// The filesystem found in fixture `name`, every field, as JSON.
    fn parsed(name: &str) -> serde_json::Value {
        let fs = parse_superblock(&fixture(name), DEV).expect(name);
        serde_json::to_value(fs).expect("json")
    }

    #[test]
    fn ext4_striped() {
        // dumpe2fs-h-striped.txt: extlbl, 5cfbe517-..., block 4096, stride 512, width 1024,
        // Block count: 128000
        assert_eq!(
            parsed("ext4-sb-striped.bin"),
            serde_json::json!({"device": "254:0", "fstype": "ext4", "uuid": "5cfbe517-c1f7-4dda-b4f7-99763b2e4a79", "label": "extlbl", "block_size": 4096, "stripe_unit": 512, "stripe_width": 1024, "reflink": null, "size": 128_000 * 4096})
        );
    }

    #[test]
    fn xfs_striped_without_reflink() {
        // xfs-db-sb-striped.txt: unit = 512, width = 1024, features_ro_compat = 0x9,
        // dblocks = 126976
        assert_eq!(
            parsed("xfs-sb-striped.bin"),
            serde_json::json!({"device": "254:0", "fstype": "xfs", "uuid": "c9814827-ad6e-46f1-98e2-c4d8038f4af5", "label": "xfslbl", "block_size": 4096, "stripe_unit": 512, "stripe_width": 1024, "reflink": false, "size": 126_976 * 4096})
        );
    }

    /// mkfs.xfs killed before it finished: the superblock says so (sb_inprogress).
    #[test]
    fn xfs_with_its_mkfs_in_progress_is_incomplete() {
        let mut sb = fixture("xfs-sb-striped.bin");
        assert!(!parse_superblock(&sb, DEV).expect("xfs").incomplete);
        sb[0x7E] = 1;
        let fs = parse_superblock(&sb, DEV).expect("xfs");
        assert!(fs.incomplete && fs.fstype == "xfs");
        assert_eq!(serde_json::to_value(&fs).expect("json")["incomplete"], true);
    }

    #[test]
    fn xfs_default_has_reflink() {
        // xfs-db-sb-default.txt: unit = width = 0, features_ro_compat = 0xd, no label,
        // dblocks = 64000
        assert_eq!(
            parsed("xfs-sb-default.bin"),
            serde_json::json!({"device": "254:0", "fstype": "xfs", "uuid": "9163c35d-e9e2-497d-a665-6eea9bf25b80", "label": null, "block_size": 4096, "stripe_unit": 0, "stripe_width": 0, "reflink": true, "size": 64_000 * 4096})
        );
    }

    #[test]
    fn stale_superblock_under_a_gpt_is_not_a_filesystem() {
        // what sgdisk leaves on a disk that held xfs: its GPT (LBA 1-33) with the old
        // superblock's first 446 bytes still in sector 0's boot-code area
        let mut buf = fixture("gpt-pmem0-head.bin");
        assert!(parse_superblock(&buf, DEV).is_none());
        buf[..446].copy_from_slice(&fixture("xfs-sb-striped.bin")[..446]);
        assert!(parse_superblock(&buf, DEV).is_none());
        buf[512..520].fill(0);
        assert_eq!(parse_superblock(&buf, DEV).expect("xfs").fstype, "xfs");
    }

    #[test]
    fn ext_generations() {
        let mut buf = fixture("ext4-sb-striped.bin");
        let set = |b: &mut Vec<u8>, off: usize, v: u32| {
            b[EXT_SB + off..EXT_SB + off + 4].copy_from_slice(&v.to_le_bytes())
        };
        set(&mut buf, 0x60, 0x0002); // filetype only
        set(&mut buf, 0x64, 0x0003); // sparse_super, large_file
        let fstype = |b: &[u8]| parse_superblock(b, DEV).expect("ext").fstype;
        assert_eq!(fstype(&buf), "ext3"); // has_journal is still set
        set(&mut buf, 0x5C, 0);
        assert_eq!(fstype(&buf), "ext2");
        set(&mut buf, 0x60, 0x0008);
        assert_eq!(fstype(&buf), "jbd");
    }

    #[test]
    fn magic_only_signatures() {
        let mut buf = vec![0u8; READ_LEN];
        assert!(parse_superblock(&buf, DEV).is_none());
        buf[4086..4096].copy_from_slice(b"SWAPSPACE2");
        buf[1052..1056].copy_from_slice(b"swp0");
        let fs = parse_superblock(&buf, DEV).expect("swap");
        assert_eq!(
            (fs.fstype.as_str(), fs.label.as_deref()),
            ("swap", Some("swp0"))
        );

        let mut buf = vec![0u8; READ_LEN];
        buf[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(parse_superblock(&buf, DEV).expect("btrfs").fstype, "btrfs");

        let mut buf = vec![0u8; 4096];
        buf[..6].copy_from_slice(b"LUKS\xba\xbe");
        assert_eq!(
            parse_superblock(&buf, DEV).expect("luks").fstype,
            "crypto_LUKS"
        );

        let mut buf = vec![0u8; 4096];
        buf[510..512].copy_from_slice(&[0x55, 0xAA]);
        assert!(parse_superblock(&buf, DEV).is_none()); // an MBR is not a filesystem
        buf[0x52..0x5A].copy_from_slice(b"FAT32   ");
        assert_eq!(parse_superblock(&buf, DEV).expect("vfat").fstype, "vfat");
    }

    #[test]
    fn short_and_truncated_buffers_do_not_panic() {
        let full = fixture("xfs-sb-striped.bin");
        for n in [0, 3, 4, 100, 0xB9, 0xD5, 1100] {
            let _ = parse_superblock(&full[..n], DEV);
        }
        let ext = fixture("ext4-sb-striped.bin");
        for n in [1024, 1080, 1200, 1024 + 0x165] {
            assert!(parse_superblock(&ext[..n], DEV).is_none());
        }
    }
}
