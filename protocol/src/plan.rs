//! How a file of known size is cut into parts.
//!
//! Every part but the last has the same size (Cloudflare R2 requires it, and it makes a part's byte
//! range a pure function of its number). The part size starts at the caller's preference (or, with
//! none, at [`default_part_size`] for the file's size), must be within S3's limits, and grows when
//! the file would otherwise need more than 10,000 parts — a fixed 5 MiB part size caps uploads at
//! about 48.8 GiB, one of the failures of older uploaders.

use std::ops::Range;

use crate::limits::{
    DEFAULT_MAX_PART_SIZE, DEFAULT_PART_COUNT, DEFAULT_PART_SIZE, MAX_OBJECT_SIZE, MAX_PART_NUMBER,
    MAX_PART_SIZE, MIN_PART_SIZE, PART_SIZE_ALIGN,
};

/// The part size the client prefers for a file of `size` bytes when none is configured: about
/// [`DEFAULT_PART_COUNT`] parts, each between [`DEFAULT_PART_SIZE`] (8 MiB) and
/// [`DEFAULT_MAX_PART_SIZE`] (16 MiB), rounded up to a whole MiB. So files up to 128 MiB go in
/// 8 MiB parts and files from 256 MiB in 16 MiB parts; [`PartPlan::new`] still grows the size
/// for files that would need more than 10,000 parts.
///
/// Every part is a request with a fixed cost in the browser (on loopback, halving the part count
/// of a 1 GiB upload made it 4–10 % faster; BENCHMARKS.md), while the bytes in flight are what a
/// closed page or a failed PUT costs to send again: 16 MiB keeps that to 96 MiB with 6 parts in
/// flight, and a file of 256 MiB and more is still cut into 16 parts or more, enough to keep 6
/// connections busy to the end.
pub fn default_part_size(size: u64) -> u64 {
    size.div_ceil(DEFAULT_PART_COUNT)
        .next_multiple_of(PART_SIZE_ALIGN)
        .clamp(DEFAULT_PART_SIZE, DEFAULT_MAX_PART_SIZE)
}

/// The parts of one upload: `part_count` parts of `part_size` bytes, the last one possibly shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    /// Size of the whole object in bytes.
    pub size: u64,
    /// Size of every part but the last.
    pub part_size: u64,
    /// Number of parts, 1..=10,000. A 0-byte object has one empty part.
    pub part_count: u32,
}

/// Why no plan exists for a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The object is larger than S3 allows.
    #[error("file size {size} exceeds S3's 5 TiB ({max} bytes) object limit")]
    TooLarge { size: u64, max: u64 },
    /// The caller asked for a part size S3 would refuse.
    #[error("part size {part_size} is outside S3's limits ({min}..={max} bytes)")]
    PartSizeOutOfRange { part_size: u64, min: u64, max: u64 },
}

impl PartPlan {
    /// Plans `size` bytes, using `preferred_part_size` unless the file needs larger parts.
    ///
    /// A preferred size outside 5 MiB..=5 GiB is an error rather than silently changed: the caller
    /// configured it and should hear that S3 will not take it.
    pub fn new(size: u64, preferred_part_size: u64) -> Result<Self, PlanError> {
        check_limits(size, preferred_part_size)?;
        let smallest_fitting = size.div_ceil(u64::from(MAX_PART_NUMBER));
        let part_size = if smallest_fitting > preferred_part_size {
            // 5 TiB / 10,000 rounded up to a MiB is 525 MiB, far below the 5 GiB part limit.
            smallest_fitting.next_multiple_of(PART_SIZE_ALIGN)
        } else {
            preferred_part_size
        };
        debug_assert!(part_size <= MAX_PART_SIZE);
        // At most 10,000 by construction, so the cast cannot truncate.
        let part_count = size.div_ceil(part_size).max(1) as u32;
        Ok(Self {
            size,
            part_size,
            part_count,
        })
    }

    /// Rebuilds a plan from a part size that was chosen earlier (by a resume record or an upload
    /// token), checking that it is one S3 accepts for this size.
    pub fn with_part_size(size: u64, part_size: u64) -> Result<Self, PlanError> {
        check_limits(size, part_size)?;
        let count = size.div_ceil(part_size).max(1);
        if count > u64::from(MAX_PART_NUMBER) {
            return Err(PlanError::PartSizeOutOfRange {
                part_size,
                min: size.div_ceil(u64::from(MAX_PART_NUMBER)),
                max: MAX_PART_SIZE,
            });
        }
        Ok(Self {
            size,
            part_size,
            part_count: count as u32,
        })
    }

    /// Byte range of part `number` (1-based) within the object.
    ///
    /// # Panics
    /// If `number` is 0 or greater than `part_count`: callers iterate over `1..=part_count`.
    pub fn range(&self, number: u32) -> Range<u64> {
        assert!(
            (1..=self.part_count).contains(&number),
            "part {number} outside plan of {} parts",
            self.part_count
        );
        let start = u64::from(number - 1) * self.part_size;
        let end = (start + self.part_size).min(self.size);
        start..end
    }

    /// Size in bytes of part `number` (1-based).
    pub fn part_len(&self, number: u32) -> u64 {
        let r = self.range(number);
        r.end - r.start
    }

    /// Part numbers of this plan, in order.
    pub fn numbers(&self) -> impl Iterator<Item = u32> + use<> {
        1..=self.part_count
    }
}

