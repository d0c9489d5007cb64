//! Lines of a request that names skus with quantities, and their limits.
//!
//! Two services take the same lines: an order's, and the reservation that
//! holds its stock. The limits and the merging rule live here once, so that
//! an order the order service accepts is never refused by inventory for a
//! rule only one side knew. The "`skus` or `items`" request shape, which
//! order and pricing both accept, is chosen here too, with one error text.

use crate::sku::{InvalidSku, Sku};

/// Most units of one sku in one order (and so in one reservation).
pub const MAX_QUANTITY: u64 = 10_000;
/// Most distinct skus in one order (and so in one reservation).
pub const MAX_LINES: usize = 100;

/// Why lines were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    #[error(transparent)]
    Sku(#[from] InvalidSku),
    /// A line's quantity, or the sum for one sku, is outside `1..=MAX_QUANTITY`.
    #[error("quantity {0} is not between 1 and {MAX_QUANTITY}")]
    Quantity(u64),
    /// No lines, or more distinct skus than [`MAX_LINES`].
    #[error("1 to {MAX_LINES} distinct skus are needed")]
    LineCount,
}

/// A number of units of one sku: `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u32);

impl Quantity {
    /// # Errors
    /// When `n` is outside `1..=MAX_QUANTITY`.
    pub fn new(n: u64) -> Result<Self, LinesError> {
        match u32::try_from(n) {
            Ok(q) if (1..=MAX_QUANTITY).contains(&n) => Ok(Self(q)),
            _ => Err(LinesError::Quantity(n)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl From<Quantity> for i64 {
    fn from(q: Quantity) -> Self {
        i64::from(q.0)
    }
}

/// Validated lines: distinct skus, sorted, each with a [`Quantity`].
///
/// Sorted so that two requests for the same lines look the same, and so that
/// concurrent writers take row locks in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<(Sku, Quantity)>);

impl Lines {
    /// Lines naming the same sku are merged (quantities add up).
    ///
    /// # Errors
    /// On a bad sku or quantity (a merged total counts), or a number of
    /// distinct skus outside `1..=MAX_LINES`.
    pub fn parse(raw: &[(String, u64)]) -> Result<Self, LinesError> {
        let mut merged = std::collections::BTreeMap::<Sku, u64>::new();
        for (sku, quantity) in raw {
            let sku = Sku::parse(sku)?;
            Quantity::new(*quantity)?;
            let total = merged.entry(sku).or_default();
            *total = total.saturating_add(*quantity);
        }
        if merged.is_empty() || merged.len() > MAX_LINES {
            return Err(LinesError::LineCount);
        }
        merged
            .into_iter()
            .map(|(sku, total)| Ok((sku, Quantity::new(total)?)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The lines, sorted by sku.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Sku, Quantity)> {
        self.0.iter().map(|(sku, q)| (sku, *q))
    }

    /// The skus, sorted.
    pub fn skus(&self) -> impl ExactSizeIterator<Item = &Sku> {
        self.0.iter().map(|(sku, _)| sku)
    }
}

/// A request's lines in one of its two shapes: one unit of each of `skus`,
/// or `items` with their own quantities.
pub enum SkusOrItems<I> {
    Skus(Vec<String>),
    Items(Vec<I>),
}

/// The refusal of a body with both shapes or neither.
pub const SKUS_OR_ITEMS: &str = "send either \"skus\" or \"items\", not both and not neither";

impl<I> SkusOrItems<I> {
    /// The shape a body chose: exactly one of the two members.
    ///
    /// # Errors
    /// [`SKUS_OR_ITEMS`] when both or neither are present.
    pub fn choose(skus: Option<Vec<String>>, items: Option<Vec<I>>) -> Result<Self, &'static str> {
        match (skus, items) {
            (Some(skus), None) => Ok(Self::Skus(skus)),
            (None, Some(items)) => Ok(Self::Items(items)),
            _ => Err(SKUS_OR_ITEMS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
    }

    #[test]
    fn lines_merge_by_sku_sorted() {
        let lines = Lines::parse(&raw(&[("B", 1), ("A", 2), ("B", 3)])).expect("valid");
        let got: Vec<(&str, u32)> = lines.iter().map(|(s, q)| (s.as_str(), q.get())).collect();
        assert_eq!(got, vec![("A", 2), ("B", 4)]);
    }

    #[test]
    fn bad_lines_say_why() {
        let too_many: Vec<(String, u64)> = (0..=MAX_LINES).map(|n| (format!("S{n}"), 1)).collect();
        let cases = [
            (raw(&[("A", 0)]), LinesError::Quantity(0)),
            (
                raw(&[("A", MAX_QUANTITY + 1)]),
                LinesError::Quantity(MAX_QUANTITY + 1),
            ),
            (
                raw(&[("A", MAX_QUANTITY), ("A", 1)]),
                LinesError::Quantity(MAX_QUANTITY + 1),
            ),
            (raw(&[("A", u64::MAX)]), LinesError::Quantity(u64::MAX)),
            (Vec::new(), LinesError::LineCount),
            (too_many, LinesError::LineCount),
            (
                raw(&[("not a sku", 1)]),
                LinesError::Sku(InvalidSku("not a sku".into())),
            ),
        ];
        for (lines, expected) in cases {
            assert_eq!(Lines::parse(&lines), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn one_shape_or_the_other() {
        let skus = Some(vec!["A".to_owned()]);
        let items = Some(vec![1]);
        assert!(matches!(
            SkusOrItems::choose(skus.clone(), None::<Vec<i32>>),
            Ok(SkusOrItems::Skus(_))
        ));
        assert!(matches!(
            SkusOrItems::choose(None, items.clone()),
            Ok(SkusOrItems::Items(_))
        ));
        assert_eq!(SkusOrItems::choose(skus, items).err(), Some(SKUS_OR_ITEMS));
        assert_eq!(
            SkusOrItems::<i32>::choose(None, None).err(),
            Some(SKUS_OR_ITEMS)
        );
    }
}
