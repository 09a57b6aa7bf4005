//! Scale-down queries confined to the RSG's namespaces (the prom-label-proxy model): rsg
//! queries Prometheus with its own credentials, so the query it sends may read only series of
//! the namespaces the RSG acts in (its own, where copies run, and its targets'). The author's
//! `expr` is parsed with a PromQL parser, every series selector in it gets a `namespace`
//! matcher ANDed to its own, the aggregation rsg wraps it in is added, and the query text that
//! results is parsed again and checked: a top-level `<aggregator> by (group_id)`, and every
//! selector carrying that matcher. Nothing is checked on the text itself.

use std::collections::BTreeSet;

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr, LabelModifier};

use crate::api::ScaleDownMetric;

/// The aggregator in effect: the spec's, else `avg` for Gauge and `sum` otherwise.
pub fn effective_aggregator(metric: &ScaleDownMetric) -> &str {
    match metric.aggregator.as_deref() {
        Some(aggregator) if !aggregator.is_empty() => aggregator,
        _ if metric.type_ == "Gauge" => "avg",
        _ => "sum",
    }
}

/// The label every selector is confined by.
const NAMESPACE_LABEL: &str = "namespace";

/// Why no scoped query can be made of a metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// `expr` is not PromQL.
    #[error("not a PromQL expression: {0}")]
    Parse(String),
    /// Counter and Histogram queries apply `rate()` to the expression itself.
    #[error("a {0} metric must be a series selector such as `vllm:request_success_total{{model=\"llama\"}}`: rsg queries rate() of it over the window")]
    NotASelector(String),
    /// The expression holds a part rsg cannot look into.
    #[error("the expression holds a part that cannot be confined to the RSG's namespaces")]
    Unscopable,
    /// The query text, parsed again, is not what rsg built (this should not happen).
    #[error(
        "the query rsg would send does not keep every series selector inside the RSG's namespaces"
    )]
    Escapes,
    /// No namespace to confine the query to.
    #[error("no namespace to confine the query to")]
    NoNamespace,
}

/// The `namespace` matcher for `namespaces`: `namespace="a"`, or `namespace=~"a|b"` (Prometheus
/// anchors regular expressions; namespace names are DNS labels, so no character needs escaping).
fn namespace_matcher(namespaces: &BTreeSet<String>) -> Result<Matcher, ScopeError> {
    if namespaces
        .iter()
        .any(|ns| ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(ScopeError::NoNamespace);
    }
    let selector = match namespaces.len() {
        0 => return Err(ScopeError::NoNamespace),
        1 => format!(
            "{{{NAMESPACE_LABEL}=\"{}\"}}",
            namespaces
                .iter()
                .next()
                .map(String::as_str)
                .unwrap_or_default()
        ),
        _ => format!(
            "{{{NAMESPACE_LABEL}=~\"{}\"}}",
            namespaces
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("|")
        ),
    };
    match parser::parse(&selector) {
        Ok(Expr::VectorSelector(vs)) => vs
            .matchers
            .matchers
            .into_iter()
            .next()
            .ok_or(ScopeError::Escapes),
        _ => Err(ScopeError::Escapes),
    }
}

fn same_matcher(a: &Matcher, b: &Matcher) -> bool {
    a.name == b.name && a.value == b.value && a.op == b.op
}

