#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rapport_fuzz_targets::run(rapport_fuzz_targets::target("referrals"), data));
