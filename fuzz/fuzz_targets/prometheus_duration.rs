//! A Prometheus duration (`window`, `drainTimeout`, the CLI's timeouts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| rsg::invariants::prometheus_duration(text));
