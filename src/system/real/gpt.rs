//! GPT partition tables through the `gpt` crate, and the kernel told with `BLKPG`.
//!
//! - [`read_table`] reads the GPT of a whole disk the probe opened (`content.rs` decides
//!   which: the disks in the probe's scope, never a suspended dm device), read-only.
//!   A disk whose GPT the kernel would not accept either (no signature, bad CRCs, an
//!   entry size other than 128, a header that does not fit the disk: e.g. the GPT of a
//!   striped dm device seen through its first member) has none; reading LBA 1 and the
//!   last LBA ourselves first keeps the crate away from non-GPT disks.
//! - [`create`] writes a protective MBR, both headers and empty entry arrays.
//! - [`add`] / [`delete`] change one entry, keeping every entry at its own slot (entry
//!   `N` is slot `N-1`, which is how the kernel numbers partitions), then tell the kernel
//!   about that one partition with `BLKPG_ADD_PARTITION` / `BLKPG_DEL_PARTITION`, which
//!   works while other partitions of the disk are in use (`BLKRRPART` does not). The
//!   kernel never partitions a dm device: there the caller maps partitions with dm.
//!
//! Writing: the `gpt` crate's own `write` packs the used entries to the front of the
//! array (entry 3 of {1, 3} would come back as 2), so we use its header builder and
//! entry encoder but lay the array out ourselves.
//!
//! udev: it watches whole disks and, when a descriptor opened for writing is closed,
//! re-reads the partition table with `BLKRRPART` (dropping and re-adding every partition
//! if none is in use) unless it cannot get `flock(LOCK_EX)` on the disk, in which case it
//! only refreshes its links. So, like sgdisk and systemd-repart, we hold `LOCK_EX` on a
//! read-only descriptor for the whole operation, write through a second descriptor that
//! we close while still holding the lock (plus a short grace for udev to notice), and
//! call `BLKPG` through the read-only one. Operations that change nothing never open the
//! disk for writing.
//!
//! Sectors in [`PartitionTable`] are 512-byte units; disks with 512- or 4096-byte
//! logical blocks are handled (LBAs are converted).

use crate::actual::{Devno, GptPartition, PartitionTable};
use crate::system::{DevId, GptEntry};
use crate::system::{Output, SystemError};
use crate::units::{Sectors, SECTOR_BYTES};
use gpt::disk::LogicalBlockSize;
use gpt::header::{Header, HeaderBuilder};
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::{partition_types, DiskDevice, GptConfig, GptDisk, GptError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The partition type we give new entries: "Linux filesystem data"
/// (0FC63DAF-8483-4772-8E79-3D69D8477DE4, sgdisk code 8300).
const LINUX_FS_DATA: partition_types::Type = partition_types::LINUX_FS;
/// Size of one GPT entry; the kernel accepts no other.
const ENTRY_SIZE: u32 = 128;
/// More entries than this is not a table we wrote or want to read (the usual is 128).
const MAX_ENTRIES: u32 = 4096;
/// Longest partition name (UTF-16 code units).
const MAX_NAME: usize = 36;
/// How long we keep the disk locked after closing the descriptor we wrote through.
const UDEV_GRACE: Duration = Duration::from_millis(100);
/// Exists while udev runs.
const UDEV_CONTROL: &str = "/run/udev/control";
/// The header signature.
const SIGNATURE: &[u8; 8] = b"EFI PART";

/// The two block ioctls: BLKSSZGET = _IO(0x12, 104) (linux/fs.h), BLKPG = _IO(0x12, 105)
/// (linux/blkpg.h).
mod ioctls {
    use super::BlkpgIoctlArg;
    nix::ioctl_read_bad!(blk_ssz_get, nix::request_code_none!(0x12, 104), libc::c_int);
    nix::ioctl_write_ptr_bad!(blkpg, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);
}
use ioctls::{blk_ssz_get, blkpg};

const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// `struct blkpg_partition` (start and length in bytes).
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// Logical block size and the disk's length in logical blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    lb: LogicalBlockSize,
    lbas: u64,
}

impl Geometry {
    /// 512-byte sectors per logical block.
    fn per_lba(self) -> u64 {
        self.lb.as_u64() / SECTOR_BYTES
    }
    fn sectors(self, lba: u64) -> Sectors {
        Sectors(lba.saturating_mul(self.per_lba()))
    }
    /// LBA of a sector that must sit on a logical block boundary.
    fn lba(self, s: Sectors, what: &str) -> Result<u64, String> {
        if !s.0.is_multiple_of(self.per_lba()) {
            return Err(format!(
                "{what} {s} is not a multiple of the {}-byte logical block",
                self.lb.as_u64()
            ));
        }
        Ok(s.0 / self.per_lba())
    }
    fn last_lba(self) -> u64 {
        self.lbas.saturating_sub(1)
    }
}

