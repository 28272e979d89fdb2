//! LVM's checksum (`lib/misc/crc.c`): the reflected CRC-32 of polynomial 0xEDB88320
//! (zlib's table), started from [`INITIAL_CRC`] and stored with no final inversion.
//! It covers the label sector from byte 20, the mda header from byte 4 and the
//! metadata text with its trailing NUL.

/// The value every LVM checksum starts from.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// Continue the checksum `crc` over `bytes` (start with [`INITIAL_CRC`]; a text in two
/// pieces is `calc_crc(calc_crc(INITIAL_CRC, first), second)`).
pub fn calc_crc(crc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(crc, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_crc_is_crc32_without_the_inversions() {
        // With zlib's start and final inversion it is the standard CRC-32 check value.
        assert_eq!(!calc_crc(0xffff_ffff, b"123456789"), 0xcbf4_3926);
        assert_eq!(calc_crc(INITIAL_CRC, b""), INITIAL_CRC);
    }

    #[test]
    fn lvm_crc_continues_over_pieces() {
        let whole = calc_crc(INITIAL_CRC, b"vgp {\nseqno = 3\n}\n\0");
        let split = calc_crc(calc_crc(INITIAL_CRC, b"vgp {\nseq"), b"no = 3\n}\n\0");
        assert_eq!(whole, split);
    }
}
