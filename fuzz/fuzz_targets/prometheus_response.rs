//! A Prometheus query response; the first eight bytes choose the candidate groups.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let (ids, body) = input.split_at(input.len().min(8));
    rsg::invariants::prometheus_response(body, &rsg::invariants::candidates_from(ids));
});
