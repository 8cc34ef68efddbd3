//! Audience expressions from the config: parsing any text and evaluating
//! what parses against a fixed customer must never panic (errors are fine).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use minijinja::Value;
use outreach::audience::Audience;
use outreach::context::{customer_value, sample_customer};

static CUSTOMER: LazyLock<Value> = LazyLock::new(|| customer_value(&sample_customer("de")));

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(audience) = Audience::parse(source) {
        let _ = audience.names();
        let _ = audience.matches(&CUSTOMER);
    }
});
