//! Latency samples to the figures the report shows.

use std::time::Duration;

use serde_json::{json, Value};

/// Nearest-rank percentiles of a set of samples, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "no samples to summarise");
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| {
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            ms(sorted[index])
        };
        Summary {
            n: sorted.len(),
            min: ms(sorted[0]),
            p50: rank(0.50),
            p99: rank(0.99),
            max: ms(sorted[sorted.len() - 1]),
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "n": self.n,
            "min_ms": round(self.min),
            "p50_ms": round(self.p50),
            "p99_ms": round(self.p99),
            "max_ms": round(self.max),
        })
    }
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Three decimals: microsecond resolution is all a millisecond figure needs.
pub fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