fn block_size(bytes: libc::c_int) -> Option<LogicalBlockSize> {
    match bytes {
        512 => Some(LogicalBlockSize::Lb512),
        4096 => Some(LogicalBlockSize::Lb4096),
        _ => None,
    }
}

fn geometry<D: Seek>(dev: &mut D, lb: LogicalBlockSize) -> io::Result<Geometry> {
    let len = dev.seek(SeekFrom::End(0))?;
    dev.seek(SeekFrom::Start(0))?;
    Ok(Geometry {
        lb,
        lbas: len / lb.as_u64(),
    })
}

/// `(num_parts, part_size)` of the header at `lba` if it carries the GPT signature.
fn signed_header<D: Read + Seek>(
    dev: &mut D,
    lba: u64,
    g: Geometry,
) -> io::Result<Option<(u32, u32)>> {
    let mut b = [0u8; 92];
    dev.seek(SeekFrom::Start(lba * g.lb.as_u64()))?;
    dev.read_exact(&mut b)?;
    if &b[..8] != SIGNATURE {
        return Ok(None);
    }
    let le32 = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    Ok(Some((le32(80), le32(84))))
}

/// The GPT on `dev`, read-only, if the kernel would take it; `Ok(None)` for a disk
/// without one. Errors are I/O errors only.
fn read<D: DiskDevice>(mut dev: D, g: Geometry) -> io::Result<Option<GptDisk<D>>> {
    // MBR + header + at least one LBA of entries at either end.
    if g.lbas < 6 {
        return Ok(None);
    }
    let primary = signed_header(&mut dev, 1, g)?;
    let backup = signed_header(&mut dev, g.last_lba(), g)?;
    if primary.is_none() && backup.is_none() {
        return Ok(None);
    }
    // The crate asserts on other entry sizes and allocates num_parts x 128 bytes:
    // check both before letting it read.
    let sane = |h: &Option<(u32, u32)>| {
        h.is_none_or(|(n, size)| size == ENTRY_SIZE && (1..=MAX_ENTRIES).contains(&n))
    };
    if !sane(&primary) || !sane(&backup) {
        return Ok(None);
    }
    dev.seek(SeekFrom::Start(0))?;
    let disk = match GptConfig::new()
        .writable(false)
        .logical_block_size(g.lb)
        .open_from_device(dev)
    {
        Ok(disk) => disk,
        Err(GptError::Io(e)) if e.raw_os_error().is_some() => return Err(e),
        Err(GptError::Header(gpt::header::HeaderError::Io(e))) if e.raw_os_error().is_some() => {
            return Err(e)
        }
        Err(_) => return Ok(None),
    };
    // The checks of the kernel's is_gpt_valid() the crate leaves out.
    let h = disk.header();
    let at = if disk.primary_header().is_ok() {
        1
    } else {
        g.last_lba()
    };
    if h.current_lba != at || h.first_usable > h.last_usable || h.last_usable >= g.lbas {
        return Ok(None);
    }
    Ok(Some(disk))
}

/// What the probe reports about a GPT.
fn table_of<D>(disk: &GptDisk<D>, devno: Devno, g: Geometry) -> PartitionTable {
    let h = disk.header();
    let partitions = disk
        .partitions()
        .iter()
        // Entries the kernel skips: unused type, or end before start.
        .filter(|(_, p)| p.is_used() && p.first_lba <= p.last_lba)
        .map(|(n, p)| GptPartition {
            number: *n,
            name: p.name.clone(),
            start: g.sectors(p.first_lba),
            size: g.sectors(p.last_lba - p.first_lba + 1),
            type_guid: Some(p.part_type_guid.guid.to_string()),
            uuid: Some(p.part_guid.to_string()),
        })
        .collect();
    PartitionTable {
        disk: devno,
        first_usable: g.sectors(h.first_usable),
        last_usable: Sectors(g.sectors(h.last_usable + 1).0 - 1),
        partitions,
    }
}

/// A fresh primary header for a disk of geometry `g` (128 entries, random disk GUID).
fn new_header(g: Geometry) -> Result<Header, String> {
    HeaderBuilder::new()
        .backup_lba(g.last_lba())
        .primary(true)
        .build(g.lb)
        .map_err(|e| format!("the disk is too small for a GPT: {e}"))
}

/// Refuse to write a GPT whose headers are not where this disk's size puts them (a
/// grown or shrunk dm device, or a table that belongs to another device).
fn check_fits(h: &Header, g: Geometry) -> Result<(), String> {
    let (primary, backup) = if h.current_lba < h.backup_lba {
        (h.current_lba, h.backup_lba)
    } else {
        (h.backup_lba, h.current_lba)
    };
    if primary != 1 || backup != g.last_lba() || h.last_usable >= backup {
        return Err(format!(
            "the GPT's backup header is at LBA {backup} but the disk ends at LBA {} \
             (the disk changed size?); fix the table (sgdisk -e) or recreate it",
            g.last_lba()
        ));
    }
    Ok(())
}

