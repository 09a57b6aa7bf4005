//! Field errors rendered the way Kubernetes renders its own validation errors.

use std::fmt;

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value: <value>`.
    Invalid(String),
    /// `Unsupported value: <value>: supported values: ...`.
    Unsupported(String, Vec<String>),
    /// `Duplicate value: <value>`.
    Duplicate(String),
    /// `Not found: <value>`.
    NotFound(String),
    /// `Forbidden`.
    Forbidden,
    /// `Too many: <count>: must have at most <max> items`.
    TooMany(usize, usize),
}

/// One problem, with the path of the field it concerns.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// Field path, e.g. `spec.targetResources[0].name`.
    pub path: String,
    /// The kind of problem.
    pub kind: FieldErrorKind,
    /// A human explanation (may be empty).
    pub detail: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Required,
            detail: detail.into(),
        }
    }
    /// `Invalid value`.
    pub fn invalid(
        path: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Invalid(value.to_string()),
            detail: detail.into(),
        }
    }
    /// `Unsupported value` with the supported values listed.
    pub fn unsupported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Unsupported(
                value.to_string(),
                supported.iter().map(|s| s.to_string()).collect(),
            ),
            detail: String::new(),
        }
    }
    /// `Duplicate value`.
    pub fn duplicate(
        path: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Duplicate(value.to_string()),
            detail: detail.into(),
        }
    }
    /// `Not found`.
    pub fn not_found(
        path: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::NotFound(value.to_string()),
            detail: detail.into(),
        }
    }
    /// `Forbidden`.
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.into(),
        }
    }
}

impl FieldError {
    /// `Too many`: a list longer than its cap.
    pub fn too_many(path: impl Into<String>, count: usize, max: usize) -> Self {
        Self {
            path: path.into(),
            kind: FieldErrorKind::TooMany(count, max),
            detail: String::new(),
        }
    }
}

fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""))
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.kind {
            FieldErrorKind::Required => write!(f, "Required value")?,
            FieldErrorKind::Invalid(v) => write!(f, "Invalid value: {}", quoted(v))?,
            FieldErrorKind::Unsupported(v, supported) => {
                let list: Vec<String> = supported.iter().map(|s| quoted(s)).collect();
                write!(
                    f,
                    "Unsupported value: {}: supported values: {}",
                    quoted(v),
                    list.join(", ")
                )?
            }
            FieldErrorKind::Duplicate(v) => write!(f, "Duplicate value: {}", quoted(v))?,
            FieldErrorKind::NotFound(v) => write!(f, "Not found: {}", quoted(v))?,
            FieldErrorKind::Forbidden => write!(f, "Forbidden")?,
            FieldErrorKind::TooMany(count, max) => {
                write!(f, "Too many: {count}: must have at most {max} items")?
            }
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The message Kubernetes gives for an invalid object: one error inline, several in brackets.
pub fn invalid_object_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    match rendered.as_slice() {
        [one] => format!("{kind} {name:?} is invalid: {one}"),
        many => format!("{kind} {name:?} is invalid: [{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kubernetes() {
        let e = FieldError::unsupported(
            "spec.scalingStrategy.groupConfig.scaleDown.metric.type",
            "guage",
            &["Counter", "Gauge", "Histogram"],
        );
        assert_eq!(
            e.to_string(),
            r#"spec.scalingStrategy.groupConfig.scaleDown.metric.type: Unsupported value: "guage": supported values: "Counter", "Gauge", "Histogram""#
        );
        assert_eq!(
            FieldError::required("spec.x", "").to_string(),
            "spec.x: Required value"
        );
        assert_eq!(
            FieldError::invalid("spec.r", -1, "must be greater than or equal to 0").to_string(),
            r#"spec.r: Invalid value: "-1": must be greater than or equal to 0"#
        );
        assert_eq!(
            FieldError::forbidden("spec.f", "nope").to_string(),
            "spec.f: Forbidden: nope"
        );
    }

    #[test]
    fn aggregates_several_errors_in_brackets() {
        let errors = vec![FieldError::required("a", ""), FieldError::required("b", "")];
        assert_eq!(
            invalid_object_message("ResourceScalingGroup", "g", &errors),
            r#"ResourceScalingGroup "g" is invalid: [a: Required value, b: Required value]"#
        );
        assert_eq!(
            invalid_object_message("ResourceScalingGroup", "g", &errors[..1]),
            r#"ResourceScalingGroup "g" is invalid: a: Required value"#
        );
    }
}
