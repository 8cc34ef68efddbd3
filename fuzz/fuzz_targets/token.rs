//! Link tokens from the outside world (`/u/`, `/t/`, `/a/`): verifying any
//! string must never panic and never accept it — without the key nobody can
//! make a token, so an arbitrary string is never genuine.
#![no_main]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use outreach::secret::Secret;
use outreach::tokens::{Purpose, Signer};

static SIGNER: LazyLock<Signer> = LazyLock::new(|| {
    Signer::new(vec![
        Secret::from_bytes(b"fuzz-key-current-0123456789abcdef".to_vec()),
        Secret::from_bytes(b"fuzz-key-previous".to_vec()),
    ])
});

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    // Long ago, so an expiry check is never what refuses it.
    let now = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    for purpose in [Purpose::Unsubscribe, Purpose::Task, Purpose::Approval] {
        if let Ok(id) = SIGNER.verify(&token, purpose, now) {
            panic!("accepted a token nobody signed: {token:?} as {purpose:?} for id {id}");
        }
    }
});
