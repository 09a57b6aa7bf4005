//! The operator's narrowing of where targets may live: an equality-based label selector over
//! namespaces (`team=llm,env!=prod,inference,!legacy`).

use std::collections::BTreeMap;
use std::fmt;

/// One requirement of the selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

/// A parsed namespace label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceSelector {
    source: String,
    requirements: Vec<Requirement>,
}

/// Why a selector could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid namespace selector {selector:?}: {reason}")]
pub struct SelectorError {
    selector: String,
    reason: String,
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl NamespaceSelector {
    /// Parses `key=value`, `key==value`, `key!=value`, `key` and `!key`, comma-separated.
    /// An empty selector selects every namespace.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        if selector.trim().is_empty() {
            return Ok(Self {
                source: String::new(),
                requirements: Vec::new(),
            });
        }
        let fail = |reason: String| SelectorError {
            selector: selector.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        for part in selector.split(',').map(str::trim) {
            let requirement = if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().into())
            } else {
                Requirement::Exists(part.into())
            };
            let (key, value) = match &requirement {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
                Requirement::Exists(k) | Requirement::NotExists(k) => (k, None),
            };
            if !valid_key(key) {
                return Err(fail(format!("{part:?} has no valid label key")));
            }
            if value.is_some_and(|v| !valid_value(v)) {
                return Err(fail(format!("{part:?} has no valid label value")));
            }
            requirements.push(requirement);
        }
        Ok(Self {
            source: selector.to_string(),
            requirements,
        })
    }

    /// Whether it selects every namespace.
    pub fn selects_all(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a namespace with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

impl fmt::Display for NamespaceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
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
    fn every_requirement_must_hold() {
        let selector = NamespaceSelector::parse("team=llm, env!=prod,inference,!legacy").unwrap();
        assert!(selector.matches(&labels(&[("team", "llm"), ("inference", "")])));
        assert!(!selector.matches(&labels(&[
            ("team", "llm"),
            ("inference", ""),
            ("env", "prod")
        ])));
        assert!(!selector.matches(&labels(&[("team", "llm")])));
        assert!(!selector.matches(&labels(&[
            ("team", "llm"),
            ("inference", ""),
            ("legacy", "yes")
        ])));
        assert!(!selector.matches(&labels(&[("team", "web"), ("inference", "")])));
    }

    #[test]
    fn equality_forms_and_qualified_keys_parse() {
        let selector =
            NamespaceSelector::parse("autoscaling.openfuyao.com/targets==allowed").unwrap();
        assert!(selector.matches(&labels(&[("autoscaling.openfuyao.com/targets", "allowed")])));
    }

    #[test]
    fn malformed_selectors_are_refused() {
        assert!(NamespaceSelector::parse(" ").unwrap().selects_all());
        for bad in ["team=", "=llm", "team in (a,b)", "a=b=c", "te am=x"] {
            let parsed = NamespaceSelector::parse(bad);
            if bad == "team=" {
                // An empty value is a legal label value.
                assert!(parsed.is_ok(), "{bad}");
            } else {
                assert!(parsed.is_err(), "{bad} should be refused");
            }
        }
    }
}