/// The limits every plan starts from: a part size S3 accepts and an object size it can store.
fn check_limits(size: u64, part_size: u64) -> Result<(), PlanError> {
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
        return Err(PlanError::PartSizeOutOfRange {
            part_size,
            min: MIN_PART_SIZE,
            max: MAX_PART_SIZE,
        });
    }
    if size > MAX_OBJECT_SIZE {
        return Err(PlanError::TooLarge {
            size,
            max: MAX_OBJECT_SIZE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{DEFAULT_PART_SIZE, GIB, MIB, TIB};

    fn check_invariants(plan: &PartPlan) {
        assert!(plan.part_count >= 1 && plan.part_count <= MAX_PART_NUMBER);
        assert!(plan.part_size >= MIN_PART_SIZE && plan.part_size <= MAX_PART_SIZE);
        let total: u64 = plan.numbers().map(|n| plan.part_len(n)).sum();
        assert_eq!(total, plan.size);
        for n in 1..plan.part_count {
            assert_eq!(plan.part_len(n), plan.part_size, "non-last parts are equal");
        }
        assert!(plan.part_len(plan.part_count) <= plan.part_size);
        if plan.size > 0 {
            assert!(plan.part_len(plan.part_count) > 0, "no empty trailing part");
        }
    }

    #[test]
    fn empty_file_is_one_empty_part() {
        let p = PartPlan::new(0, 5 * MIB).unwrap();
        assert_eq!(p.part_count, 1);
        assert_eq!(p.range(1), 0..0);
        check_invariants(&p);
    }

    #[test]
    fn one_byte() {
        let p = PartPlan::new(1, 5 * MIB).unwrap();
        assert_eq!((p.part_count, p.range(1)), (1, 0..1));
        check_invariants(&p);
    }

    #[test]
    fn exactly_five_mib_is_one_part() {
        let p = PartPlan::new(5 * MIB, 5 * MIB).unwrap();
        assert_eq!(p.part_count, 1);
        check_invariants(&p);
    }

    #[test]
    fn five_mib_plus_one_is_two_parts() {
        let p = PartPlan::new(5 * MIB + 1, 5 * MIB).unwrap();
        assert_eq!(p.part_count, 2);
        assert_eq!(p.range(2), 5 * MIB..5 * MIB + 1);
        check_invariants(&p);
    }

    #[test]
    fn file_over_48_8_gib_grows_the_part_size() {
        // 48.9 GiB in 5 MiB parts would need 10,015 parts.
        let size = 489 * GIB / 10;
        assert!(size.div_ceil(5 * MIB) > 10_000);
        let p = PartPlan::new(size, 5 * MIB).unwrap();
        assert!(p.part_size > 5 * MIB);
        assert_eq!(p.part_size % MIB, 0);
        check_invariants(&p);
    }

    #[test]
    fn five_tib_is_valid() {
        let p = PartPlan::new(5 * TIB, DEFAULT_PART_SIZE).unwrap();
        assert_eq!(p.part_size, 525 * MIB);
        assert_eq!(p.part_count, 9_987);
        check_invariants(&p);
    }

    #[test]
    fn default_part_size_grows_from_8_to_16_mib_with_the_file() {
        for (size, want) in [
            (0, 8 * MIB),
            (1, 8 * MIB),
            (128 * MIB, 8 * MIB),
            (128 * MIB + 1, 9 * MIB),
            (200 * MIB, 13 * MIB),
            (256 * MIB - 1, 16 * MIB),
            (256 * MIB, 16 * MIB),
            (GIB, 16 * MIB),
            (5 * TIB, 16 * MIB),
        ] {
            assert_eq!(default_part_size(size), want, "size {size}");
        }
    }

    #[test]
    fn default_part_size_plans_every_size() {
        // From 256 MiB up: at least 16 parts of 16 MiB, until 10,000 parts force larger ones.
        assert_eq!(
            PartPlan::new(GIB, default_part_size(GIB))
                .unwrap()
                .part_count,
            64
        );
        let big = PartPlan::new(5 * TIB, default_part_size(5 * TIB)).unwrap();
        assert_eq!(big.part_size, 525 * MIB);
        for size in [
            0,
            1,
            5 * MIB,
            100 * MIB,
            129 * MIB + 7,
            300 * MIB,
            200 * GIB,
        ] {
            let p = PartPlan::new(size, default_part_size(size)).unwrap();
            assert!(p.part_count <= 16 || p.part_size >= 16 * MIB, "{p:?}");
            check_invariants(&p);
        }
    }

    #[test]
    fn more_than_five_tib_is_rejected() {
        assert_eq!(
            PartPlan::new(5 * TIB + 1, DEFAULT_PART_SIZE),
            Err(PlanError::TooLarge {
                size: 5 * TIB + 1,
                max: 5 * TIB
            })
        );
    }

    #[test]
    fn part_size_outside_limits_is_rejected() {
        assert!(matches!(
            PartPlan::new(10, 4 * MIB),
            Err(PlanError::PartSizeOutOfRange { .. })
        ));
        assert!(matches!(
            PartPlan::new(10, 5 * GIB + 1),
            Err(PlanError::PartSizeOutOfRange { .. })
        ));
    }

    #[test]
    fn with_part_size_refuses_a_plan_over_10000_parts() {
        assert!(PartPlan::with_part_size(10_000 * 5 * MIB, 5 * MIB).is_ok());
        assert!(PartPlan::with_part_size(10_000 * 5 * MIB + 1, 5 * MIB).is_err());
    }

    #[test]
    fn invariants_hold_across_sizes() {
        let sizes = [
            2,
            MIB,
            64 * MIB,
            64 * MIB + 7,
            GIB,
            50 * GIB,
            100 * GIB + 3,
            TIB,
            5 * TIB - 1,
        ];
        for size in sizes {
            for pref in [5 * MIB, 8 * MIB, 16 * MIB, 100 * MIB + 1, 5 * GIB] {
                check_invariants(&PartPlan::new(size, pref).unwrap());
            }
        }
    }
}
