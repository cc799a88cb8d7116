//! Compile errors of `#[cached]` and `#[synchronized]`: each mistake is an
//! error at the offending token that says what to write instead. The
//! expected messages are the `.stderr` files beside each case in
//! `tests/ui/` (regenerate with `TRYBUILD=overwrite` and review the diff).
#![cfg(feature = "macros")]

#[test]
fn mistakes_are_clear_compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
