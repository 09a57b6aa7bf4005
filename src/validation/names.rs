//! DNS name rules as Kubernetes applies them to object names and labels.

/// Longest DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Problems of `s` as a DNS-1123 label (empty when valid), in Kubernetes' wording.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label(s) {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
                .to_string(),
        );
    }
    errs
}

/// Problems of `s` as a DNS-1123 subdomain (empty when valid), in Kubernetes' wording.
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if s.is_empty() || !s.split('.').all(is_label) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
                .to_string(),
        );
    }
    errs
}

fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Problems of `s` as a label key (`[prefix/]name`, empty when valid), in Kubernetes' wording.
pub fn label_key_errors(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if name.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "name part must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label_name(name) {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')"
                .to_string(),
        );
    }
    if let Some(prefix) = prefix {
        errs.extend(
            dns1123_subdomain_errors(prefix)
                .into_iter()
                .map(|e| format!("prefix part {e}")),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        for key in [
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
            "rack",
            "Rack_1.a",
        ] {
            assert!(label_key_errors(key).is_empty(), "{key}");
        }
        for key in [
            "",
            "/zone",
            "zone/",
            "-rack",
            "Topology.io/zone",
            "a/b/c",
            "zone!",
        ] {
            assert!(!label_key_errors(key).is_empty(), "{key}");
        }
        assert_eq!(label_key_errors(&"z".repeat(64)).len(), 1);
    }

    #[test]
    fn labels() {
        assert!(dns1123_label_errors("pd").is_empty());
        assert!(dns1123_label_errors("a-1").is_empty());
        assert!(!dns1123_label_errors("Pd").is_empty());
        assert!(!dns1123_label_errors("-a").is_empty());
        assert!(!dns1123_label_errors("a_b").is_empty());
        assert!(!dns1123_label_errors("").is_empty());
        assert_eq!(dns1123_label_errors(&"a".repeat(64)).len(), 1);
    }

    #[test]
    fn subdomains() {
        assert!(dns1123_subdomain_errors("llm.prefill").is_empty());
        assert!(!dns1123_subdomain_errors("llm..prefill").is_empty());
        assert!(!dns1123_subdomain_errors("LLM").is_empty());
    }
}
