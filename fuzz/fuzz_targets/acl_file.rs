//! Parses arbitrary text as a Mosquitto ACL file and checks topics against it. The body
//! is `culex::auth::fuzz::fuzz_acl_file`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    culex::auth::fuzz::fuzz_acl_file(data);
});
