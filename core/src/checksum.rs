//! The checksum of a decoder file's tensor data: XXH32 (xxHash, 32-bit, seed 0) of the whole
//! data section, stored in the metadata as `checksum = "xxh32:<8 lower-case hex digits>"`.
//!
//! Why XXH32: it is a published, well-defined hash with reference implementations everywhere
//! (`xxhsum -H0`, Python's `xxhash.xxh32`), it needs no table (nothing in RAM or flash), and
//! it uses only 32-bit multiplies and rotates: on a Cortex-M4 about one and a half
//! instructions per byte (BENCHMARKS.md), against about six for a table-driven CRC-32 or the
//! 64-bit multiplies of FNV-1a 64. Every input bit reaches every output bit, unlike FNV-1a over
//! whole words, where flipping the top bit of any two words (two f16 sign bits) cancels out.
//! It detects accidental corruption (flash wear, a bad copy), not tampering.

/// The prefix of the `checksum` metadata value.
pub const PREFIX: &str = "xxh32:";

const P1: u32 = 0x9E37_79B1;
const P2: u32 = 0x85EB_CA77;
const P3: u32 = 0xC2B2_AE3D;
const P4: u32 = 0x27D4_EB2F;
const P5: u32 = 0x1656_67B1;

#[inline(always)]
fn round(acc: u32, lane: u32) -> u32 {
    acc.wrapping_add(lane.wrapping_mul(P2)).rotate_left(13).wrapping_mul(P1)
}

#[inline(always)]
fn word(b: [u8; 4]) -> u32 {
    u32::from_le_bytes(b)
}

/// XXH32 of `bytes` with `seed`, as the xxHash specification defines it (the length enters
/// modulo 2^32). Reads each byte once; no tables, no allocation, no panic.
pub fn xxh32(bytes: &[u8], seed: u32) -> u32 {
    let (stripes, rest) = bytes.as_chunks::<16>();
    let mut h = if stripes.is_empty() {
        seed.wrapping_add(P5)
    } else {
        let mut v = [seed.wrapping_add(P1).wrapping_add(P2), seed.wrapping_add(P2), seed, seed.wrapping_sub(P1)];
        for s in stripes {
            let [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3] = *s;
            v[0] = round(v[0], word([a0, a1, a2, a3]));
            v[1] = round(v[1], word([b0, b1, b2, b3]));
            v[2] = round(v[2], word([c0, c1, c2, c3]));
            v[3] = round(v[3], word([d0, d1, d2, d3]));
        }
        v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7)).wrapping_add(v[2].rotate_left(12)).wrapping_add(v[3].rotate_left(18))
    };
    h = h.wrapping_add(bytes.len() as u32);
    let (words, tail) = rest.as_chunks::<4>();
    for w in words {
        h = h.wrapping_add(word(*w).wrapping_mul(P3)).rotate_left(17).wrapping_mul(P4);
    }
    for &b in tail {
        h = h.wrapping_add(u32::from(b).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

/// The checksum a decoder file stores for its data section `data`.
pub fn of_data(data: &[u8]) -> u32 {
    xxh32(data, 0)
}

/// Reads a `checksum` metadata value (`xxh32:` and exactly 8 hex digits).
pub fn parse(text: &str) -> Option<u32> {
    let hex = text.strip_prefix(PREFIX)?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // From the xxHash and python-xxhash documentation.
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"", P1), 0x36B7_8AE7);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(xxh32(b"Nobody inspects the spammish repetition", 0), 0xE229_3B2F);
    }

    #[test]
    fn parse_is_strict() {
        assert_eq!(parse("xxh32:0123abcd"), Some(0x0123_abcd));
        assert_eq!(parse("xxh32:0123ABCD"), Some(0x0123_abcd));
        for bad in ["xxh32:0123abc", "xxh32:0123abcde", "xxh32:+123abcd", "crc32:0123abcd", "0123abcd", "xxh32:0123abcg"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
