//! Which Services front a workload: those in its namespace whose non-empty selector is a
//! subset of its pod template labels.

use std::collections::BTreeMap;

/// True when `selector` is non-empty and every pair of it is in `template_labels`.
pub fn selector_matches_template<'a, K, V>(
    selector: impl IntoIterator<Item = (&'a K, &'a V)>,
    template_labels: &BTreeMap<String, String>,
) -> bool
where
    K: AsRef<str> + ?Sized + 'a,
    V: AsRef<str> + ?Sized + 'a,
{
    let mut pairs = selector.into_iter().peekable();
    pairs.peek().is_some()
        && pairs
            .all(|(k, v)| template_labels.get(k.as_ref()).map(String::as_str) == Some(v.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn subset_selectors_match_and_empty_ones_do_not() {
        let template = labels(&[("app", "llm"), ("role", "prefill")]);
        assert!(selector_matches_template(
            &labels(&[("app", "llm")]),
            &template
        ));
        assert!(selector_matches_template(&template, &template));
        assert!(!selector_matches_template(
            &labels(&[("app", "other")]),
            &template
        ));
        assert!(!selector_matches_template(
            &labels(&[("app", "llm"), ("tier", "x")]),
            &template
        ));
        assert!(!selector_matches_template(&labels(&[]), &template));
    }
}
