//! [`HyperLogLog`]: the distinct-count sketch kept per file and column.
//!
//! Precision 12: 4096 one-byte registers, a standard error of about 1.6 %. Values are hashed
//! with xxh3 (64 bits) over their canonical bytes (see `column_stats::collector`); the top 12
//! bits of the hash pick a register, which keeps the longest run of leading zeros seen in the
//! other 52 bits. Two sketches of the same column merge by taking the larger register, so the
//! sketch of a table is the merge of its files' sketches.
//!
//! The estimate is the classic one (Flajolet et al. 2007) with the `alpha_m` bias correction,
//! and linear counting while it is at most `2.5 m` and some register is still empty; with
//! 64-bit hashes no large-range correction is needed.
//!
//! Small inputs are counted exactly: up to [`EXACT_LIMIT`] distinct hashes are kept as such
//! (as HyperLogLog++ keeps a sparse, more precise form), so a column with a few dozen values
//! reports exactly that many rather than an estimate a few percent off, and a small file's
//! sketch allocates no registers. Switching over replays the hashes into the registers, so a
//! sketch is the same whichever way its values arrived.
//!
//! Serialized form (what the catalog and the wire keep): one tag byte, then either the
//! distinct hashes (`EXACT`, u64 LE each), the 4096 registers (`DENSE`) or
//! `(index: u16 LE, value: u8)` triples of the non-empty registers (`SPARSE`), whichever
//! applies and is smaller, so a small file's sketch costs a few hundred bytes.

use xxhash_rust::xxh3::xxh3_64;

/// Bits of the hash that select a register.
pub const PRECISION: u32 = 12;
/// Number of registers.
pub const REGISTERS: usize = 1 << PRECISION;

/// Distinct hashes counted exactly before the sketch relies on its registers alone.
pub const EXACT_LIMIT: usize = 256;

const DENSE: u8 = 1;
const SPARSE: u8 = 2;
const EXACT: u8 = 3;

/// A HyperLogLog sketch with [`REGISTERS`] one-byte registers.
#[derive(Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    repr: Repr,
}

/// How a sketch holds what it saw. Small sketches allocate no registers, which matters for
/// the catalog snapshot holding one per file and column.
#[derive(Clone, PartialEq, Eq)]
enum Repr {
    /// The distinct hashes seen, sorted; at most [`EXACT_LIMIT`] of them.
    Exact(Vec<u64>),
    /// [`REGISTERS`] registers, once more than [`EXACT_LIMIT`] distinct hashes were seen.
    Registers(Box<[u8]>),
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HyperLogLog(~{})", self.estimate())
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers holding `hashes`.
fn registers_of(hashes: &[u64]) -> Box<[u8]> {
    let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
    for hash in hashes {
        add_to_registers(&mut registers, *hash);
    }
    registers
}

#[inline]
fn add_to_registers(registers: &mut [u8], hash: u64) {
    let index = (hash >> (64 - PRECISION)) as usize;
    let rest = hash << PRECISION;
    // Position of the first 1 bit among the remaining 64 - PRECISION bits (1-based).
    let rank = if rest == 0 {
        (64 - PRECISION + 1) as u8
    } else {
        (rest.leading_zeros() + 1) as u8
    };
    if let Some(register) = registers.get_mut(index)
        && rank > *register
    {
        *register = rank;
    }
}

impl HyperLogLog {
    /// An empty sketch (estimate 0).
    pub fn new() -> Self {
        Self {
            repr: Repr::Exact(Vec::new()),
        }
    }

    /// Adds one value given by its canonical bytes.
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        self.add_hash(xxh3_64(bytes));
    }

    /// Adds one value given by its 64-bit hash.
    #[inline]
    pub fn add_hash(&mut self, hash: u64) {
        match &mut self.repr {
            Repr::Registers(registers) => add_to_registers(registers, hash),
            Repr::Exact(hashes) => {
                if let Err(at) = hashes.binary_search(&hash) {
                    if hashes.len() < EXACT_LIMIT {
                        hashes.insert(at, hash);
                    } else {
                        let mut registers = registers_of(hashes);
                        add_to_registers(&mut registers, hash);
                        self.repr = Repr::Registers(registers);
                    }
                }
            }
        }
    }