/// Write `entries` (each at slot number-1) with both headers built from `src`, and a
/// protective MBR when `with_mbr`. Flushes and syncs the device.
fn write_table<D: DiskDevice>(
    dev: &mut D,
    src: &Header,
    entries: &BTreeMap<u32, Partition>,
    g: Geometry,
    with_mbr: bool,
) -> Result<(), String> {
    let build = |primary: bool| {
        HeaderBuilder::from_header(src)
            .primary(primary)
            .build(g.lb)
            .map_err(|e| format!("building the GPT header: {e}"))
    };
    let mut primary = build(true)?;
    let mut backup = build(false)?;
    let slots = u64::from(primary.num_parts);
    let mut array = Cursor::new(vec![0u8; (slots * u64::from(ENTRY_SIZE)) as usize]);
    for (n, p) in entries.iter().filter(|(_, p)| p.is_used()) {
        if *n == 0 || u64::from(*n) > slots {
            return Err(format!("entry {n} does not fit a table of {slots} entries"));
        }
        p.write_to_device(&mut array, u64::from(*n - 1), 0, g.lb, ENTRY_SIZE)
            .map_err(|e| format!("encoding entry {n}: {e}"))?;
    }
    let array = array.into_inner();
    let io = |e: io::Error| format!("writing the GPT: {e}");
    if with_mbr {
        let mut lba0 = vec![0u8; g.lb.as_usize()];
        let size = u32::try_from(g.last_lba()).unwrap_or(u32::MAX);
        lba0[..512].copy_from_slice(&ProtectiveMBR::with_lb_size(size).to_bytes());
        dev.seek(SeekFrom::Start(0)).map_err(io)?;
        dev.write_all(&lba0).map_err(io)?;
    }
    for h in [&primary, &backup] {
        dev.seek(SeekFrom::Start(h.part_start * g.lb.as_u64()))
            .map_err(io)?;
        dev.write_all(&array).map_err(io)?;
    }
    // The headers compute the entries' CRC from what is now on the device.
    backup
        .write_backup(dev, g.lb)
        .map_err(|e| format!("writing the backup GPT header: {e}"))?;
    primary
        .write_primary(dev, g.lb)
        .map_err(|e| format!("writing the primary GPT header: {e}"))?;
    dev.flush().map_err(io)?;
    Ok(())
}

/// Put entry `number` at `start`/`size` in `disk`'s table. `Ok(false)`: an identical
/// entry is already there.
fn add_entry<D: DiskDevice>(
    disk: &mut GptDisk<D>,
    g: Geometry,
    number: u32,
    name: &str,
    start: Sectors,
    size: Sectors,
) -> Result<bool, String> {
    if name.encode_utf16().count() > MAX_NAME {
        return Err(format!(
            "name {name:?} is longer than {MAX_NAME} UTF-16 units"
        ));
    }
    if size.0 == 0 {
        return Err("size is 0".into());
    }
    let first = g.lba(start, "start")?;
    let len = g.lba(size, "size")?;
    let last = first + len - 1;
    let h = disk.header().clone();
    if number == 0 || number > h.num_parts {
        return Err(format!(
            "number {number} is outside the table's 1-{} entries",
            h.num_parts
        ));
    }
    if first < h.first_usable || last > h.last_usable {
        return Err(format!(
            "sectors {start}-{} are outside the usable {}-{}",
            g.sectors(last + 1).0 - 1,
            g.sectors(h.first_usable),
            g.sectors(h.last_usable + 1).0 - 1
        ));
    }
    for (n, p) in disk.partitions().iter().filter(|(_, p)| p.is_used()) {
        if *n == number {
            if p.first_lba == first && p.last_lba == last && p.name == name {
                return Ok(false);
            }
            return Err(format!(
                "entry {number} is already used ({:?} at sector {}, {} sectors)",
                p.name,
                g.sectors(p.first_lba),
                g.sectors(p.last_lba.saturating_sub(p.first_lba) + 1)
            ));
        }
        if first <= p.last_lba && p.first_lba <= last {
            return Err(format!(
                "it overlaps entry {n} ({:?} at sector {}, {} sectors)",
                p.name,
                g.sectors(p.first_lba),
                g.sectors(p.last_lba.saturating_sub(p.first_lba) + 1)
            ));
        }
    }
    // Checked above: the crate's own range check is looser, and it panics on 0.
    disk.add_partition_at(name, number, first, len, LINUX_FS_DATA, 0)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

// ---- the real disk ----------------------------------------------------------------

/// A whole disk opened read-only, checked to be `disk.devno`, and locked. The table is
/// read and the kernel told through this descriptor; writes go through a second one
/// ([`OpenDisk::write`]) that is closed again while the lock is still held.
struct OpenDisk {
    file: Flock<File>,
    g: Geometry,
    path: String,
    devno: Devno,
}

fn os(what: String, error: impl ToString) -> SystemError {
    SystemError::Os {
        what,
        error: error.to_string(),
    }
}

pub(super) fn devno_of(file: &File) -> io::Result<Option<Devno>> {
    let st = nix::sys::stat::fstat(file)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
        return Ok(None);
    }
    Ok(Some(Devno {
        major: nix::sys::stat::major(st.st_rdev) as u32,
        minor: nix::sys::stat::minor(st.st_rdev) as u32,
    }))
}

