//! Arbitrary bytes as the repository config file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snap::internals::format::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_bytes(data) {
        assert_eq!(Config::from_bytes(&config.to_bytes()).unwrap(), config);
    }
});
