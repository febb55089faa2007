//! Every compile error a user of `#[netns_test]` can hit, with its designed message.

#[test]
fn attribute_misuse_is_a_precise_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
