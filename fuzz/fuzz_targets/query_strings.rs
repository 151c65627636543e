//! The list filters as query strings: a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xueji_app::students::StudentFilter;
use xueji_app::transfers::TransferFilter;

fuzz_target!(|data: &[u8]| {
    let _ = serde_urlencoded::from_bytes::<StudentFilter>(data);
    let _ = serde_urlencoded::from_bytes::<TransferFilter>(data);
});
