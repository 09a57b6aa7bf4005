//! A scale-down metric (expr, type, window, aggregator separated by NUL bytes) through
//! validation and the query builder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (expr, type_, window, aggregator) = rsg::invariants::metric_fields(text);
    rsg::invariants::promql_query(&expr, &type_, window.as_deref(), aggregator.as_deref());
});