fn logical_block_size(file: &File) -> io::Result<libc::c_int> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int to the pointer, which points to a live c_int.
    unsafe { blk_ssz_get(file.as_raw_fd(), &mut bytes) }?;
    Ok(bytes)
}

/// Open `path` and check it is block device `devno`.
fn open_checked(path: &str, devno: Devno, write: bool) -> Result<File, SystemError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| os(format!("open {path}"), e))?;
    match devno_of(&file) {
        Ok(Some(d)) if d == devno => Ok(file),
        Ok(Some(d)) => Err(os(
            format!("open {path}"),
            format!("it is device {d}, not {devno} as planned"),
        )),
        Ok(None) => Err(os(format!("open {path}"), "not a block device")),
        Err(e) => Err(os(format!("fstat {path}"), e)),
    }
}

fn open_disk(disk: &DevId) -> Result<OpenDisk, SystemError> {
    let path = &disk.path;
    let file = open_checked(path, disk.devno, false)?;
    let bytes = logical_block_size(&file).map_err(|e| os(format!("BLKSSZGET {path}"), e))?;
    let lb = block_size(bytes).ok_or_else(|| {
        os(
            format!("GPT on {path}"),
            format!("logical block size {bytes} is not supported (512 or 4096)"),
        )
    })?;
    let mut file = lock(file, path)?;
    let g = geometry(&mut *file, lb).map_err(|e| os(format!("size of {path}"), e))?;
    Ok(OpenDisk {
        file,
        g,
        path: path.clone(),
        devno: disk.devno,
    })
}

impl OpenDisk {
    /// Write a table through a writable descriptor of our own, synced and closed before
    /// this returns. Closing it is what udev watches for: it then re-reads the disk, but
    /// while we hold the lock it only refreshes its links (its `BLKRRPART`, which would
    /// drop and re-add every partition not in use, needs the lock). So we hold the lock
    /// [`UDEV_GRACE`] longer when udev runs.
    fn write(
        &self,
        src: &Header,
        entries: &BTreeMap<u32, Partition>,
        with_mbr: bool,
    ) -> Result<(), SystemError> {
        let path = &self.path;
        let mut w = open_checked(path, self.devno, true)?;
        write_table(&mut w, src, entries, self.g, with_mbr)
            .map_err(|e| os(format!("write GPT {path}"), e))?;
        w.sync_all().map_err(|e| os(format!("fsync {path}"), e))?;
        drop(w);
        // Keep the lock a moment so udev sees the close while the disk is locked (seen in
        // the VM: without it, udev's BLKRRPART sometimes dropped and re-added partitions
        // after `udevadm settle` had already returned).
        if Path::new(UDEV_CONTROL).exists() {
            std::thread::sleep(UDEV_GRACE);
        }
        Ok(())
    }
}

/// `flock(LOCK_EX)` the disk (udev takes a shared lock while it probes): wait up to 10 s.
fn lock(mut file: File, path: &str) -> Result<Flock<File>, SystemError> {
    for _ in 0..200 {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EWOULDBLOCK)) | Err((f, Errno::EINTR)) => {
                file = f;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err((_, e)) => return Err(os(format!("flock {path}"), e)),
        }
    }
    Err(os(
        format!("flock {path}"),
        "another program (udev, a partitioning tool) kept the disk locked for 10 s",
    ))
}

/// Read the GPT of an opened disk, or fail: changing an entry needs a table.
fn read_for_change(d: &mut OpenDisk) -> Result<GptDisk<&mut File>, SystemError> {
    let (g, path) = (d.g, d.path.clone());
    let disk = read(&mut *d.file, g)
        .map_err(|e| os(format!("read GPT {path}"), e))?
        .ok_or_else(|| {
            os(
                format!("read GPT {path}"),
                "the disk has no valid GPT (create one first)",
            )
        })?;
    check_fits(disk.header(), g).map_err(|e| os(format!("GPT on {path}"), e))?;
    Ok(disk)
}

/// A partition the kernel has of a disk (sysfs, 512-byte sectors).
#[derive(Debug, Clone, PartialEq, Eq)]
struct KernelPartition {
    number: u32,
    start: u64,
    size: u64,
}

