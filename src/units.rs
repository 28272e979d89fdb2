//! Size units: `Bytes` and `Sectors` (512 B) newtypes, and the parser for the size
//! strings operators write ("512", "4K", "2M", "2MiB", "4G", "1T").
//!
//! No bare `u64` size crosses a module boundary: a sector/byte mix-up is a type error.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Bytes per sector as the kernel counts them in dm tables and sysfs `size` of block devices.
pub const SECTOR_BYTES: u64 = 512;
/// Page size DAX needs (block size, partition start/size, chunk granularity).
pub const PAGE: Bytes = Bytes(4096);
/// Huge page (PMD) size: the alignment that lets DAX map 2 MiB pages.
pub const HUGE_PAGE: Bytes = Bytes(2 * 1024 * 1024);

/// A size in bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

/// A size or offset in 512-byte sectors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Bytes {
    /// Whole sectors in this many bytes (rounded down).
    pub fn sectors(self) -> Sectors {
        Sectors(self.0 / SECTOR_BYTES)
    }
    /// True when `self` is a whole multiple of `unit` (a zero unit never divides).
    pub fn is_multiple_of(self, unit: Bytes) -> bool {
        unit.0 != 0 && self.0.is_multiple_of(unit.0)
    }
    /// Round down to a multiple of `unit` (a zero unit leaves the value as is).
    pub fn align_down(self, unit: Bytes) -> Bytes {
        match self.0.checked_div(unit.0) {
            Some(q) => Bytes(q * unit.0),
            None => self,
        }
    }
}

impl Sectors {
    /// The same size in bytes (saturating; no real device is 2^55 sectors).
    pub fn bytes(self) -> Bytes {
        Bytes(self.0.saturating_mul(SECTOR_BYTES))
    }
    /// Round down to a multiple of `unit` (a zero unit leaves the value as is).
    pub fn align_down(self, unit: Sectors) -> Sectors {
        match self.0.checked_div(unit.0) {
            Some(q) => Sectors(q * unit.0),
            None => self,
        }
    }
    /// True when `self` is a whole multiple of `unit` (a zero unit never divides).
    pub fn is_multiple_of(self, unit: Sectors) -> bool {
        unit.0 != 0 && self.0.is_multiple_of(unit.0)
    }
}

/// `impl JsonSchema` for an argument read from any of several JSON forms: the schema's
/// name, then the schema (a `json_schema!` object listing the forms), or its description
/// and the pattern of its string form when the other form is a non-negative integer.
macro_rules! arg_schema {
    ($ty:ty, $name:literal, $description:literal, number or pattern $pattern:literal) => {
        arg_schema!($ty, $name, {
            "description": $description,
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": $pattern}
            ]
        });
    };
    ($ty:ty, $name:literal, $schema:tt) => {
        impl ::schemars::JsonSchema for $ty {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                ::schemars::json_schema!($schema)
            }
        }
    };
}
pub(crate) use arg_schema;

