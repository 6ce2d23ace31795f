//! Parses arbitrary text as a mosquitto_passwd file, and round-trips a password and salt
//! through `hash_password`. The body is `culex::auth::fuzz::fuzz_password_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::auth::fuzz::fuzz_password_file(data);
});
