//! Room in a bounded map: the entry least worth keeping goes before a new key comes in.

use std::collections::HashMap;
use std::hash::Hash;

/// Before `key` is inserted into `map`, which holds at most `capacity` entries: when `key` is
/// new and the map is full, removes the entry with the smallest `age` (the oldest, or least
/// recently used).
pub fn make_room<K, V, A>(map: &mut HashMap<K, V>, key: &K, capacity: usize, age: impl Fn(&V) -> A)
where
    K: Hash + Eq + Clone,
    A: Ord,
{
    if map.contains_key(key) || map.len() < capacity {
        return;
    }
    let oldest = map
        .iter()
        .min_by_key(|(_, value)| age(value))
        .map(|(key, _)| key.clone());
    if let Some(oldest) = oldest {
        map.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_key_in_a_full_map_evicts_and_it_evicts_the_oldest() {
        let mut map = HashMap::from([("a", 3), ("b", 1), ("c", 2)]);
        make_room(&mut map, &"a", 3, |age| *age);
        assert_eq!(map.len(), 3, "a key already there needs no room");
        make_room(&mut map, &"d", 4, |age| *age);
        assert_eq!(map.len(), 3, "not full");
        make_room(&mut map, &"d", 3, |age| *age);
        assert!(!map.contains_key("b") && map.len() == 2, "{map:?}");
    }
}
