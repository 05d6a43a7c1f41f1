//! [`Bound`]: a min or max kept for a column, and the rules that keep it true when the value
//! is too long to store.
//!
//! As Parquet does for its column index, strings and binaries longer than
//! [`MAX_BOUND_BYTES`] are truncated:
//! - a lower bound is cut to a prefix (on a UTF-8 character boundary): a prefix is `<=` every
//!   value that starts with it;
//! - an upper bound is cut to a prefix whose last character (byte, for binaries) is then
//!   incremented, which is `>` every value starting with the prefix. If no character can be
//!   incremented (the prefix is all `char::MAX` / `0xFF`), there is no upper bound.
//!
//! Floating-point bounds are widened around zero (`+0.0` as a minimum becomes `-0.0`, `-0.0`
//! as a maximum becomes `+0.0`), as the Parquet specification asks, since an ordering of
//! floats need not tell the two zeros apart.
//!
//! A truncated or widened bound is not `exact`: it may not be a value of the column, so
//! DataFusion may use it to estimate and prune, never to answer `min()`/`max()`.

use datafusion::common::ScalarValue;

/// Longest string or binary bound kept, in bytes.
pub const MAX_BOUND_BYTES: usize = 64;

/// A lower or upper bound of a column's non-NULL values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub value: ScalarValue,
    /// The bound is a value of the column (not truncated or widened).
    pub exact: bool,
}

impl Bound {
    /// `value` as a lower bound, truncated if needed; `None` if it cannot be kept.
    pub fn lower(value: ScalarValue) -> Option<Self> {
        if value.is_null() {
            return None;
        }
        match value {
            ScalarValue::Float32(Some(v)) => {
                Some(Self::float(ScalarValue::Float32(Some(if v == 0.0 {
                    -0.0
                } else {
                    v
                }))))
            }
            ScalarValue::Float64(Some(v)) => {
                Some(Self::float(ScalarValue::Float64(Some(if v == 0.0 {
                    -0.0
                } else {
                    v
                }))))
            }
            // Half floats are not given bounds (see `collector::has_bounds`).
            ScalarValue::Float16(_) => None,
            other => truncate(other, Direction::Down),
        }
    }

    /// `value` as an upper bound, truncated and rounded up if needed; `None` if it cannot be
    /// kept.
    pub fn upper(value: ScalarValue) -> Option<Self> {
        if value.is_null() {
            return None;
        }
        match value {
            ScalarValue::Float32(Some(v)) => {
                Some(Self::float(ScalarValue::Float32(Some(if v == 0.0 {
                    0.0
                } else {
                    v
                }))))
            }
            ScalarValue::Float64(Some(v)) => {
                Some(Self::float(ScalarValue::Float64(Some(if v == 0.0 {
                    0.0
                } else {
                    v
                }))))
            }
            ScalarValue::Float16(_) => None,
            other => truncate(other, Direction::Up),
        }
    }

