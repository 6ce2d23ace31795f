//! Parses arbitrary text as a mosquitto.conf (and, after a NUL byte, as the file an
//! `include_dir` finds). The body is `culex::config::fuzz::fuzz_config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::config::fuzz::fuzz_config(data);
});
