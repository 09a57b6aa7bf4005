//! Which Services front a workload: those in its namespace whose non-empty selector is a
//! subset of its pod template labels.

use std::collections::BTreeMap;

/// True when `selector` is non-empty and every pair of it is in `template_labels`.
pub fn selector_matches_template(
    selector: &BTreeMap<String, String>,
    template_labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
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