/// Adds `matcher` to every series selector of `expr` (to each alternative of an `or` group).
fn confine(expr: &mut Expr, matcher: &Matcher) -> Result<(), ScopeError> {
    let add = |matchers: &mut promql_parser::label::Matchers| {
        if matchers.or_matchers.is_empty() {
            matchers.matchers.push(matcher.clone());
        } else {
            for alternative in &mut matchers.or_matchers {
                alternative.push(matcher.clone());
            }
        }
    };
    match expr {
        Expr::VectorSelector(vs) => add(&mut vs.matchers),
        Expr::MatrixSelector(ms) => add(&mut ms.vs.matchers),
        Expr::Aggregate(a) => {
            confine(&mut a.expr, matcher)?;
            if let Some(param) = &mut a.param {
                confine(param, matcher)?;
            }
        }
        Expr::Unary(u) => confine(&mut u.expr, matcher)?,
        Expr::Binary(b) => {
            confine(&mut b.lhs, matcher)?;
            confine(&mut b.rhs, matcher)?;
        }
        Expr::Paren(p) => confine(&mut p.expr, matcher)?,
        Expr::Subquery(s) => confine(&mut s.expr, matcher)?,
        Expr::Call(call) => {
            for arg in &mut call.args.args {
                confine(arg, matcher)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        Expr::Extension(_) => return Err(ScopeError::Unscopable),
    }
    Ok(())
}

/// Whether every series selector of `expr` carries `matcher` (in each `or` alternative).
fn confined(expr: &Expr, matcher: &Matcher) -> bool {
    let has = |matchers: &promql_parser::label::Matchers| {
        if matchers.or_matchers.is_empty() {
            matchers.matchers.iter().any(|m| same_matcher(m, matcher))
        } else {
            matchers
                .or_matchers
                .iter()
                .all(|alternative| alternative.iter().any(|m| same_matcher(m, matcher)))
        }
    };
    match expr {
        Expr::VectorSelector(vs) => has(&vs.matchers),
        Expr::MatrixSelector(ms) => has(&ms.vs.matchers),
        Expr::Aggregate(a) => {
            confined(&a.expr, matcher) && a.param.as_ref().is_none_or(|p| confined(p, matcher))
        }
        Expr::Unary(u) => confined(&u.expr, matcher),
        Expr::Binary(b) => confined(&b.lhs, matcher) && confined(&b.rhs, matcher),
        Expr::Paren(p) => confined(&p.expr, matcher),
        Expr::Subquery(s) => confined(&s.expr, matcher),
        Expr::Call(call) => call.args.args.iter().all(|arg| confined(arg, matcher)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

/// Whether `query` is `<aggregator> by (group_id) (…)` at the top.
fn aggregates_by_group_id(query: &Expr, aggregator: &str) -> bool {
    let Expr::Aggregate(aggregate) = query else {
        return false;
    };
    let by_group_id = matches!(
        &aggregate.modifier,
        Some(LabelModifier::Include(labels)) if labels.labels == ["group_id"]
    );
    by_group_id && aggregate.op.to_string() == aggregator
}

/// The query rsg sends for `metric`, confined to `namespaces`: Gauge
/// `<aggregator> by (group_id) (<expr>)`, Counter and Histogram
/// `<aggregator> by (group_id) (rate(<selector>[<window>]))`, with `namespace` matched in
/// every series selector.
pub fn scoped_query(
    metric: &ScaleDownMetric,
    namespaces: &BTreeSet<String>,
) -> Result<String, ScopeError> {
    let matcher = namespace_matcher(namespaces)?;
    let mut expr = parser::parse(metric.expr.trim()).map_err(ScopeError::Parse)?;
    confine(&mut expr, &matcher)?;
    let aggregator = effective_aggregator(metric);
    let text = if metric.type_ == "Gauge" {
        format!("{aggregator} by (group_id) ({expr})")
    } else {
        let Expr::VectorSelector(selector) = &expr else {
            return Err(ScopeError::NotASelector(metric.type_.clone()));
        };
        let window = metric.window.as_deref().unwrap_or("1m");
        format!("{aggregator} by (group_id) (rate({selector}[{window}]))")
    };
    match parser::parse(&text) {
        Ok(query) if aggregates_by_group_id(&query, aggregator) && confined(&query, &matcher) => {
            Ok(text)
        }
        _ => Err(ScopeError::Escapes),
    }
}

/// Whether a scoped query can be made of `metric` at all (for admission, which checks the
/// expression before any namespace is involved).
pub fn check_scopable(metric: &ScaleDownMetric) -> Result<(), ScopeError> {
    scoped_query(metric, &BTreeSet::from(["admission-check".to_string()])).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(expr: &str, type_: &str, window: Option<&str>) -> ScaleDownMetric {
        ScaleDownMetric {
            expr: expr.into(),
            type_: type_.into(),
            window: window.map(Into::into),
            aggregator: None,
        }
    }

    fn namespaces(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn every_selector_is_confined_to_the_rsgs_namespaces() {
        let one = namespaces(&["team-a"]);
        assert_eq!(
            scoped_query(&metric("vllm:num_requests_running", "Gauge", None), &one).as_deref(),
            Ok(r#"avg by (group_id) (vllm:num_requests_running{namespace="team-a"})"#)
        );
        let two = namespaces(&["team-a", "production"]);
        let query = scoped_query(
            &metric(r#"sum(a{model="x"}) / on(group_id) sum(b)"#, "Gauge", None),
            &two,
        )
        .expect("a query");
        assert_eq!(
            query.matches(r#"namespace=~"production|team-a""#).count(),
            2,
            "{query}"
        );
        assert_eq!(
            scoped_query(
                &metric("vllm:request_success_total", "Counter", Some("2m")),
                &one
            )
            .as_deref(),
            Ok(r#"sum by (group_id) (rate(vllm:request_success_total{namespace="team-a"}[2m]))"#)
        );
    }

    #[test]
    fn another_namespaces_series_stay_out_of_reach() {
        // The author's own namespace matcher is kept, and ANDed with rsg's: it selects nothing
        // outside the RSG's namespaces.
        let exfiltration = r#"label_replace(topk(1, kube_secret_info{namespace="tenant-b"}), "group_id", "$1", "secret", "(.*)")"#;
        let query = scoped_query(
            &metric(exfiltration, "Gauge", None),
            &namespaces(&["tenant-a"]),
        )
        .expect("a query");
        assert!(
            query.contains(r#"kube_secret_info{namespace="tenant-a",namespace="tenant-b"}"#),
            "{query}"
        );
        // Subqueries, offsets and nested calls are reached too.
        let nested = scoped_query(
            &metric("max_over_time(rate(x[1m])[5m:1m] offset 5m)", "Gauge", None),
            &namespaces(&["a"]),
        )
        .expect("a query");
        assert!(nested.contains(r#"x{namespace="a"}[1m]"#), "{nested}");
    }

    #[test]
    fn aggregators_default_by_type() {
        let mut gauge = metric("x", "Gauge", None);
        assert_eq!(effective_aggregator(&gauge), "avg");
        assert_eq!(
            effective_aggregator(&metric("x", "Counter", Some("1m"))),
            "sum"
        );
        for aggregator in ["sum", "avg", "max", "min"] {
            gauge.aggregator = Some(aggregator.into());
            assert_eq!(
                scoped_query(&gauge, &namespaces(&["a"])),
                Ok(format!(
                    r#"{aggregator} by (group_id) (x{{namespace="a"}})"#
                ))
            );
        }
    }

    #[test]
    fn what_cannot_be_confined_is_refused() {
        assert!(matches!(
            check_scopable(&metric("up) or vector(1", "Gauge", None)),
            Err(ScopeError::Parse(_))
        ));
        assert_eq!(
            check_scopable(&metric("sum(x)", "Counter", Some("1m"))),
            Err(ScopeError::NotASelector("Counter".into()))
        );
        assert_eq!(
            scoped_query(&metric("x", "Gauge", None), &BTreeSet::new()),
            Err(ScopeError::NoNamespace)
        );
        assert_eq!(
            scoped_query(&metric("x", "Gauge", None), &namespaces(&["a|.*"])),
            Err(ScopeError::NoNamespace)
        );
    }
}
