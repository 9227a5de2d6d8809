//! What a chat costs, in balance tokens: the one home of the price.
//!
//! `flat`: every chat costs a fixed price, whatever was said. `usage`: the
//! model's reported input, output, cache-read and cache-write tokens, each
//! at its own price in balance tokens per 1000 model tokens, summed and
//! rounded up once. Integers throughout: no floating point comes near a
//! balance.

use crate::credits::Credits;

/// Balance tokens per 1000 model tokens, for input and for output, and for
/// input read from or written to the model's prompt cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsagePrices {
    pub input_per_1000: u32,
    pub output_per_1000: u32,
    pub cache_read_per_1000: u32,
    pub cache_write_per_1000: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pricing {
    /// Every chat costs this many tokens.
    Flat(u32),
    /// A chat costs what the model reports it used.
    Usage(UsagePrices),
}

/// What a model reports it read and wrote for one reply. The four counts
/// are apart, as Bedrock reports them: `input_tokens` excludes what was read
/// from or written to the prompt cache, so nothing is counted twice and no
/// count is ever made by subtraction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// Tokens a model adds around what it is sent (role markers, the chat
/// template): counted into the hold on top of the text itself.
pub const INPUT_OVERHEAD_TOKENS: u64 = 64;

/// Tokens a chat template may wrap around each system prompt and turn,
/// counted into a conversation's input bound, so many short messages
/// cannot be read for less than they cost.
pub const MESSAGE_OVERHEAD_TOKENS: usize = 16;

impl Usage {
    /// Every input token, however it was read: what OpenAI calls
    /// `prompt_tokens` (its `cached_tokens` are part of it).
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// The most a reply can have used, when no report of the model says
    /// what it did: `input_bound` (the input's UTF-8 size, since no common
    /// tokenizer makes more tokens than bytes, and for a conversation its
    /// per-message overhead too) plus the fixed overhead, and
    /// `output_tokens`.
    pub fn bound(input_bound: usize, output_tokens: u64) -> Usage {
        Usage {
            input_tokens: input_bound as u64 + INPUT_OVERHEAD_TOKENS,
            output_tokens,
            ..Default::default()
        }
    }
}

/// How a price is recorded with a hold and its chat: `flat:100`, or
/// `per1000:in=1,out=5,cache_read=0,cache_write=2`.
impl std::fmt::Display for Pricing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pricing::Flat(cost) => write!(f, "flat:{cost}"),
            Pricing::Usage(p) => write!(
                f,
                "per1000:in={},out={},cache_read={},cache_write={}",
                p.input_per_1000, p.output_per_1000, p.cache_read_per_1000, p.cache_write_per_1000
            ),
        }
    }
}

impl Pricing {
    /// What a reply that used `usage` costs at this price, uncapped: a free
    /// responder's reply is charged this in the transaction that saves it,
    /// with no hold before it; a held reply is charged it up to its hold
    /// ([`Pricing::cost`]).
    pub fn charge(&self, usage: Usage) -> Credits {
        match self {
            Pricing::Flat(cost) => Credits::from(*cost),
            Pricing::Usage(prices) => prices.cost(usage),
        }
    }

    /// The most a chat can cost, reserved before the model is called: the
    /// input bounded by its UTF-8 size (no common tokenizer makes more
    /// tokens than bytes), the output by the reply's cap.
    pub fn hold(&self, input_bytes: usize, max_output_tokens: u32) -> Credits {
        match self {
            Pricing::Flat(cost) => Credits::from(*cost),
            Pricing::Usage(prices) => {
                prices.cost(Usage::bound(input_bytes, u64::from(max_output_tokens)))
            }
        }
    }

    /// What a reply costs, never more than its hold: a model that reports
    /// more than the bound is charged the bound (and the log says so).
    pub fn cost(&self, usage: Usage, hold: Credits) -> Credits {
        let cost = self.charge(usage);
        if cost > hold {
            tracing::warn!(
                cost = cost.get(),
                hold = hold.get(),
                "a reply cost more than its hold; charged the hold"
            );
        }
        cost.min(hold)
    }
}

impl UsagePrices {
    /// Input and output prices, with the cache priced as plain input: what
    /// a model without cache prices of its own is charged.
    pub const fn plain(input_per_1000: u32, output_per_1000: u32) -> Self {
        UsagePrices {
            input_per_1000,
            output_per_1000,
            cache_read_per_1000: input_per_1000,
            cache_write_per_1000: input_per_1000,
        }
    }

