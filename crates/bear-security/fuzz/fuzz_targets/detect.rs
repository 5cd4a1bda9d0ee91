//! Fuzz target: the detector and the scrubber on arbitrary bytes. Spans must be ordered,
//! on character boundaries and inside the text; scrubbing must not panic and must leave
//! nothing a rescan finds.
#![no_main]

use std::sync::{Arc, LazyLock};

use bear_security::{Detector, PiiConfig, Scrubber, Session};
use libfuzzer_sys::fuzz_target;

static DETECTOR: LazyLock<Arc<Detector>> =
    LazyLock::new(|| Arc::new(Detector::new(&PiiConfig::default()).expect("default detector")));

static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(|| {
    Scrubber::new(
        DETECTOR.clone(),
        PiiConfig::default(),
        bear_security::crypto::ephemeral_hmac_key().expect("key"),
        None,
    )
    .expect("scrubber")
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut end = 0;
    for f in DETECTOR.detect(&text) {
        assert!(f.start >= end && f.start < f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        end = f.end;
    }
    let mut session = Session::new().expect("session");
    let out = SCRUBBER.scrub_with(&text, &mut session).expect("scrub");
    assert!(DETECTOR.detect(&out.text).is_empty(), "rescan found PII");
});
