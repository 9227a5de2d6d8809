//! Balance tokens: what a chat costs, a hold reserves, a key's budget
//! allows and an account holds. A type of their own so that they never mix
//! with the other two things called "tokens" here: a model's tokens (what
//! it read and wrote, [`crate::pricing::Usage`], which a price turns into
//! credits) and auth tokens. Whole numbers only; the arithmetic saturates
//! or is checked, never wraps.

use serde::{Deserialize, Serialize};

/// An amount of balance tokens, never negative (a movement of a balance,
/// which can be, is a signed ledger amount: [`Credits::signed`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Credits(u64);

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub const fn new(amount: u64) -> Self {
        Credits(amount)
    }

    /// The amount, for a store attribute, a header or a JSON number.
    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn saturating_add(self, other: Credits) -> Credits {
        Credits(self.0.saturating_add(other.0))
    }

    pub const fn saturating_sub(self, other: Credits) -> Credits {
        Credits(self.0.saturating_sub(other.0))
    }

    pub const fn checked_sub(self, other: Credits) -> Option<Credits> {
        match self.0.checked_sub(other.0) {
            Some(left) => Some(Credits(left)),
            None => None,
        }
    }

    /// As a ledger amount or a DynamoDB number that may be subtracted: an
    /// amount past `i64::MAX` cannot be recorded, so it is refused rather
    /// than wrapped.
    pub fn signed(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// A stored balance or budget read back; a negative one (which no
    /// write of ours makes) is none.
    pub fn from_signed(amount: i64) -> Option<Credits> {
        u64::try_from(amount).ok().map(Credits)
    }
}

impl From<u32> for Credits {
    fn from(amount: u32) -> Self {
        Credits(u64::from(amount))
    }
}

/// For sums and differences that must not overflow (a budget less what was
/// spent), done once in a wider type.
impl From<Credits> for i128 {
    fn from(amount: Credits) -> Self {
        i128::from(amount.0)
    }
}

impl std::fmt::Display for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Credits>>(iter: I) -> Credits {
        iter.fold(Credits::ZERO, Credits::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_or_is_checked_and_never_wraps() {
        let max = Credits::new(u64::MAX);
        assert_eq!(max.saturating_add(Credits::new(1)), max);
        assert_eq!(
            Credits::new(3).saturating_sub(Credits::new(5)),
            Credits::ZERO
        );
        assert_eq!(Credits::new(3).checked_sub(Credits::new(5)), None);
        assert_eq!(
            Credits::new(5).checked_sub(Credits::new(3)),
            Some(Credits::new(2))
        );
        assert_eq!(max.signed(), None);
        assert_eq!(Credits::new(7).signed(), Some(7));
        assert_eq!(Credits::from_signed(-1), None);
        assert_eq!(Credits::from_signed(9), Some(Credits::new(9)));
        let sum: Credits = [1, 2, 3].into_iter().map(Credits::new).sum();
        assert_eq!(sum, Credits::new(6));
        assert_eq!(serde_json::to_string(&Credits::new(42)).unwrap(), "42");
        assert!(Credits::ZERO.is_zero() && !Credits::new(1).is_zero());
        assert_eq!(Credits::new(100).to_string(), "100");
        assert_eq!(i128::from(max), i128::from(u64::MAX));
    }
}
