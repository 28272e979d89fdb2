//! The reader against real LVM2 bytes (tests/fixtures/lvm/, made by lvm 2.03.16; its
//! README has the commands and what `pvs`/`vgs`/`lvs`/`pvck` reported), and against
//! those bytes damaged.

use super::crc::{calc_crc, INITIAL_CRC};
use super::*;
use crate::units::{Bytes, Sectors};
use std::io;

use super::fixtures::{ORPHAN, VGD_PV0, VGP_PV0, VGP_PV1, VGW_PV0};

/// Every fixture was cut from a 256 MiB loop device.
const DEV_SIZE: u64 = 256 << 20;
/// What the probe reads from the start of each device.
const HEAD: usize = 0x11000;

/// A fixture as the whole device it was cut from: its bytes, then zeros (the README:
/// nothing past the fixture's end was non-zero).
fn device(bytes: &[u8]) -> Vec<u8> {
    bytes.to_vec()
}

/// A positioned read of `dev` (zeros past its stored bytes, up to [`DEV_SIZE`]).
fn reader(dev: &[u8]) -> impl FnMut(u64, usize) -> io::Result<Vec<u8>> + '_ {
    move |offset, len| {
        let end = offset
            .checked_add(len as u64)
            .filter(|&end| end <= DEV_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past the device"))?;
        let mut out = vec![0u8; len];
        let (from, to) = (offset as usize, (end as usize).min(dev.len()));
        if from < to {
            out[..to - from].copy_from_slice(&dev[from..to]);
        }
        Ok(out)
    }
}

fn head(dev: &[u8]) -> Vec<u8> {
    let mut h = dev[..dev.len().min(HEAD)].to_vec();
    h.resize(HEAD, 0);
    h
}

fn read(dev: &[u8]) -> Result<Option<PvOnDisk>, PvReadError> {
    read_pv("/dev/loop0", &head(dev), &mut reader(dev))
}

fn pv(dev: &[u8]) -> PvOnDisk {
    read(dev).expect("reads").expect("is a PV")
}