    /// Folds `other` into `self`: the sketch of the union of both inputs.
    pub fn merge(&mut self, other: &HyperLogLog) {
        match (&mut self.repr, &other.repr) {
            (Repr::Exact(mine), Repr::Exact(theirs)) => {
                mine.extend_from_slice(theirs);
                mine.sort_unstable();
                mine.dedup();
                if mine.len() > EXACT_LIMIT {
                    self.repr = Repr::Registers(registers_of(mine));
                }
            }
            (Repr::Exact(mine), Repr::Registers(theirs)) => {
                let mut registers = theirs.clone();
                for hash in mine.iter() {
                    add_to_registers(&mut registers, *hash);
                }
                self.repr = Repr::Registers(registers);
            }
            (Repr::Registers(mine), Repr::Exact(theirs)) => {
                for hash in theirs {
                    add_to_registers(mine, *hash);
                }
            }
            (Repr::Registers(mine), Repr::Registers(theirs)) => {
                for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                    if *theirs > *mine {
                        *mine = *theirs;
                    }
                }
            }
        }
    }

    /// The estimated number of distinct values added.
    pub fn estimate(&self) -> u64 {
        let registers = match &self.repr {
            Repr::Exact(hashes) => return hashes.len() as u64,
            Repr::Registers(registers) => registers,
        };
        let m = REGISTERS as f64;
        let mut sum = 0.0f64;
        let mut zeros = 0usize;
        for &register in registers.iter() {
            sum += 1.0 / (1u64 << register) as f64;
            if register == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            // Linear counting: far more accurate than the raw estimate for small counts.
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// The serialized sketch (see the module docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let registers = match &self.repr {
            Repr::Exact(hashes) => {
                let mut out = Vec::with_capacity(1 + hashes.len() * 8);
                out.push(EXACT);
                for hash in hashes {
                    out.extend_from_slice(&hash.to_le_bytes());
                }
                return out;
            }
            Repr::Registers(registers) => registers,
        };
        let used = registers.iter().filter(|r| **r != 0).count();
        if 1 + used * 3 < 1 + REGISTERS {
            let mut out = Vec::with_capacity(1 + used * 3);
            out.push(SPARSE);
            for (index, &value) in registers.iter().enumerate() {
                if value != 0 {
                    out.extend_from_slice(&(index as u16).to_le_bytes());
                    out.push(value);
                }
            }
            out
        } else {
            let mut out = Vec::with_capacity(1 + REGISTERS);
            out.push(DENSE);
            out.extend_from_slice(registers);
            out
        }
    }

    /// Reads a sketch written by [`Self::to_bytes`]; `None` if the bytes are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (&tag, body) = bytes.split_first()?;
        let max_rank = (64 - PRECISION + 1) as u8;
        let repr = match tag {
            EXACT if body.len() % 8 == 0 && body.len() / 8 <= EXACT_LIMIT => {
                let mut hashes: Vec<u64> = body
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                hashes.sort_unstable();
                hashes.dedup();
                Repr::Exact(hashes)
            }
            DENSE if body.len() == REGISTERS => {
                if body.iter().any(|r| *r > max_rank) {
                    return None;
                }
                Repr::Registers(body.to_vec().into_boxed_slice())
            }
            SPARSE if body.len() % 3 == 0 => {
                let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
                for entry in body.chunks_exact(3) {
                    let index = u16::from_le_bytes([entry[0], entry[1]]) as usize;
                    let value = entry[2];
                    if index >= REGISTERS || value > max_rank {
                        return None;
                    }
                    registers[index] = value;
                }
                Repr::Registers(registers)
            }
            _ => return None,
        };
        Some(Self { repr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(range: std::ops::Range<u64>) -> HyperLogLog {
        let mut sketch = HyperLogLog::new();
        for v in range {
            sketch.add_bytes(&v.to_le_bytes());
        }
        sketch
    }

    fn assert_close(estimate: u64, truth: u64, tolerance: f64) {
        let error = (estimate as f64 - truth as f64).abs() / truth as f64;
        assert!(
            error <= tolerance,
            "estimate {estimate} for {truth} distinct values is off by {:.2} %",
            error * 100.0
        );
    }

    #[test]
    fn empty_sketch_estimates_zero() {
        assert_eq!(HyperLogLog::new().estimate(), 0);
    }

    #[test]
    fn small_counts_are_exact_and_stay_exact_when_merged() {
        assert_eq!(sketch_of(0..52).estimate(), 52);
        let mut a = sketch_of(0..200);
        a.merge(&sketch_of(100..250));
        assert_eq!(a.estimate(), 250);
        // Past the limit the registers take over, as if every value had been added to one.
        a.merge(&sketch_of(250..400));
        assert_eq!(a, sketch_of(0..400));
        assert_close(a.estimate(), 400, 0.02);
    }

    #[test]
    fn accurate_at_a_thousand() {
        assert_close(sketch_of(0..1_000).estimate(), 1_000, 0.02);
    }

    #[test]
    fn accurate_at_a_hundred_thousand() {
        assert_close(sketch_of(0..100_000).estimate(), 100_000, 0.05);
    }

    #[test]
    fn accurate_at_a_million() {
        assert_close(sketch_of(0..1_000_000).estimate(), 1_000_000, 0.05);
    }

    #[test]
    fn duplicates_do_not_count() {
        let mut sketch = HyperLogLog::new();
        for _ in 0..50 {
            for v in 0u64..2_000 {
                sketch.add_bytes(&v.to_le_bytes());
            }
        }
        assert_close(sketch.estimate(), 2_000, 0.03);
    }

    #[test]
    fn merge_is_the_union() {
        // Overlapping halves: the union has 150 000 distinct values, not 200 000.
        let mut a = sketch_of(0..100_000);
        let b = sketch_of(50_000..150_000);
        a.merge(&b);
        assert_close(a.estimate(), 150_000, 0.05);
        // Merging is exactly the sketch of the union.
        assert_eq!(a, sketch_of(0..150_000));
    }

    #[test]
    fn round_trips_sparse_and_dense() {
        for sketch in [
            HyperLogLog::new(),
            sketch_of(0..10),
            sketch_of(0..1_000),
            sketch_of(0..100_000),
        ] {
            let bytes = sketch.to_bytes();
            assert_eq!(HyperLogLog::from_bytes(&bytes), Some(sketch));
        }
        assert!(sketch_of(0..10).to_bytes().len() < 100);
        assert!(sketch_of(0..1_000).to_bytes().len() < 4_000);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(HyperLogLog::from_bytes(&[]), None);
        assert_eq!(HyperLogLog::from_bytes(&[DENSE, 1, 2]), None);
        assert_eq!(HyperLogLog::from_bytes(&[SPARSE, 0xff, 0xff, 1]), None);
        assert_eq!(HyperLogLog::from_bytes(&[9]), None);
        assert_eq!(HyperLogLog::from_bytes(&[EXACT, 1, 2, 3]), None);
    }
}
