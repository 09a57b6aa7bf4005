//! An AdmissionReview body through decode, defaults and validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| rsg::invariants::admission_review(body));