fn put_u32(dev: &mut [u8], at: usize, v: u32) {
    dev[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(dev: &mut [u8], at: usize, v: u64) {
    dev[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Store a good label CRC for the label in `sector`, as LVM would have.
fn fix_label_crc(dev: &mut [u8], sector: usize) {
    let s = sector * 512;
    let crc = calc_crc(INITIAL_CRC, &dev[s + 20..s + 512]);
    put_u32(dev, s + 16, crc);
}

/// Store a good CRC for the mda header at `at`.
fn fix_mda_crc(dev: &mut [u8], at: usize) {
    let crc = calc_crc(INITIAL_CRC, &dev[at + 4..at + 512]);
    put_u32(dev, at, crc);
}

fn text_of(mda: &Mda) -> &str {
    match &mda.content {
        MdaContent::Text { text, .. } => text,
        other => panic!("no text: {other:?}"),
    }
}

fn error(dev: &[u8]) -> LvmError {
    read(dev).expect_err("an error").error
}

// ---- what lvm reported ----

#[test]
fn lvm_labels_read_as_pvck_and_pvs_reported() {
    // (fixture, sector, pvs pv_uuid, pe_start, mda size, pvck label crc, mda crc)
    let cases = [
        (
            VGP_PV0,
            1,
            "xF2XA4-lZKO-PKba-OwDq-3Gdr-cJPC-jcS068",
            2097152,
            2093056,
            0xd2e2_e326,
            0x1b15_ef89,
        ),
        (
            VGP_PV1,
            1,
            "fBURPP-EAn0-unZc-wofc-3bEA-S8hR-I9huof",
            2097152,
            2093056,
            0x842b_490a,
            0x1b15_ef89,
        ),
        (
            VGD_PV0,
            1,
            "96b3Nm-GCwe-bBHd-p1cp-mG4e-kMBr-IbKVH5",
            1048576,
            1044480,
            0x42f8_3931,
            0xb3aa_f0d2,
        ),
        (
            VGW_PV0,
            1,
            "ylW4aV-Kha0-SUWl-GiJm-wXS5-G9F3-u6QPjj",
            36864,
            32768,
            0x49f0_b419,
            0xc631_e907,
        ),
        (
            ORPHAN,
            3,
            "yGX2IW-5v7t-jGAk-WBmy-d8L7-w5ov-Ectw88",
            1048576,
            1044480,
            0xcaf2_fdb5,
            0xdb8e_d616,
        ),
    ];
    for (dev, sector, uuid, pe_start, mda_size, label_crc, mda_crc) in cases {
        let label = read_label(&head(dev)).expect("reads").expect("a label");
        assert_eq!(label.sector, sector, "{uuid}");
        assert_eq!(label.uuid(), uuid);
        assert_eq!(label.pv_uuid, uuid.replace('-', ""));
        assert_eq!(label.device_size, Bytes(DEV_SIZE));
        assert_eq!(label.pe_start(), Some(Bytes(pe_start)), "{uuid}");
        assert_eq!(
            label.data_areas,
            vec![DiskArea {
                offset: Bytes(pe_start),
                size: Bytes(0)
            }]
        );
        assert_eq!(
            label.metadata_areas,
            vec![DiskArea {
                offset: Bytes(4096),
                size: Bytes(mda_size)
            }]
        );
        let ext = label.extension.as_ref().expect("an extension");
        assert_eq!((ext.version, ext.bootloader_areas.len()), (2, 0));
        assert_eq!(
            ext.in_use(),
            dev != ORPHAN,
            "{uuid}: pvck's pv_header_extension.flags"
        );
        // The CRCs the reader checked are the ones pvck printed.
        assert_eq!(
            le_u32(dev, sector as usize * 512 + 16),
            Some(label_crc),
            "{uuid}"
        );
        assert_eq!(le_u32(dev, 4096), Some(mda_crc), "{uuid}");
    }
}

#[test]
fn lvm_striped_vg_with_2m_data_alignment_as_lvm_reported() {
    let pv = pv(VGP_PV0);
    assert_eq!(pv.mdas.len(), 1);
    let mda = &pv.mdas[0];
    assert_eq!(mda.header.start, Bytes(4096));
    assert_eq!(mda.header.size, Bytes(2093056));
    assert_eq!(mda.header.precommitted, None);
    // pvck: "metadata text at 7168 crc 0x51b9ab40 # vgname vgp seqno 3": not at the
    // start of the area (512), after two earlier writes.
    let MdaContent::Text { locn, wrapped, .. } = &mda.content else {
        panic!("text")
    };
    assert_eq!(
        *locn,
        RawLocn {
            offset: Bytes(3072),
            size: Bytes(1497),
            checksum: 0x51b9_ab40,
            flags: 0
        }
    );
    assert_eq!(*wrapped, Bytes(0));
    assert!(text_of(mda).ends_with("creation_time = 1796346791\t# Fri Dec  4 01:13:11 2026\n\n"));

    let vg = pv.vg.expect("a VG");
    assert_eq!(vg.name, "vgp");
    assert_eq!(vg.id, "P2YlIl-DoYe-fWY3-ky9O-NMmI-3zIj-1KhTDX");
    assert_eq!(vg.seqno, 3);
    assert_eq!(vg.format.as_deref(), Some("lvm2"));
    assert_eq!(vg.status, ["RESIZEABLE", "READ", "WRITE"]);
    assert_eq!(vg.extent_size, Sectors(8192));
    assert_eq!(vg.extent_bytes(), Bytes(4194304)); // vgs vg_extent_size
    assert_eq!(vg.physical_volumes.len(), 2);
    for (name, id, device) in [
        (
            "pv0",
            "xF2XA4-lZKO-PKba-OwDq-3Gdr-cJPC-jcS068",
            "/dev/loop0",
        ),
        (
            "pv1",
            "fBURPP-EAn0-unZc-wofc-3bEA-S8hR-I9huof",
            "/dev/loop1",
        ),
    ] {
        let p = vg.pv(name).expect(name);
        assert_eq!(p.id, id);
        assert_eq!(vg.pv_by_id(id).map(|p| p.name.as_str()), Some(name));
        assert_eq!(p.device.as_deref(), Some(device));
        assert_eq!(p.pe_start, Sectors(4096)); // pvs pe_start 2097152B
        assert_eq!(p.pe_start.bytes(), Bytes(2097152));
        assert_eq!(p.pe_count, 63); // pvs pv_pe_count
        assert_eq!(p.dev_size.bytes(), Bytes(DEV_SIZE)); // pvs dev_size
        assert_eq!(p.status, ["ALLOCATABLE"]);
    }
    assert_eq!(
        vg.logical_volumes
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["lvs", "lvl"]
    );
    // lvs: "segtype":"striped", "stripes":"2", "stripe_size":"2097152B",
    // "seg_size_pe":"16", "devices":"/dev/loop0(0),/dev/loop1(0)", lv_size 67108864B.
    let lvs = vg.lv("lvs").expect("lvs");
    assert_eq!(lvs.id, "tBS1by-Sh0G-f0vp-SLV9-B0Mf-CKOl-QtorXp");
    assert_eq!(lvs.status, ["READ", "WRITE", "VISIBLE"]);
    assert_eq!(lvs.extent_count(), 16);
    assert_eq!(vg.extent_bytes().0 * lvs.extent_count(), 67108864);
    assert_eq!(
        lvs.segments,
        [Segment {
            name: "segment1".into(),
            start_extent: 0,
            extent_count: 16,
            segtype: "striped".into(),
            stripe_count: Some(2),
            stripe_size: Some(Sectors(4096)),
            stripes: vec![
                Stripe {
                    pv: "pv0".into(),
                    offset: 0
                },
                Stripe {
                    pv: "pv1".into(),
                    offset: 0
                }
            ],
        }]
    );
    assert_eq!(
        lvs.segments[0].stripe_size.map(Sectors::bytes),
        Some(Bytes(2097152))
    );
    // seg_pe_ranges /dev/loop0:0-7 /dev/loop1:0-7
    assert_eq!(lvs.segments[0].area_extents(), 8);
    // lvl: linear, "seg_size_pe":"8", "devices":"/dev/loop0(8)", lv_size 33554432B.
    let lvl = vg.lv("lvl").expect("lvl");
    assert_eq!(lvl.id, "aXQiHo-z3s1-Zec2-2gKA-zN1b-R8dx-chxaCA");
    assert_eq!(
        lvl.segments,
        [Segment {
            name: "segment1".into(),
            start_extent: 0,
            extent_count: 8,
            segtype: "striped".into(),
            stripe_count: Some(1),
            stripe_size: None,
            stripes: vec![Stripe {
                pv: "pv0".into(),
                offset: 8
            }],
        }]
    );
}

#[test]
fn lvm_both_pvs_of_the_striped_vg_carry_the_same_metadata() {
    let (a, b) = (pv(VGP_PV0), pv(VGP_PV1));
    assert_eq!(a.vg, b.vg);
    assert_eq!(text_of(&a.mdas[0]), text_of(&b.mdas[0]));
    assert_ne!(a.label.pv_uuid, b.label.pv_uuid);
}

#[test]
fn lvm_default_alignment_puts_the_data_area_at_1m() {
    let pv = pv(VGD_PV0);
    assert_eq!(pv.label.pe_start(), Some(Bytes(1048576))); // pvs pe_start 1048576B
    let vg = pv.vg.expect("a VG");
    assert_eq!((vg.name.as_str(), vg.seqno), ("vgd", 2));
    assert_eq!(vg.id, "D0H0F5-n5yx-hU2V-eXHB-EXs4-m5lr-TpvOh5");
    assert_eq!(vg.extent_size, Sectors(8192));
    let p = &vg.physical_volumes[0];
    assert_eq!(
        (p.name.as_str(), p.pe_start, p.pe_count),
        ("pv0", Sectors(2048), 63)
    );
    assert_eq!(p.pe_start.bytes(), pv.label.pe_start().expect("pe_start"));
    // lvd: linear, "seg_size_pe":"25", "devices":"/dev/loop2(0)", lv_size 104857600B.
    let lvd = vg.lv("lvd").expect("lvd");
    assert_eq!(lvd.id, "ZKYBcG-Woy4-KRFH-BKmB-82qM-4h6P-bFJSea");
    assert_eq!(vg.extent_bytes().0 * lvd.extent_count(), 104857600);
    assert_eq!(lvd.segments[0].stripe_count, Some(1));
    assert_eq!(
        lvd.segments[0].stripes,
        [Stripe {
            pv: "pv0".into(),
            offset: 0
        }]
    );
    let MdaContent::Text { locn, .. } = &pv.mdas[0].content else {
        panic!("text")
    };
    assert_eq!(
        (locn.offset, locn.size, locn.checksum),
        (Bytes(1536), Bytes(1030), 0x2a89_14a0)
    );
}

#[test]
fn lvm_metadata_text_that_wrapped_is_read_from_both_ends_of_the_area() {
    // pvck: "raw_locn[0] ... # commit wrapped", offset 32256, size 1307, crc 0x7390372f:
    // 512 bytes at the end of the 32 KiB area, 795 at byte 512 of it.
    let mut asked = Vec::new();
    let mut read_at = reader(VGW_PV0);
    let area = DiskArea {
        offset: Bytes(4096),
        size: Bytes(32768),
    };
    let mda = read_mda(area, &mut |offset, len| {
        asked.push((offset, len));
        read_at(offset, len)
    })
    .expect("reads");
    assert_eq!(asked, [(4096, 512), (4096 + 32256, 512), (4096 + 512, 795)]);
    let MdaContent::Text {
        locn,
        wrapped,
        text,
    } = &mda.content
    else {
        panic!("text")
    };
    assert_eq!(
        *locn,
        RawLocn {
            offset: Bytes(32256),
            size: Bytes(1307),
            checksum: 0x7390_372f,
            flags: 0
        }
    );
    assert_eq!(*wrapped, Bytes(795));
    assert!(
        text.starts_with("vgw {\nid = \"YwSmBc-E3UY-iFCb-TuJS-wOlo-1Yg9-or6es3\"\nseqno = 51\n")
    );
    assert_eq!(text.len(), 1306);

    let vg = pv(VGW_PV0).vg.expect("a VG");
    assert_eq!((vg.name.as_str(), vg.seqno), ("vgw", 51)); // vgs vg_seqno 51
    assert_eq!(vg.physical_volumes[0].pe_start, Sectors(72)); // pvs pe_start 36864B
    let names: Vec<_> = vg.logical_volumes.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lvw", "lvt25"]);
    // lvw /dev/loop3(0) 4 extents; lvt25 /dev/loop3(4) 2 extents.
    let at = |lv: &str| {
        let s = &vg.lv(lv).expect(lv).segments[0];
        (s.stripes[0].offset, s.extent_count)
    };
    assert_eq!((at("lvw"), at("lvt25")), ((0, 4), (4, 2)));
    assert_eq!(
        vg.lv("lvt25").map(|l| l.id.as_str()),
        Some("6bPuZF-wwgs-EdqO-fWo6-Bzpn-F3XD-qU39zg")
    );
}

#[test]
fn lvm_pv_in_no_vg_with_its_label_in_sector_3() {
    let pv = pv(ORPHAN);
    assert_eq!(pv.label.sector, 3);
    assert_eq!(pv.mdas.len(), 1);
    assert_eq!(pv.mdas[0].header.committed, None);
    assert_eq!(pv.mdas[0].content, MdaContent::Empty);
    assert_eq!(pv.vg, None);
}

#[test]
fn lvm_device_without_a_label_is_no_pv() {
    let mut dev = device(VGP_PV0);
    dev[512..520].copy_from_slice(b"LABELTWO");
    assert_eq!(read(&dev), Ok(None));
}

#[test]
fn lvm_label_moved_to_sector_2_is_found() {
    // The CRC does not cover the sector number: only it changes.
    let mut dev = device(VGP_PV0);
    dev.copy_within(512..1024, 1024);
    dev[512..1024].fill(0);
    put_u64(&mut dev, 1024 + 8, 2);
    assert_eq!(pv(&dev).label.sector, 2);
    assert_eq!(pv(&dev).vg, pv(VGP_PV0).vg);
}

#[test]
fn lvm_label_with_a_bad_crc_is_passed_over_for_a_good_one_as_lvm_does() {
    let mut dev = device(VGP_PV0);
    dev.copy_within(512..1024, 1024);
    put_u64(&mut dev, 1024 + 8, 2);
    dev[512 + 100] ^= 1;
    assert_eq!(pv(&dev).label.sector, 2);
}

// ---- damaged bytes ----

#[test]
fn lvm_damaged_bytes_under_a_checksum_are_an_error() {
    // (fixture, byte damaged, bits flipped in it, what the checksum covers, where that
    // starts, the checksum pvck printed, the pieces (start, length) the checksum covers)
    let cases = [
        // A letter of the PV uuid.
        (
            VGP_PV0,
            512 + 40,
            0x20,
            "label sector",
            512,
            0xd2e2_e326,
            vec![(512 + 20, 512 - 20)],
        ),
        // raw_locn[0].size.
        (
            VGP_PV0,
            4096 + 48,
            1,
            "mda_header",
            4096,
            0x1b15_ef89,
            vec![(4096 + 4, 512 - 4)],
        ),
        (
            VGP_PV0,
            7168 + 20,
            1,
            "metadata text",
            7168,
            0x51b9_ab40,
            vec![(7168, 1497)],
        ),
        // In the 795 bytes that wrapped to byte 512 of the area.
        (
            VGW_PV0,
            4096 + 512 + 700,
            1,
            "metadata text",
            36352,
            0x7390_372f,
            vec![(36352, 512), (4096 + 512, 795)],
        ),
    ];
    for (fixture, at, bits, what, offset, stored, covered) in cases {
        let mut dev = device(fixture);
        dev[at] ^= bits;
        // Through the reader: the fixture ends before a text's trailing NUL.
        let mut read_at = reader(&dev);
        let computed = covered.iter().fold(INITIAL_CRC, |crc, &(start, len)| {
            calc_crc(crc, &read_at(start, len).expect("reads"))
        });
        assert_eq!(
            error(&dev),
            LvmError::Checksum {
                what,
                offset,
                stored,
                computed
            },
            "byte {at}"
        );
    }
}

#[test]
fn lvm_fields_the_format_does_not_allow_are_named() {
    // u64 fields: (byte, the value written there, the field).
    let integers: [(usize, u64, &str); 7] = [
        (512 + 8, 0, "label_header.sector"), // sector 1's label says 0 (not under its CRC)
        (4096 + 24, 8192, "mda_header.start"),
        (4096 + 32, 1_000_000, "mda_header.size"),
        (4096 + 40, 0x3000_0000, "raw_locn[0].offset"), // past the area
        (4096 + 40, 100, "raw_locn[0].offset"),         // inside the header
        (4096 + 48, 0, "raw_locn[0].size"),             // nothing
        (4096 + 48, 2093056 - 511, "raw_locn[0].size"), // more than the area holds besides its header
    ];
    // Other fields: (byte, the bytes written there, the field, its value as shown).
    let others: [(usize, &[u8], &str, &str); 4] = [
        (512 + 24, b"LVM1 001", "label_header.type", "\"LVM1 001\""),
        // A character LVM does not put in ids.
        (
            512 + 32,
            b"-",
            "pv_header.pv_uuid",
            "\"-F2XA4lZKOPKbaOwDq3GdrcJPCjcS068\"",
        ),
        (
            4096 + 4 + 3,
            b"X",
            "mda_header.magic",
            "\" LVX2 x[5A%r0N*>\"",
        ),
        (4096 + 20, &2u32.to_le_bytes(), "mda_header.version", "2"),
    ];
    let integers =
        integers.map(|(at, n, field)| (at, n.to_le_bytes().to_vec(), field, n.to_string()));
    let others =
        others.map(|(at, bytes, field, value)| (at, bytes.to_vec(), field, value.to_string()));
    for (at, bytes, field, value) in integers.into_iter().chain(others) {
        let mut dev = device(VGP_PV0);
        dev[at..at + bytes.len()].copy_from_slice(&bytes);
        // Only the field is wrong: the label's and the mda header's checksums are made
        // good again.
        fix_label_crc(&mut dev, 1);
        fix_mda_crc(&mut dev, 4096);
        let e = error(&dev);
        // The structure holding the field (the label, the mda header) is its sector.
        let offset = (at - at % 512) as u64;
        assert!(
            matches!(&e, LvmError::BadField { field: f, offset: o, value: v, .. }
                if *f == field && *o == offset && *v == value),
            "{field}: {e:?}"
        );
        assert!(e.to_string().contains(&value), "{e}");
    }
}
#[test]
fn lvm_label_cut_short_is_an_error() {
    let e = read_label(&VGP_PV0[..700]).expect_err("cut short");
    assert_eq!(
        e,
        LvmError::Truncated {
            what: "label sector",
            offset: 512,
            needed: 512,
            available: 188
        }
    );
}

#[test]
fn lvm_label_lists_without_an_end_are_an_error() {
    let mut dev = device(VGP_PV0);
    // Metadata areas from byte 616 to the end of the sector, none ending the list.
    for at in (616..1024 - 16).step_by(16) {
        put_u64(&mut dev, at, 4096);
        put_u64(&mut dev, at + 8, 512);
    }
    dev[1024 - 16..1024].fill(1);
    fix_label_crc(&mut dev, 1);
    assert_eq!(
        error(&dev),
        LvmError::Unterminated {
            what: "pv_header metadata areas",
            offset: 512
        }
    );
}

#[test]
fn lvm_huge_text_length_is_refused_before_anything_is_read() {
    let mut dev = device(VGP_PV0);
    put_u64(&mut dev, 4096 + 48, 1 << 40);
    fix_mda_crc(&mut dev, 4096);
    let mut largest = 0;
    let mut read_at = reader(&dev);
    let e = read_pv("/dev/loop0", &head(&dev), &mut |offset, len| {
        largest = largest.max(len);
        read_at(offset, len)
    })
    .expect_err("refused");
    assert_eq!(
        e.error,
        LvmError::TooLarge {
            what: "metadata text",
            offset: 7168,
            size: 1 << 40,
            limit: MAX_METADATA_TEXT
        }
    );
    assert_eq!(largest, 512);
}

#[test]
fn lvm_ignored_metadata_area_is_not_read() {
    let mut dev = device(VGP_PV0);
    put_u32(&mut dev, 4096 + 60, 1); // raw_locn[0].flags = RAW_LOCN_IGNORED
    fix_mda_crc(&mut dev, 4096);
    let pv = pv(&dev);
    assert_eq!(pv.mdas[0].content, MdaContent::Ignored);
    assert_eq!(pv.vg, None);
}

#[test]
fn lvm_read_failures_and_short_reads_are_errors() {
    let dev = device(VGP_PV0);
    let e = read_pv("/dev/pmem0", &head(&dev), &mut |_, _| {
        Err(io::Error::other("EIO"))
    })
    .expect_err("fails");
    assert_eq!(
        e.error,
        LvmError::Read {
            offset: 4096,
            len: 512,
            error: "EIO".into()
        }
    );
    let mut read_at = reader(&dev);
    let e = read_pv("/dev/pmem0", &head(&dev), &mut |offset, len| {
        let mut b = read_at(offset, len)?;
        b.truncate(len.min(1000));
        Ok(b)
    })
    .expect_err("short");
    assert_eq!(
        e.error,
        LvmError::ShortRead {
            offset: 7168,
            wanted: 1497,
            got: 1000
        }
    );
}

#[test]
fn lvm_errors_name_the_device_and_the_offset() {
    let mut dev = device(VGP_PV0);
    dev[7168 + 20] ^= 1;
    let e = read_pv("/dev/pmem1", &head(&dev), &mut reader(&dev)).expect_err("damaged");
    assert_eq!(e.device, "/dev/pmem1");
    let shown = e.to_string();
    assert!(
        shown.starts_with("LVM on /dev/pmem1: metadata text at byte 7168: checksum"),
        "{shown}"
    );
}

// ---- garbage in the text ----

/// `dev` with its metadata text replaced by `text` (same place), checksums made good,
/// so that only the text is wrong.
fn with_text(dev: &[u8], text: &str) -> Vec<u8> {
    let mut dev = dev.to_vec();
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    let at = 4096 + 3072;
    dev.resize(dev.len().max(at + bytes.len()), 0);
    dev[at..at + bytes.len()].copy_from_slice(&bytes);
    put_u64(&mut dev, 4096 + 48, bytes.len() as u64);
    put_u32(&mut dev, 4096 + 56, calc_crc(INITIAL_CRC, &bytes));
    fix_mda_crc(&mut dev, 4096);
    dev
}

fn vgp_text() -> String {
    text_of(&pv(VGP_PV0).mdas[0]).to_string()
}

fn field_error(text: &str) -> (String, FieldProblem) {
    match parse_vg(text) {
        Err(LvmError::Field { path, problem }) => (path, problem),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lvm_garbage_text_with_a_good_checksum_is_an_error() {
    let dev = with_text(VGP_PV0, "vgp {\nid = \"x\"\n\u{7f}\u{1b}[garbage{{{\n");
    assert_eq!(pv(&with_text(VGP_PV0, &vgp_text())).vg, pv(VGP_PV0).vg);
    let e = error(&dev);
    assert!(matches!(e, LvmError::Syntax { line: 3, .. }), "{e:?}");
    let e = error(&with_text(VGP_PV0, "just words"));
    assert!(matches!(e, LvmError::Syntax { line: 1, .. }), "{e:?}");
    let e = error(&with_text(VGP_PV0, ""));
    assert_eq!(
        e,
        LvmError::Field {
            path: "contents".into(),
            problem: FieldProblem::Missing
        }
    );
}

#[test]
fn lvm_missing_and_mistyped_fields_are_named_by_path() {
    let text = vgp_text();
    let cases = [
        (
            "extent_size = 8192\n",
            "",
            "vgp/extent_size",
            FieldProblem::Missing,
        ),
        (
            "seqno = 3",
            "seqno = -3",
            "vgp/seqno",
            FieldProblem::WrongType {
                expected: "a non-negative integer",
            },
        ),
        (
            "seqno = 3",
            "seqno = \"3\"",
            "vgp/seqno",
            FieldProblem::WrongType {
                expected: "a non-negative integer",
            },
        ),
        (
            "pe_start = 4096\npe_count = 63\n}\n\npv1",
            "pe_count = 63\n}\n\npv1",
            "vgp/physical_volumes/pv0/pe_start",
            FieldProblem::Missing,
        ),
        (
            "type = \"striped\"\nstripe_count = 2\nstripe_size = 4096\n",
            "type = \"striped\"\nstripe_count = 2\n",
            "vgp/logical_volumes/lvs/segment1/stripe_size",
            FieldProblem::Missing,
        ),
        (
            "segment_count = 1\n\nsegment1 {\nstart_extent = 0\nextent_count = 16",
            "segment_count = 2\n\nsegment1 {\nstart_extent = 0\nextent_count = 16",
            "vgp/logical_volumes/lvs/segment_count",
            FieldProblem::Invalid {
                why: "is 2, but 1 segments follow".into(),
            },
        ),
        (
            "contents = \"Text Format Volume Group\"",
            "contents = \"Something Else\"",
            "contents",
            FieldProblem::Invalid {
                why: "is \"Something Else\", not \"Text Format Volume Group\"".into(),
            },
        ),
        (
            "seqno = 3\n",
            "seqno = 3\nseqno = 4\n",
            "vgp/seqno",
            FieldProblem::Duplicate,
        ),
        (
            "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]",
            "status = [\"READ\", 1]",
            "vgp/status",
            FieldProblem::WrongType {
                expected: "an array of strings",
            },
        ),
    ];
    for (from, to, path, problem) in cases {
        assert!(text.contains(from), "{from:?}");
        let broken = text.replacen(from, to, 1);
        assert_eq!(
            field_error(&broken),
            (path.to_string(), problem),
            "{from:?} -> {to:?}"
        );
    }
}

#[test]
fn lvm_stripes_that_do_not_add_up_are_errors() {
    let text = vgp_text();
    let invalid = |from: &str, to: &str| {
        assert!(text.contains(from), "{from:?}");
        match field_error(&text.replacen(from, to, 1)) {
            (path, FieldProblem::Invalid { why }) => format!("{path}: {why}"),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        invalid("stripe_count = 2", "stripe_count = 3"),
        "vgp/logical_volumes/lvs/segment1/stripes: lists 2 stripes; stripe_count is 3"
    );
    assert_eq!(
        invalid("\"pv1\", 0", "\"pv9\", 0"),
        "vgp/logical_volumes/lvs/segment1/stripes: names \"pv9\", not a PV of the VG"
    );
    assert_eq!(
        invalid("\"pv1\", 0", "\"pv1\", 60"),
        "vgp/logical_volumes/lvs/segment1/stripes: 8 extents from extent 60 of pv1 run past its 63 extents"
    );
    assert_eq!(
        invalid("extent_count = 16", "extent_count = 15"),
        "vgp/logical_volumes/lvs/segment1/extent_count: 15 is not a multiple of stripe_count 2"
    );
    let (path, problem) = field_error(&text.replacen("\"pv1\", 0", "\"pv1\"", 1));
    assert_eq!(path, "vgp/logical_volumes/lvs/segment1/stripes");
    assert_eq!(
        problem,
        FieldProblem::WrongType {
            expected: "an array of PV names and extent offsets"
        }
    );
}

#[test]
fn lvm_text_with_two_vgs_or_none_is_an_error() {
    let text = vgp_text();
    let two = text.replacen("# Generated", "vgq {\n}\n# Generated", 1);
    assert_eq!(
        field_error(&two),
        (
            "vgq".to_string(),
            FieldProblem::Invalid {
                why: "a second volume group in one metadata text".into()
            }
        )
    );
    assert_eq!(
        field_error("contents = \"Text Format Volume Group\"\nversion = 1\n"),
        (
            "(top level)".to_string(),
            FieldProblem::Invalid {
                why: "holds no volume group section".into()
            }
        )
    );
}

/// A `pvcreate` stopped after its label and before its metadata area's header: the
/// label reads, the area's header sector is all zeros (never written), no VG, and that
/// is not damage. A header with anything else in it still is.
#[test]
fn lvm_pv_whose_metadata_area_was_never_written() {
    let mut dev = ORPHAN.to_vec();
    let at = usize::try_from(pv(ORPHAN).mdas[0].area.offset.0).expect("offset");
    dev.resize(dev.len().max(at + 512), 0);
    dev[at..at + 512].fill(0);
    let pv = pv(&dev);
    assert!(pv.mdas.is_empty());
    assert_eq!(pv.unwritten_mdas.len(), 1);
    assert_eq!(pv.unwritten_mdas[0].offset.0, at as u64);
    assert_eq!(pv.vg, None);
    let (found, vg) =
        crate::actual::lvm::Pv::found(crate::actual::Devno { major: 7, minor: 0 }, &pv);
    assert!(found.unfinished && found.error.is_none() && vg.is_none());
    // one byte left of a header is a damaged one, not an unwritten one
    dev[at + 100] = 1;
    assert!(matches!(
        read(&dev),
        Err(PvReadError {
            error: LvmError::Checksum { .. },
            ..
        })
    ));
}

/// A `vgcreate` stopped after marking its PVs used (`PV_EXT_USED` in the label's
/// extension) and before writing metadata on them: no VG, the label says used. It holds
/// nothing, as a PV whose metadata area was never written: unfinished. The same PV not
/// marked used is a plain orphan.
#[test]
fn lvm_pv_marked_used_without_any_metadata_is_unfinished() {
    let mut p = pv(ORPHAN);
    assert_eq!(p.vg, None);
    let dev = crate::actual::Devno { major: 7, minor: 0 };
    assert!(!crate::actual::lvm::Pv::found(dev, &p).0.unfinished);
    let ext = p
        .label
        .extension
        .as_mut()
        .expect("LVM 2.03 writes the extension");
    ext.flags |= crate::lvm::label::PV_EXT_USED;
    let (found, vg) = crate::actual::lvm::Pv::found(dev, &p);
    assert!(found.unfinished && found.error.is_none() && vg.is_none());
}