    /// Float bounds are never exact: an ordering that cannot tell `-0.0` from `+0.0`, or
    /// places NaN, could disagree with the one `min()` uses.
    fn float(value: ScalarValue) -> Self {
        Self {
            value,
            exact: false,
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Down,
    Up,
}

fn truncate(value: ScalarValue, direction: Direction) -> Option<Bound> {
    let exact = |value| Some(Bound { value, exact: true });
    let cut = |value| {
        Some(Bound {
            value,
            exact: false,
        })
    };
    match value {
        ScalarValue::Utf8(Some(s)) if s.len() > MAX_BOUND_BYTES => {
            truncate_str(&s, direction).and_then(|s| cut(ScalarValue::Utf8(Some(s))))
        }
        ScalarValue::LargeUtf8(Some(s)) if s.len() > MAX_BOUND_BYTES => {
            truncate_str(&s, direction).and_then(|s| cut(ScalarValue::LargeUtf8(Some(s))))
        }
        ScalarValue::Utf8View(Some(s)) if s.len() > MAX_BOUND_BYTES => {
            truncate_str(&s, direction).and_then(|s| cut(ScalarValue::Utf8View(Some(s))))
        }
        ScalarValue::Binary(Some(b)) if b.len() > MAX_BOUND_BYTES => {
            truncate_bytes(&b, direction).and_then(|b| cut(ScalarValue::Binary(Some(b))))
        }
        ScalarValue::LargeBinary(Some(b)) if b.len() > MAX_BOUND_BYTES => {
            truncate_bytes(&b, direction).and_then(|b| cut(ScalarValue::LargeBinary(Some(b))))
        }
        ScalarValue::BinaryView(Some(b)) if b.len() > MAX_BOUND_BYTES => {
            truncate_bytes(&b, direction).and_then(|b| cut(ScalarValue::BinaryView(Some(b))))
        }
        // A fixed-size binary keeps its width, so a shorter bound would change its type.
        ScalarValue::FixedSizeBinary(_, Some(b)) if b.len() > MAX_BOUND_BYTES => None,
        other => exact(other),
    }
}

/// `s` cut to at most [`MAX_BOUND_BYTES`] on a character boundary; for an upper bound, with
/// its last incrementable character incremented.
fn truncate_str(s: &str, direction: Direction) -> Option<String> {
    let mut end = MAX_BOUND_BYTES.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &s[..end];
    match direction {
        Direction::Down => Some(prefix.to_string()),
        Direction::Up => {
            let mut chars: Vec<char> = prefix.chars().collect();
            while let Some(last) = chars.pop() {
                if let Some(next) = next_char(last) {
                    chars.push(next);
                    return Some(chars.into_iter().collect());
                }
            }
            None
        }
    }
}

/// The smallest character greater than `c`, if any (skipping the surrogate gap).
fn next_char(c: char) -> Option<char> {
    let mut code = c as u32 + 1;
    if (0xD800..=0xDFFF).contains(&code) {
        code = 0xE000;
    }
    char::from_u32(code)
}

/// `b` cut to [`MAX_BOUND_BYTES`]; for an upper bound, with its last byte below `0xFF`
/// incremented (and the bytes after it dropped).
fn truncate_bytes(b: &[u8], direction: Direction) -> Option<Vec<u8>> {
    let mut prefix = b[..MAX_BOUND_BYTES.min(b.len())].to_vec();
    match direction {
        Direction::Down => Some(prefix),
        Direction::Up => {
            while let Some(last) = prefix.pop() {
                if last < u8::MAX {
                    prefix.push(last + 1);
                    return Some(prefix);
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(s: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(s.to_string()))
    }

    fn value(bound: &Option<Bound>) -> String {
        match bound.as_ref().map(|b| &b.value) {
            Some(ScalarValue::Utf8(Some(s))) => s.clone(),
            other => panic!("not a string bound: {other:?}"),
        }
    }

    #[test]
    fn short_values_are_exact() {
        let lower = Bound::lower(utf8("abc"));
        assert_eq!(
            lower,
            Some(Bound {
                value: utf8("abc"),
                exact: true
            })
        );
        assert_eq!(Bound::upper(utf8("abc")), lower);
        assert_eq!(Bound::lower(ScalarValue::Int32(None)), None);
    }

    #[test]
    fn long_lower_bound_is_a_prefix_below_the_value() {
        let long = "m".repeat(100);
        let lower = Bound::lower(utf8(&long));
        assert_eq!(value(&lower).len(), MAX_BOUND_BYTES);
        assert!(value(&lower).as_str() <= long.as_str());
        assert!(!lower.as_ref().is_some_and(|b| b.exact));
    }

    #[test]
    fn long_upper_bound_is_rounded_up_above_every_value_with_its_prefix() {
        let long = format!("{}{}", "m".repeat(64), "zzz");
        let upper = value(&Bound::upper(utf8(&long)));
        assert_eq!(upper, format!("{}n", "m".repeat(63)));
        assert!(upper.as_str() > long.as_str());
        // Every string sharing the 64-byte prefix is below it, however it continues.
        let other = format!("{}{}", "m".repeat(64), "\u{10FFFF}".repeat(10));
        assert!(upper.as_str() > other.as_str());
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        // 63 ASCII bytes, then a 3-byte character straddling the 64-byte cut.
        let long = format!("{}€{}", "a".repeat(63), "b".repeat(10));
        let lower = value(&Bound::lower(utf8(&long)));
        assert_eq!(lower, "a".repeat(63));
        let upper = value(&Bound::upper(utf8(&long)));
        assert_eq!(upper, format!("{}b", "a".repeat(62)));
        assert!(upper.as_str() > long.as_str());
    }

    #[test]
    fn an_upper_bound_that_cannot_be_rounded_up_is_dropped() {
        let long = "\u{10FFFF}".repeat(30);
        assert_eq!(Bound::upper(utf8(&long)), None);
        let max_char_then_a = format!("a{}", "\u{10FFFF}".repeat(30));
        assert_eq!(value(&Bound::upper(utf8(&max_char_then_a))), "b");
        let before_surrogates = format!("{}{}", "\u{D7FF}".repeat(22), "x");
        let upper = value(&Bound::upper(utf8(&before_surrogates)));
        assert!(upper.ends_with('\u{E000}'));
        assert!(upper.as_str() > before_surrogates.as_str());
    }

    #[test]
    fn binary_upper_bounds_increment_the_last_byte_below_ff() {
        let mut long = vec![7u8; 70];
        long[63] = 0xFF;
        let upper = Bound::upper(ScalarValue::Binary(Some(long.clone())));
        let Some(Bound {
            value: ScalarValue::Binary(Some(bytes)),
            exact: false,
        }) = upper
        else {
            panic!("expected a truncated binary bound");
        };
        assert_eq!(bytes.len(), 63);
        assert_eq!(bytes[62], 8);
        assert!(bytes > long);
        assert_eq!(
            Bound::upper(ScalarValue::Binary(Some(vec![0xFF; 80]))),
            None
        );
        let lower = Bound::lower(ScalarValue::Binary(Some(long.clone())));
        assert!(lower.is_some_and(
            |b| matches!(b.value, ScalarValue::Binary(Some(v)) if v.len() == 64 && v <= long)
        ));
    }

    #[test]
    fn float_zero_bounds_are_widened() {
        assert_eq!(
            Bound::lower(ScalarValue::Float64(Some(0.0))).map(|b| b.value),
            Some(ScalarValue::Float64(Some(-0.0)))
        );
        assert_eq!(
            Bound::upper(ScalarValue::Float64(Some(-0.0))).map(|b| b.value),
            Some(ScalarValue::Float64(Some(0.0)))
        );
        assert!(Bound::lower(ScalarValue::Float32(Some(1.5))).is_some_and(|b| !b.exact));
    }
}
