#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    enim_labore_occaecati::fuzzing::header_lists(data);
});
