//! The SCIM filter parser (`?filter=`, `/.search`, PATCH value paths): any text parses
//! or is refused as `invalidFilter`; what parses renders to text that parses back to the
//! same tree, translates to SQL or is refused, and evaluates against an element.

#![no_main]

use common::{
    db::query,
    scim::{
        filter::{self, MAX_FILTER_LEN},
        patch,
    },
};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = match filter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert_eq!(e.status, 400, "{text:?}");
            assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"), "{text:?}");
            return;
        }
    };
    // The canonical text parses back to the same tree (as the proptest in filter.rs
    // asserts for generated trees), as long as it fits the length limit.
    let rendered = f.to_string();
    if rendered.len() <= MAX_FILTER_LEN {
        match filter::parse(&rendered) {
            Ok(again) => assert_eq!(again, f, "{text:?} rendered as {rendered:?}"),
            Err(e) => panic!(
                "{text:?} rendered as {rendered:?}, which fails: {}",
                e.detail
            ),
        }
    }
    if let Err(e) = query::users_where(&f) {
        assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"), "{text:?}");
    }
    if let Err(e) = query::groups_where(&f) {
        assert_eq!(e.scim_type.as_deref(), Some("invalidFilter"), "{text:?}");
    }
    let element = json!({"type": "work", "value": "jane@example.com", "primary": "True", "n": 7});
    let _ = patch::element_matches(&element, &f);
});
