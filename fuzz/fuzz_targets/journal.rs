//! Reads arbitrary bytes as a journal or snapshot file, as start-up does. The body is
//! `culex::persist::fuzz::fuzz_journal`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = culex::persist::fuzz::fuzz_journal(data);
});
