#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| modtrace_fuzz::proc_modules(data));
