//! A sorted set held in a vector, for the values of the cache's indexes: most hold one to
//! three entries, where a `BTreeSet`'s first node alone takes about 280 bytes (11 slots).

use std::borrow::Borrow;

/// A sorted set of `T` in a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallSet<T>(Vec<T>);

impl<T> Default for SmallSet<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Ord> SmallSet<T> {
    /// Adds `item` unless the set holds it.
    pub fn insert(&mut self, item: T) {
        if let Err(at) = self.0.binary_search(&item) {
            self.0.insert(at, item);
        }
    }

    /// Removes the item equal to `item`, if held.
    pub fn remove<Q>(&mut self, item: &Q)
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if let Ok(at) = self.0.binary_search_by(|held| held.borrow().cmp(item)) {
            self.0.remove(at);
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The items, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_each_item_once_in_order() {
        let mut set = SmallSet::<Box<str>>::default();
        for name in ["b", "a", "c", "a"] {
            set.insert(name.into());
        }
        let held: Vec<&str> = set.iter().map(|n| &**n).collect();
        assert_eq!(held, ["a", "b", "c"]);
        set.remove("b");
        set.remove("not held");
        let held: Vec<&str> = set.iter().map(|n| &**n).collect();
        assert_eq!(held, ["a", "c"]);
        set.remove("a");
        set.remove("c");
        assert!(set.is_empty());
    }
}
