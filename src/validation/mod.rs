//! Pure validation of ResourceScalingGroups, shared by the validating webhook and the
//! controller (which re-checks, since the webhook may be bypassed).

mod duration;
mod exclusive;
mod field_error;
mod names;
mod promql_expr;
mod spec_rules;

pub use duration::{parse_prometheus_duration, DurationError};
pub use exclusive::exclusive_target_errors;
pub use field_error::{invalid_object_message, FieldError, FieldErrorKind};
pub use names::{dns1123_label_errors, dns1123_subdomain_errors, DNS1123_LABEL_MAX};
pub use promql_expr::{check_expr, ExprError, MAX_EXPR_BYTES};
pub use spec_rules::{effective_group_name, validate_rsg, SpecWarnings};
