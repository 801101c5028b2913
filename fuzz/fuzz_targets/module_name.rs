#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modtrace_fuzz::module_name(data));
