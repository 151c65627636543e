//! Every JSON body the API takes, deserialised from arbitrary bytes: a refusal, never a panic;
//! and a provincial policy that deserialises is validated without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xueji_app::changes::NewChange;
use xueji_app::registration::NewStudent;
use xueji_app::sanctions::NewSanction;
use xueji_app::transfers::NewTransfer;
use xueji_domain::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<NewTransfer>(data);
    let _ = serde_json::from_slice::<NewStudent>(data);
    let _ = serde_json::from_slice::<NewSanction>(data);
    let _ = serde_json::from_slice::<NewChange>(data);
    if let Ok(p) = serde_json::from_slice::<Policy>(data) {
        let _ = p.validate();
    }
});
