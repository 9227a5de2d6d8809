//! Settings written out in code, for tests of a configuration reader.

use std::collections::HashMap;

/// A lookup over fixed pairs, as `Config::from_lookup` and
/// `ModelConfig::from_lookup` take it in place of the environment.
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}