fn sys_dir(devno: Devno) -> PathBuf {
    PathBuf::from(format!("/sys/dev/block/{devno}"))
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The kernel's name of a disk (`pmem0`) and its partitions, from sysfs.
fn kernel_partitions(devno: Devno) -> (String, Vec<KernelPartition>) {
    let dir = sys_dir(devno);
    let name = std::fs::canonicalize(&dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let mut parts = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            if let (Some(number), Some(start), Some(size)) = (
                read_u64(&p.join("partition")),
                read_u64(&p.join("start")),
                read_u64(&p.join("size")),
            ) {
                parts.push(KernelPartition {
                    number: u32::try_from(number).unwrap_or(u32::MAX),
                    start,
                    size,
                });
            }
        }
    }
    parts.sort_by_key(|p| p.number);
    (name, parts)
}

/// The kernel's name for partition `n` of disk `disk` (`pmem0p1`, `sda1`).
fn partition_name(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

fn blkpg_call(
    file: &File,
    op: libc::c_int,
    number: u32,
    start: u64,
    length: u64,
    devname: &str,
) -> nix::Result<()> {
    let mut part = BlkpgPartition {
        start: libc::c_longlong::try_from(start).map_err(|_| Errno::EOVERFLOW)?,
        length: libc::c_longlong::try_from(length).map_err(|_| Errno::EOVERFLOW)?,
        pno: libc::c_int::try_from(number).map_err(|_| Errno::EINVAL)?,
        devname: [0; 64],
        volname: [0; 64],
    };
    for (d, s) in part.devname.iter_mut().zip(devname.bytes().take(63)) {
        *d = s as libc::c_char;
    }
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: the kernel reads `arg` and the blkpg_partition it points to; both live
    // until the call returns and have the C layout of linux/blkpg.h.
    unsafe { blkpg(file.as_raw_fd(), &arg) }.map(|_| ())
}

/// Tell the kernel partition `number` is at `start`/`size` (sectors). Nothing to do
/// when it already has exactly that; a different partition under that number is
/// dropped first (fails if it is in use).
fn kernel_add(
    file: &File,
    devno: Devno,
    path: &str,
    number: u32,
    start: Sectors,
    size: Sectors,
) -> Result<String, SystemError> {
    let (kname, parts) = kernel_partitions(devno);
    let pname = partition_name(&kname, number);
    let what = |op: &str| format!("{op} {pname} ({path} partition {number})");
    if let Some(k) = parts.iter().find(|k| k.number == number) {
        if k.start == start.0 && k.size == size.0 {
            return Ok(format!("the kernel already had {pname}"));
        }
        blkpg_call(file, BLKPG_DEL_PARTITION, number, 0, 0, &pname).map_err(|e| {
            os(
                what("BLKPG_DEL_PARTITION"),
                format!(
                    "{e} (the kernel has a different partition {number}, at sector {} with {} \
                     sectors, and cannot drop it); the GPT entry is in place",
                    k.start, k.size
                ),
            )
        })?;
    }
    blkpg_call(
        file,
        BLKPG_ADD_PARTITION,
        number,
        start.bytes().0,
        size.bytes().0,
        &pname,
    )
    .map_err(|e| {
        let why = if e == Errno::EBUSY {
            " (it overlaps a partition the kernel has)"
        } else {
            ""
        };
        os(
            what("BLKPG_ADD_PARTITION"),
            format!("{e}{why}; the GPT entry is in place, the kernel does not know it yet"),
        )
    })?;
    Ok(format!("told the kernel about {pname}"))
}

/// Drop partition `number` from the kernel's view (nothing to do if it has none).
fn kernel_delete(file: &File, devno: Devno, path: &str, number: u32) -> Result<bool, SystemError> {
    let (kname, parts) = kernel_partitions(devno);
    if !parts.iter().any(|k| k.number == number) {
        return Ok(false);
    }
    let pname = partition_name(&kname, number);
    blkpg_call(file, BLKPG_DEL_PARTITION, number, 0, 0, &pname).map_err(|e| {
        let why = if e == Errno::EBUSY {
            " (it is in use: mounted, or held by a dm device or a process)"
        } else {
            ""
        };
        os(
            format!("BLKPG_DEL_PARTITION {pname} ({path} partition {number})"),
            format!("{e}{why}; nothing was changed"),
        )
    })?;
    Ok(true)
}

fn done(stdout: String) -> Output {
    Output {
        argv: None,
        stdout,
        stderr: String::new(),
    }
}

// ---- the interface ----------------------------------------------------------------

/// The GPT of the whole disk `devno` opened as `file` (read-only), if it has one the
/// kernel would accept; `Ok(None)` also for a logical block size other than 512 or 4096.
/// Errors are the disk's own (ioctl and read errors), for the caller to report.
pub fn read_table(file: &mut File, devno: Devno) -> io::Result<Option<PartitionTable>> {
    let bytes = logical_block_size(file)?;
    let Some(lb) = block_size(bytes) else {
        return Ok(None);
    };
    let g = Geometry {
        lb,
        lbas: file.seek(SeekFrom::End(0))? / lb.as_u64(),
    };
    // Most disks the probe reads carry no GPT: look for either header's signature with
    // two positioned reads first (what `read` would find), and stop there.
    let signed = |lba: u64| -> io::Result<bool> {
        let sig = super::fs::read_at(file, lba * g.lb.as_u64(), SIGNATURE.len())?;
        if sig.len() < SIGNATURE.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(sig == *SIGNATURE)
    };
    if g.lbas < 6 || !(signed(1)? || signed(g.last_lba())?) {
        return Ok(None);
    }
    // the gpt crate reads what it likes, where it likes: through the page cache
    super::fs::buffered(file)?;
    let found = read(&mut *file, g)?;
    Ok(found.map(|disk| table_of(&disk, devno, g)))
}

/// Write a new, empty GPT (protective MBR, both headers, 128 empty entries) on `disk`.
/// Partitions the kernel still has of the disk (an older table) are dropped first;
/// one in use stops this before anything is written.
pub fn create(disk: &DevId) -> Result<Output, SystemError> {
    let path = &disk.path;
    let d = open_disk(disk)?;
    let header = new_header(d.g).map_err(|e| os(format!("GPT on {path}"), e))?;
    let mut dropped = Vec::new();
    let (kname, parts) = kernel_partitions(disk.devno);
    for k in parts {
        kernel_delete(&d.file, disk.devno, path, k.number).map_err(|e| match e {
            SystemError::Os { what, error } if !dropped.is_empty() => SystemError::Os {
                what,
                error: format!(
                    "{error} (already dropped from the kernel's view: {})",
                    dropped.join(", ")
                ),
            },
            e => e,
        })?;
        dropped.push(partition_name(&kname, k.number));
    }
    d.write(&header, &BTreeMap::new(), true)?;
    let g = d.g;
    let mut msg = format!(
        "wrote an empty GPT on {path}: usable sectors {}-{}\n",
        g.sectors(header.first_usable),
        g.sectors(header.last_usable + 1).0 - 1
    );
    if !dropped.is_empty() {
        msg.push_str(&format!(
            "dropped old kernel partitions: {}\n",
            dropped.join(", ")
        ));
    }
    Ok(done(msg))
}

/// Add GPT `entry` (its number and name, at its start with its size in sectors; type
/// Linux filesystem data), write the table, and unless `dm_disk` add the partition to
/// the kernel with `BLKPG_ADD_PARTITION`. An identical entry already there is not
/// written again (the kernel is still told, if it lacks the partition).
pub fn add(disk: &DevId, entry: &GptEntry, dm_disk: bool) -> Result<Output, SystemError> {
    let GptEntry {
        number,
        ref name,
        start,
        size,
    } = *entry;
    let path = &disk.path;
    let mut d = open_disk(disk)?;
    let g = d.g;
    let mut table = read_for_change(&mut d)?;
    let changed = add_entry(&mut table, g, number, name, start, size)
        .map_err(|e| os(format!("GPT add {path} partition {number} {name:?}"), e))?;
    let (header, entries) = (table.header().clone(), table.partitions().clone());
    drop(table);
    let mut msg = String::new();
    if changed {
        d.write(&header, &entries, false)?;
        msg.push_str(&format!(
            "added GPT entry {number} {name:?} on {path}: sectors {start}+{size}\n"
        ));
    } else {
        msg.push_str(&format!("GPT entry {number} on {path} was already there\n"));
    }
    if !dm_disk {
        let k = kernel_add(&d.file, disk.devno, path, number, start, size)?;
        msg.push_str(&k);
        msg.push('\n');
    }
    Ok(done(msg))
}

/// Delete GPT entry `number`: unless `dm_disk`, first drop the partition from the
/// kernel with `BLKPG_DEL_PARTITION` (it fails while the partition is in use, and then
/// nothing has changed), then write the table without the entry.
pub fn delete(disk: &DevId, number: u32, dm_disk: bool) -> Result<Output, SystemError> {
    let path = &disk.path;
    let mut d = open_disk(disk)?;
    // Read first: a disk without a table is an error before the kernel is touched.
    let mut table = read_for_change(&mut d)?;
    let has_entry = table
        .partitions()
        .get(&number)
        .is_some_and(Partition::is_used);
    table.remove_partition(number);
    let (header, entries) = (table.header().clone(), table.partitions().clone());
    drop(table);
    let mut msg = String::new();
    if !dm_disk && kernel_delete(&d.file, disk.devno, path, number)? {
        msg.push_str(&format!("dropped partition {number} from the kernel\n"));
    }
    if has_entry {
        d.write(&header, &entries, false)?;
        msg.push_str(&format!("deleted GPT entry {number} on {path}\n"));
    } else {
        msg.push_str(&format!("GPT entry {number} on {path} was already gone\n"));
    }
    Ok(done(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A disk of `len` bytes that is zero except for some pieces (the fixtures hold only
    /// the first and last sectors of the 512000-sector pmem0).
    #[derive(Debug)]
    struct Sparse {
        len: u64,
        pos: u64,
        pieces: Vec<(u64, Vec<u8>)>,
    }

    impl Read for Sparse {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.len.saturating_sub(self.pos) as usize);
            let buf = &mut buf[..n];
            buf.fill(0);
            for (at, data) in &self.pieces {
                let (lo, hi) = (
                    self.pos.max(*at),
                    (self.pos + n as u64).min(at + data.len() as u64),
                );
                if lo < hi {
                    buf[(lo - self.pos) as usize..(hi - self.pos) as usize]
                        .copy_from_slice(&data[(lo - at) as usize..(hi - at) as usize]);
                }
            }
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Write for Sparse {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("read-only"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for Sparse {
        fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
            self.pos = match to {
                SeekFrom::Start(p) => p,
                SeekFrom::End(d) => self.len.saturating_add_signed(d),
                SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
            };
            Ok(self.pos)
        }
    }

    type MemDisk<'a> = GptDisk<&'a mut Cursor<Vec<u8>>>;

    const FIXTURE_SECTORS: u64 = 512_000; // sysfs-gpt/block/pmem0/size
    const TAIL_AT: u64 = 511_967; // gpt-pmem0-tail.bin: dd skip=511967 count=33

    fn fixture_disk() -> Sparse {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vm/");
        let head = std::fs::read(format!("{dir}gpt-pmem0-head.bin")).expect("head fixture");
        let tail = std::fs::read(format!("{dir}gpt-pmem0-tail.bin")).expect("tail fixture");
        assert_eq!(head.len(), 34 * 512);
        assert_eq!(tail.len(), 33 * 512);
        Sparse {
            len: FIXTURE_SECTORS * 512,
            pos: 0,
            pieces: vec![(0, head), (TAIL_AT * 512, tail)],
        }
    }

    fn devno() -> Devno {
        Devno {
            major: 259,
            minor: 1,
        }
    }

    #[test]
    fn reads_the_gpt_sgdisk_wrote_on_pmem0() {
        let mut dev = fixture_disk();
        let g = geometry(&mut dev, LogicalBlockSize::Lb512).expect("geometry");
        assert_eq!(g.lbas, FIXTURE_SECTORS);
        let disk = read(dev, g).expect("reads").expect("has a GPT");
        let t = table_of(&disk, devno(), g);
        // sgdisk-p-pmem0.txt: first usable 34, last usable 511966; sgdisk-i1-pmem0.txt.
        assert_eq!(t.first_usable, Sectors(34));
        assert_eq!(t.last_usable, Sectors(511_966));
        assert_eq!(
            t.partitions,
            vec![GptPartition {
                number: 1,
                name: "pmemdata".into(),
                start: Sectors(4096),
                size: Sectors(503_808),
                type_guid: Some("0fc63daf-8483-4772-8e79-3d69d8477de4".into()),
                uuid: Some("29b64463-5e5c-4388-906e-769cdb9279ba".into()),
            }]
        );
    }

    #[test]
    fn a_gpt_that_does_not_fit_the_disk_is_absent() {
        // pmem0's GPT seen on a disk half the size (the view of a striped device's GPT
        // through its first member): the last usable LBA lies beyond the end.
        let mut dev = fixture_disk();
        dev.len = 256_000 * 512;
        dev.pieces.truncate(1);
        let g = geometry(&mut dev, LogicalBlockSize::Lb512).expect("geometry");
        assert!(read(dev, g).expect("reads").is_none());
        // Zeros: no signature, the crate is not even asked.
        let mut zero = Sparse {
            len: 1 << 20,
            pos: 0,
            pieces: vec![],
        };
        let g = geometry(&mut zero, LogicalBlockSize::Lb512).expect("geometry");
        assert!(read(zero, g).expect("reads").is_none());
    }

    #[test]
    fn a_corrupt_header_or_odd_entry_size_is_absent_not_a_panic() {
        for (offset, byte) in [(512 + 85, 1u8), (512 + 20, 1)] {
            let mut dev = fixture_disk();
            dev.pieces[0].1[offset as usize] = byte; // entry size 256 / reserved (CRC)
            dev.pieces.truncate(1); // and no backup
            let g = geometry(&mut dev, LogicalBlockSize::Lb512).expect("geometry");
            assert!(read(dev, g).expect("reads").is_none(), "offset {offset}");
        }
    }

    /// A disk of `lbas` blocks of `lb`, every byte `fill`, given an empty GPT.
    fn new_disk(lb: LogicalBlockSize, lbas: u64, fill: u8) -> (Geometry, Cursor<Vec<u8>>) {
        let g = Geometry { lb, lbas };
        let mut mem = Cursor::new(vec![fill; (lbas * lb.as_u64()) as usize]);
        let h = new_header(g).expect("header");
        write_table(&mut mem, &h, &BTreeMap::new(), g, true).expect("create");
        (g, mem)
    }

    /// create, add 1 and 3, delete 1: entry 3 stays entry 3 (the crate would move it).
    #[test]
    fn entries_keep_their_numbers_through_writes() {
        let (g, mut mem) = new_disk(LogicalBlockSize::Lb512, 16384, 0xAA);
        assert_eq!(&mem.get_ref()[510..512], &[0x55, 0xAA]);
        assert_eq!(mem.get_ref()[450], 0xEE);

        let reread = |mem: &mut Cursor<Vec<u8>>| {
            let disk = read(&mut *mem, g).expect("io").expect("valid GPT");
            table_of(&disk, devno(), g)
        };
        let t = reread(&mut mem);
        assert_eq!(
            (t.first_usable, t.last_usable),
            (Sectors(34), Sectors(16350))
        );
        assert!(t.partitions.is_empty());

        let change = |mem: &mut Cursor<Vec<u8>>, f: &dyn Fn(&mut MemDisk<'_>)| {
            let mut disk = read(&mut *mem, g).expect("io").expect("valid GPT");
            check_fits(disk.header(), g).expect("fits");
            f(&mut disk);
            let (h, e) = (disk.header().clone(), disk.partitions().clone());
            write_table(disk.take_device(), &h, &e, g, false).expect("write");
        };
        change(&mut mem, &|d| {
            assert!(add_entry(d, g, 3, "three", Sectors(8192), Sectors(4096)).expect("add 3"));
            assert!(add_entry(d, g, 1, "one", Sectors(2048), Sectors(4096)).expect("add 1"));
            // Identical again: nothing to do. Overlap, reuse, range, alignment: refused.
            assert!(!add_entry(d, g, 1, "one", Sectors(2048), Sectors(4096)).expect("same"));
            assert!(add_entry(d, g, 2, "x", Sectors(6000), Sectors(4096)).is_err());
            assert!(add_entry(d, g, 1, "x", Sectors(12288), Sectors(8)).is_err());
            assert!(add_entry(d, g, 2, "x", Sectors(16000), Sectors(4096)).is_err());
            assert!(add_entry(d, g, 2, "x", Sectors(20), Sectors(8)).is_err());
            assert!(add_entry(d, g, 129, "x", Sectors(12288), Sectors(8)).is_err());
            assert!(add_entry(d, g, 2, &"n".repeat(37), Sectors(12288), Sectors(8)).is_err());
        });
        let t = reread(&mut mem);
        let got: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.number, p.name.as_str(), p.start.0, p.size.0))
            .collect();
        assert_eq!(got, vec![(1, "one", 2048, 4096), (3, "three", 8192, 4096)]);

        change(&mut mem, &|d| {
            d.remove_partition(1);
        });
        let t = reread(&mut mem);
        let got: Vec<_> = t.partitions.iter().map(|p| (p.number, p.start.0)).collect();
        assert_eq!(got, vec![(3, 8192)]);
        // Entry 3 really is in slot 2 of both arrays (what the kernel numbers by).
        let slot = |lba: usize| &mem.get_ref()[lba * 512 + 2 * 128..lba * 512 + 2 * 128 + 16];
        assert_ne!(slot(2), &[0u8; 16]);
        assert_eq!(slot(2), slot(16384 - 33));
    }

    #[test]
    fn four_k_sectors_convert() {
        let (g, mut mem) = new_disk(LogicalBlockSize::Lb4096, 2048, 0);
        let mut disk = read(&mut mem, g).expect("io").expect("valid");
        assert!(add_entry(&mut disk, g, 1, "p", Sectors(4096), Sectors(4096)).expect("add"));
        assert!(add_entry(&mut disk, g, 2, "p", Sectors(9004), Sectors(8)).is_err());
        let t = table_of(&disk, devno(), g);
        assert_eq!(t.first_usable, Sectors(6 * 8));
        assert_eq!(t.last_usable, Sectors((2048 - 5) * 8 - 1));
        assert_eq!(
            (t.partitions[0].start, t.partitions[0].size),
            (Sectors(4096), Sectors(4096))
        );
    }

    #[test]
    fn kernel_partition_names() {
        assert_eq!(partition_name("pmem0", 2), "pmem0p2");
        assert_eq!(partition_name("sda", 2), "sda2");
        assert_eq!(std::mem::size_of::<BlkpgPartition>(), 152);
        assert_eq!(std::mem::size_of::<BlkpgIoctlArg>(), 24);
    }
}