    /// `ceil((input x input price + output x output price + cache read x
    /// its price + cache write x its price) / 1000)`: every count at its
    /// own price, rounded up once.
    pub fn cost(&self, usage: Usage) -> Credits {
        let thousandths = [
            (usage.input_tokens, self.input_per_1000),
            (usage.output_tokens, self.output_per_1000),
            (usage.cache_read_tokens, self.cache_read_per_1000),
            (usage.cache_write_tokens, self.cache_write_per_1000),
        ]
        .into_iter()
        .fold(0u64, |sum, (tokens, price)| {
            sum.saturating_add(tokens.saturating_mul(u64::from(price)))
        });
        Credits::new(thousandths.div_ceil(1000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICES: UsagePrices = UsagePrices::plain(3, 15);

    fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
            ..Default::default()
        }
    }

    #[test]
    fn usage_is_priced_per_thousand_and_rounded_up_once() {
        // 1234 x 3 + 567 x 15 = 12207 thousandths: 13 tokens, not 4 + 9.
        assert_eq!(PRICES.cost(usage(1234, 567)).get(), 13);
        assert_eq!(PRICES.cost(usage(0, 0)).get(), 0);
        assert_eq!(PRICES.cost(usage(1, 0)).get(), 1);
        assert_eq!(PRICES.cost(usage(1000, 0)).get(), 3);
        assert_eq!(PRICES.cost(usage(0, 1000)).get(), 15);
    }

    #[test]
    fn the_hold_bounds_input_by_bytes_plus_overhead_and_output_by_the_cap() {
        let pricing = Pricing::Usage(PRICES);
        // (100 + 64) x 3 + 1024 x 15 = 15852 thousandths.
        assert_eq!(pricing.hold(100, 1024).get(), 16);
        assert_eq!(Pricing::Flat(100).hold(100_000, 8192).get(), 100);
    }

    #[test]
    fn a_cost_never_exceeds_its_hold() {
        let pricing = Pricing::Usage(PRICES);
        let hold = pricing.hold(10, 10);
        assert_eq!(pricing.cost(usage(1_000_000, 1_000_000), hold), hold);
        let flat = Credits::new(100);
        assert_eq!(Pricing::Flat(100).cost(usage(5, 5), flat), flat);
    }

    #[test]
    fn cache_reads_and_writes_are_priced_apart_and_never_netted_against_input() {
        let prices = UsagePrices {
            input_per_1000: 1000,
            output_per_1000: 5000,
            cache_read_per_1000: 100,
            cache_write_per_1000: 1250,
        };
        // (input, output, cache read, cache write) -> cost.
        let table: [((u64, u64, u64, u64), u64); 6] = [
            ((0, 0, 0, 0), 0),
            ((1, 0, 0, 0), 1),
            ((0, 0, 10, 0), 1),
            ((0, 0, 0, 4), 5),
            ((100, 20, 1000, 0), 300),
            // Rounded up once over the sum (0.1 + 1.25 = 1.35: 2), not per
            // part (1 + 2 = 3).
            ((0, 0, 1, 1), 2),
        ];
        for ((input, output, read, write), cost) in table {
            let usage = Usage {
                input_tokens: input,
                output_tokens: output,
                cache_read_tokens: read,
                cache_write_tokens: write,
            };
            assert_eq!(prices.cost(usage).get(), cost, "{usage:?}");
        }
        let usage = Usage {
            input_tokens: 5,
            cache_read_tokens: 7,
            cache_write_tokens: 11,
            ..Usage::default()
        };
        assert_eq!(usage.prompt_tokens(), 23);
    }

    #[test]
    fn without_cache_prices_of_its_own_the_cache_costs_what_input_does() {
        let plain = UsagePrices::plain(3, 15);
        let cached = Usage {
            cache_read_tokens: 1000,
            cache_write_tokens: 1000,
            ..Usage::default()
        };
        assert_eq!(plain.cost(cached).get(), 6);
    }

    #[test]
    fn absurd_usage_saturates_instead_of_wrapping() {
        assert_eq!(
            PRICES.cost(usage(u64::MAX, u64::MAX)).get(),
            u64::MAX.div_ceil(1000)
        );
    }

    #[test]
    fn a_bound_counts_the_input_with_its_overhead_and_the_output() {
        assert_eq!(
            Usage::bound(1000, 10),
            Usage {
                input_tokens: 1000 + INPUT_OVERHEAD_TOKENS,
                output_tokens: 10,
                ..Default::default()
            }
        );
        // A long message and a short reply: the hold is mostly input.
        assert_eq!(
            Pricing::Usage(PRICES).hold(10_000, 10).get(),
            (10_064 * 3 + 10 * 15_u64).div_ceil(1000)
        );
    }

    #[test]
    fn a_price_is_recorded_in_one_spelling() {
        assert_eq!(Pricing::Flat(100).to_string(), "flat:100");
        let prices = UsagePrices {
            input_per_1000: 1,
            output_per_1000: 5,
            cache_read_per_1000: 0,
            cache_write_per_1000: 2,
        };
        assert_eq!(
            Pricing::Usage(prices).to_string(),
            "per1000:in=1,out=5,cache_read=0,cache_write=2"
        );
    }
}