/// Arithmetic of a unit newtype: `+`, `-` between values of the unit, `*` and `/` by a
/// count; the checked and saturating forms for sizes read from a snapshot or the kernel
/// (where a corrupt value must be an error, not an overflow). Plain `+`, `-`, `*` are
/// for values already known to fit, exactly like the `u64` operators they stand for.
macro_rules! unit_arithmetic {
    ($t:ident) => {
        impl std::ops::Add for $t {
            type Output = $t;
            fn add(self, rhs: $t) -> $t {
                $t(self.0 + rhs.0)
            }
        }
        impl std::ops::AddAssign for $t {
            fn add_assign(&mut self, rhs: $t) {
                self.0 += rhs.0;
            }
        }
        impl std::ops::Sub for $t {
            type Output = $t;
            fn sub(self, rhs: $t) -> $t {
                $t(self.0 - rhs.0)
            }
        }
        impl std::ops::SubAssign for $t {
            fn sub_assign(&mut self, rhs: $t) {
                self.0 -= rhs.0;
            }
        }
        impl std::ops::Mul<u64> for $t {
            type Output = $t;
            fn mul(self, rhs: u64) -> $t {
                $t(self.0 * rhs)
            }
        }
        impl std::ops::Div<u64> for $t {
            type Output = $t;
            fn div(self, rhs: u64) -> $t {
                $t(self.0 / rhs)
            }
        }
        impl std::iter::Sum for $t {
            fn sum<I: Iterator<Item = $t>>(iter: I) -> $t {
                iter.fold($t(0), |a, b| a + b)
            }
        }
        impl $t {
            /// Zero.
            pub const ZERO: $t = $t(0);
            /// `self + rhs`, `None` on overflow.
            pub fn checked_add(self, rhs: $t) -> Option<$t> {
                self.0.checked_add(rhs.0).map($t)
            }
            /// `self - rhs`, `None` below zero.
            pub fn checked_sub(self, rhs: $t) -> Option<$t> {
                self.0.checked_sub(rhs.0).map($t)
            }
            /// `self x n`, `None` on overflow.
            pub fn checked_mul(self, n: u64) -> Option<$t> {
                self.0.checked_mul(n).map($t)
            }
            /// `self x n`, at most `u64::MAX`.
            pub fn saturating_mul(self, n: u64) -> $t {
                $t(self.0.saturating_mul(n))
            }
            /// `self + rhs`, at most `u64::MAX`.
            pub fn saturating_add(self, rhs: $t) -> $t {
                $t(self.0.saturating_add(rhs.0))
            }
            /// `self - rhs`, at least zero.
            pub fn saturating_sub(self, rhs: $t) -> $t {
                $t(self.0.saturating_sub(rhs.0))
            }
            /// How many whole `unit`s fit in `self` (`None` for a zero unit).
            pub fn checked_div_unit(self, unit: $t) -> Option<u64> {
                self.0.checked_div(unit.0)
            }
            /// What is left of `self` after whole `unit`s (`None` for a zero unit).
            pub fn checked_rem_unit(self, unit: $t) -> Option<$t> {
                self.0.checked_rem(unit.0).map($t)
            }
            /// Whether this is zero.
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
        }
    };
}

unit_arithmetic!(Bytes);
unit_arithmetic!(Sectors);

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Human form with binary suffixes, exact when possible: 2097152 -> "2M", 3072 -> "3K",
/// 1000 -> "1000".
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 5] = [
            ("P", 1 << 50),
            ("T", 1 << 40),
            ("G", 1 << 30),
            ("M", 1 << 20),
            ("K", 1 << 10),
        ];
        for (suffix, mult) in UNITS {
            if self.0 >= mult && self.0.is_multiple_of(mult) {
                return write!(f, "{}{}", self.0 / mult, suffix);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(pub String);

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse an operator's size: a byte count, optionally with a binary suffix
/// K/M/G/T/P (also KiB/MiB..., KB/MB..., lower case; all mean powers of 1024, as
/// ndctl and the kernel do). Whitespace around is ignored; fractions are refused.
pub fn parse_size(text: &str) -> Result<Bytes, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() {
        return Err(SizeError(format!(
            "{text:?} is not a size (expected bytes or a number with K, M, G, T: \"2M\", \"4G\")"
        )));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| SizeError(format!("{text:?} is too large")))?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => {
            return Err(SizeError(format!(
                "{text:?} has an unknown unit {:?} (use K, M, G, T or P)",
                suffix.trim()
            )))
        }
    };
    n.checked_mul(mult)
        .map(Bytes)
        .ok_or_else(|| SizeError(format!("{text:?} is too large")))
}

/// A size as written in the arguments: an integer (bytes) or a string with a unit.
/// Keeps the user's text so that messages quote it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "serde_json::Value")]
pub struct SizeArg {
    /// The parsed value.
    pub bytes: Bytes,
    /// What the user wrote (for messages).
    pub text: String,
}

impl From<SizeArg> for serde_json::Value {
    fn from(s: SizeArg) -> Self {
        serde_json::Value::String(s.text)
    }
}

impl SizeArg {
    /// A size from a byte count (used for defaults).
    pub fn from_bytes(bytes: Bytes) -> Self {
        SizeArg {
            bytes,
            text: bytes.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for SizeArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(v) => Ok(SizeArg {
                    bytes: Bytes(v),
                    text: v.to_string(),
                }),
                None => Err(D::Error::custom(format!(
                    "{n} is not a size (a non-negative whole number of bytes)"
                ))),
            },
            serde_json::Value::String(s) => parse_size(&s)
                .map(|bytes| SizeArg { bytes, text: s })
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "{other} is not a size (expected bytes or a string such as \"2M\")"
            ))),
        }
    }
}

arg_schema!(
    SizeArg,
    "Size",
    "A size: bytes as an integer, or a string with a binary unit (\"512\", \"4K\", \"2M\", \"2MiB\", \"4G\", \"1T\").",
    number or pattern "^\\s*[0-9]+\\s*([KkMmGgTtPp]([Ii]?[Bb])?|[Bb])?\\s*$"
);
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_operators_write() {
        assert_eq!(parse_size("512"), Ok(Bytes(512)));
        assert_eq!(parse_size("4K"), Ok(Bytes(4096)));
        assert_eq!(parse_size("2M"), Ok(Bytes(2 << 20)));
        assert_eq!(parse_size("2MiB"), Ok(Bytes(2 << 20)));
        assert_eq!(parse_size("4G"), Ok(Bytes(4 << 30)));
        assert_eq!(parse_size("1T"), Ok(Bytes(1 << 40)));
        assert_eq!(parse_size(" 16 m "), Ok(Bytes(16 << 20)));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("3Q").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000T").is_err());
    }

    #[test]
    fn display_round_trips_exact_units() {
        for s in ["2M", "3K", "4G", "1000", "1T"] {
            assert_eq!(parse_size(s).map(|b| b.to_string()), Ok(s.to_string()));
        }
    }

    #[test]
    fn unit_arithmetic() {
        assert_eq!(Sectors(3) + Sectors(4), Sectors(7));
        assert_eq!(Bytes(7) - Bytes(4), Bytes(3));
        assert_eq!(Sectors(3) * 4, Sectors(12));
        assert_eq!(Bytes(12) / 4, Bytes(3));
        assert_eq!(Sectors(u64::MAX).checked_add(Sectors(1)), None);
        assert_eq!(Sectors(1).checked_sub(Sectors(2)), None);
        assert_eq!(Bytes(u64::MAX).checked_mul(2), None);
        assert_eq!(
            Sectors(u64::MAX).saturating_add(Sectors(1)),
            Sectors(u64::MAX)
        );
        assert_eq!(Bytes(1).saturating_sub(Bytes(2)), Bytes::ZERO);
        assert_eq!(Sectors(9).checked_div_unit(Sectors(4)), Some(2));
        assert_eq!(Sectors(9).checked_rem_unit(Sectors(4)), Some(Sectors(1)));
        assert_eq!(Sectors(9).checked_div_unit(Sectors::ZERO), None);
        assert_eq!([Bytes(1), Bytes(2)].into_iter().sum::<Bytes>(), Bytes(3));
        assert_eq!(Bytes(4096).sectors().bytes(), Bytes(4096));
    }

    #[test]
    fn sectors_and_alignment() {
        assert_eq!(HUGE_PAGE.sectors(), Sectors(4096));
        assert_eq!(Sectors(4097).align_down(Sectors(4096)), Sectors(4096));
        assert!(Bytes(8192).is_multiple_of(PAGE));
        assert!(!Bytes(3072).is_multiple_of(PAGE));
        assert!(!Bytes(1).is_multiple_of(Bytes(0)));
    }
}
