//! What an API key's entry in the account item limits: a budget per
//! period, and the models it may use. Both are decided in the condition of
//! the account's write that every chat already makes, without a read.
//!
//! The entry is a list, `[expires_at, last used day, left, window, budget,
//! models]` (the first two as before budgets existed):
//!
//! - `left`: what the key may still spend in `window`; a key without a
//!   budget counts down from 0, so minus `left` is what it spent;
//! - `window`: the window `left` counts in, named by its kind and start
//!   ([`crate::domain::Period::window`]; `t` for a key without a budget);
//! - `budget`: the tokens per window, or NULL for no budget;
//! - `models`: the catalog ids the key may call, or NULL for any.
//!
//! A chat guesses that the key's window is current: its condition is
//! `window IN (the four windows of now) AND left >= cost`, its update
//! `left = left - cost`. Only the first chat of a new window guesses wrong;
//! the refusal hands back the old entry, and the chat is sent again
//! renewing the window (`window = :old` in the condition, `left = budget -
//! cost`): one more round trip per key and period, none otherwise, no
//! reset job, and two chats renewing at once cannot both reset it. The
//! other family (a counter named by its window, `if_not_exists`) needs the
//! key's period to name the counter, which the writer cannot know without
//! a read; and it leaves a counter per idle window behind.
//!
//! Holds count against `left` when taken; a settle gives back the unused
//! part and a release all of it, but only into the window the hold was
//! taken in: the hold records the key and when it was taken, and the
//! close's condition asks that the key's window be one of the windows of
//! that instant. A hold closed after its window ended leaves the new
//! window's spend alone.

use crate::credits::Credits;
use aws_sdk_dynamodb::types::AttributeValue;

use super::n;
use super::s;
use super::Item;
use crate::clock::Timestamp;
use crate::domain::{current_windows, Budget, Period};
use crate::error::ApiError;

const LEFT: usize = 2;
const WINDOW: usize = 3;
const BUDGET: usize = 4;
const MODELS: usize = 5;

/// The account's map of API key entries (`keys` is a reserved word), each
/// key's entry with its budget, window and models.
pub(super) const API_KEYS: &str = "api_keys";

/// The window a key without a budget counts its spend in: forever.
const NO_WINDOW: &str = "t";

/// Which window a chat's write assumes the key's `left` counts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Window {
    /// The key's stored window is still current (nearly always).
    Current,
    /// The stored window `old` ended: start `new` at the full budget.
    Renew { old: String, new: String },
}

/// The parts of an account update a chat with an API key adds: SET
/// clauses, a condition, and their values. The entry is `#sid`.
pub(super) struct KeyPart {
    pub set: String,
    pub condition: String,
    pub values: Vec<(String, AttributeValue)>,
}

/// The entry of a new key.
pub(super) fn new_entry(
    expires_at: i64,
    budget: Option<Budget>,
    models: Option<&[String]>,
    now: Timestamp,
) -> AttributeValue {
    let (left, window, budget) = match budget {
        Some(b) => (n(b.tokens), s(b.period.window(now)), n(b.tokens)),
        None => (n(0), s(NO_WINDOW), AttributeValue::Null(true)),
    };
    AttributeValue::L(vec![
        n(expires_at),
        AttributeValue::Null(true),
        left,
        window,
        budget,
        models_value(models),
    ])
}

fn models_value(models: Option<&[String]>) -> AttributeValue {
    match models {
        Some(models) => AttributeValue::L(models.iter().map(s).collect()),
        None => AttributeValue::Null(true),
    }
}

/// The account update's part for a chat that spends `cost` with model
/// `model` under `window` (the cost and `#sid` are bound by the caller as
/// `:cost` and the key id).
pub(super) fn charge_part(model: &str, window: &Window, now: Timestamp) -> KeyPart {
    let key = "api_keys.#sid";
    let mut values = vec![
        (":key_null".to_owned(), s("NULL")),
        (":key_model".to_owned(), s(model)),
    ];
    let models = format!(
        "(attribute_not_exists({key}[{MODELS}]) OR attribute_type({key}[{MODELS}], :key_null) \
         OR contains({key}[{MODELS}], :key_model))"
    );
    let (set, budget) = match window {
        Window::Current => {
            let names = current_windows(now);
            for (i, name) in names.iter().enumerate() {
                values.push((format!(":key_w{i}"), s(name)));
            }
            values.push((":key_zero".to_owned(), n(0)));
            (
                // A key from before budgets has no `left` yet: it starts
                // at 0, and with no budget nothing limits it.
                format!("{key}[{LEFT}] = if_not_exists({key}[{LEFT}], :key_zero) - :cost"),
                format!(
                    "(attribute_not_exists({key}[{BUDGET}]) OR attribute_type({key}[{BUDGET}], :key_null) \
                     OR ({key}[{WINDOW}] IN (:key_w0, :key_w1, :key_w2, :key_w3) AND {key}[{LEFT}] >= :cost))"
                ),
            )
        }
        Window::Renew { old, new } => {
            values.push((":key_old".to_owned(), s(old)));
            values.push((":key_new".to_owned(), s(new)));
            (
                format!("{key}[{LEFT}] = {key}[{BUDGET}] - :cost, {key}[{WINDOW}] = :key_new"),
                format!("({key}[{WINDOW}] = :key_old AND {key}[{BUDGET}] >= :cost)"),
            )
        }
    };
    KeyPart {
        set,
        condition: format!("{models} AND {budget}"),
        values,
    }
}

/// The account update's part that gives `amount` back to key `#kid`'s
/// `left`, if the key is still there and still counts in the window of
/// `taken`, when its hold was taken.
pub(super) fn give_back_part(taken: Timestamp) -> KeyPart {
    let key = "api_keys.#kid";
    let mut values = Vec::new();
    for (i, name) in current_windows(taken).iter().enumerate() {
        values.push((format!(":key_w{i}"), s(name)));
    }
    KeyPart {
        set: format!("{key}[{LEFT}] = {key}[{LEFT}] + :key_back"),
        condition: format!(
            "attribute_exists({key}[{LEFT}]) AND (attribute_not_exists({key}[{WINDOW}]) \
             OR {key}[{WINDOW}] IN (:key_w0, :key_w1, :key_w2, :key_w3))"
        ),
        values,
    }
}

/// A key's entry as stored, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct KeyEntry {
    pub expires_at: i64,
    pub last_used: Option<String>,
    pub left: i64,
    pub window: String,
    pub budget: Option<Budget>,
    pub models: Option<Vec<String>>,
}

impl KeyEntry {
    /// The entry of key `id` in `account`, if the key is there.
    pub fn of(account: &Item, id: &str) -> Result<Option<KeyEntry>, ApiError> {
        let Some(entry) = account
            .get(API_KEYS)
            .and_then(|keys| keys.as_m().ok())
            .and_then(|keys| keys.get(id))
        else {
            return Ok(None);
        };
        let bad = || ApiError::internal("a key entry cannot be read");
        let entry = entry.as_l().map_err(|_| bad())?;
        let number = |i: usize| {
            entry
                .get(i)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let window = entry
            .get(WINDOW)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| NO_WINDOW.to_owned());
        let budget = match number(BUDGET) {
            Some(tokens) => Some(Budget {
                tokens: Credits::new(tokens.unsigned_abs()),
                period: Period::of_window(&window).ok_or_else(bad)?,
            }),
            None => None,
        };
        let models = match entry.get(MODELS) {
            Some(AttributeValue::L(models)) => Some(
                models
                    .iter()
                    .map(|m| m.as_s().cloned().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?,
            ),
            _ => None,
        };
        Ok(Some(KeyEntry {
            expires_at: number(0).ok_or_else(bad)?,
            last_used: entry.get(1).and_then(|d| d.as_s().ok()).cloned(),
            left: number(LEFT).unwrap_or(0),
            window,
            budget,
            models,
        }))
    }

    /// Whether the entry's window is current at `now`.
    fn current(&self, now: Timestamp) -> bool {
        current_windows(now).contains(&self.window)
    }

    /// What the key may still spend at `now`: the budget in a new window.
    pub fn left_at(&self, now: Timestamp) -> Option<Credits> {
        let budget = self.budget?;
        Some(if self.current(now) {
            Credits::new(self.left.max(0).unsigned_abs())
        } else {
            budget.tokens
        })
    }

    /// What the key spent in its current window at `now` (with no budget:
    /// since budgets exist).
    pub fn spent_at(&self, now: Timestamp) -> Credits {
        match (self.budget, self.left_at(now)) {
            (Some(budget), Some(left)) => budget.tokens.saturating_sub(left),
            _ => Credits::new(self.left.min(0).unsigned_abs()),
        }
    }

    /// When the key's budget starts over, seen at `now`.
    pub fn resets_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.budget?.period.resets_at(now)
    }

    /// The window a chat at `now` must renew first, if the stored one
    /// ended; `None` while it is current or the key has no budget.
    pub fn renewal(&self, now: Timestamp) -> Option<Window> {
        let budget = self.budget?;
        (!self.current(now)).then(|| Window::Renew {
            old: self.window.clone(),
            new: budget.period.window(now),
        })
    }

    /// Why this key may not make a chat of `cost` with `model` at `now`,
    /// if it may not.
    pub fn refusal(&self, model: &str, cost: Credits, now: Timestamp) -> Option<ApiError> {
        if let Some(models) = &self.models {
            if !models.iter().any(|m| m == model) {
                return Some(ApiError::ModelNotAllowed(model.to_owned()));
            }
        }
        let budget = self.budget?;
        let left = self.left_at(now)?;
        (left < cost).then(|| ApiError::KeyBudgetExceeded {
            budget: budget.tokens,
            period: budget.period,
            left,
            cost,
            resets_at: self.resets_at(now),
        })
    }

    /// The entry with a new budget and model list, as `PATCH /keys/{id}`
    /// makes it at `now`: a budget of the same period keeps what was
    /// spent in the current window; another period starts a new one.
    pub fn changed(
        &self,
        budget: Option<Budget>,
        models: Option<&[String]>,
        now: Timestamp,
    ) -> AttributeValue {
        let spent = self.spent_at(now);
        let same_period = self.budget.map(|b| b.period) == budget.map(|b| b.period);
        let (left, window, budget_value) = match budget {
            Some(b) if same_period => (
                i128::from(b.tokens) - i128::from(spent),
                b.period.window(now),
                n(b.tokens),
            ),
            Some(b) => (i128::from(b.tokens), b.period.window(now), n(b.tokens)),
            // No budget: counts down from what it spent before.
            None => (
                -i128::from(spent),
                NO_WINDOW.to_owned(),
                AttributeValue::Null(true),
            ),
        };
        AttributeValue::L(vec![
            n(self.expires_at),
            self.last_used
                .as_ref()
                .map_or(AttributeValue::Null(true), s),
            n(left),
            s(window),
            budget_value,
            models_value(models),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(left: i64, window: &str, budget: Option<u64>, models: Option<&[&str]>) -> KeyEntry {
        KeyEntry {
            expires_at: i64::MAX,
            last_used: None,
            left,
            window: window.into(),
            budget: budget.map(|tokens| Budget {
                tokens: Credits::new(tokens),
                period: Period::of_window(window).unwrap(),
            }),
            models: models.map(|m| m.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn stored(id: &str, entry: AttributeValue) -> Item {
        Item::from([(
            API_KEYS.to_owned(),
            AttributeValue::M(HashMap::from([(id.to_owned(), entry)])),
        )])
    }

    fn read_back(entry: AttributeValue) -> KeyEntry {
        KeyEntry::of(&stored("k", entry), "k").unwrap().unwrap()
    }

    #[test]
    fn a_new_entry_reads_back_as_it_was_made() {
        let now = Timestamp::now();
        let weekly = Budget {
            tokens: Credits::new(500),
            period: Period::Week,
        };
        let models = ["haiku".to_owned(), "sonnet".to_owned()];
        let entry = new_entry(1234, Some(weekly), Some(&models), now);
        assert_eq!(
            read_back(entry.clone()),
            KeyEntry {
                expires_at: 1234,
                last_used: None,
                left: 500,
                window: Period::Week.window(now),
                budget: Some(weekly),
                models: Some(models.to_vec()),
            }
        );
        assert_eq!(KeyEntry::of(&stored("k", entry), "other").unwrap(), None);
        assert_eq!(
            read_back(new_entry(99, None, None, now)),
            KeyEntry {
                expires_at: 99,
                last_used: None,
                left: 0,
                window: NO_WINDOW.into(),
                budget: None,
                models: None,
            }
        );
        assert_eq!(
            read_back(new_entry(99, Some(weekly), None, now)).resets_at(now),
            Period::Week.resets_at(now)
        );
        assert_eq!(
            read_back(new_entry(99, None, None, now)).resets_at(now),
            None
        );
    }

    #[test]
    fn a_changed_budget_keeps_its_periods_spend_and_no_budget_counts_it_down() {
        let now = Timestamp::now();
        let today = Period::Day.window(now);
        // 250 a day, 100 of it spent today.
        let key = KeyEntry {
            last_used: Some("2026-12-03".into()),
            ..entry(150, &today, Some(250), None)
        };
        let budget = |tokens, period| {
            Some(Budget {
                tokens: Credits::new(tokens),
                period,
            })
        };
        // The same period: what was spent stays spent.
        let more = read_back(key.changed(budget(400, Period::Day), None, now));
        assert_eq!(
            (more.left, more.spent_at(now), more.last_used.as_deref()),
            (300, Credits::new(100), Some("2026-12-03"))
        );
        // Below what was spent: nothing left, and a chat is refused.
        let less = read_back(key.changed(budget(60, Period::Day), None, now));
        assert_eq!((less.left, less.left_at(now)), (-40, Some(Credits::ZERO)));
        // Another period starts in full, with the models given.
        let weekly =
            read_back(key.changed(budget(400, Period::Week), Some(&["haiku".to_owned()]), now));
        assert_eq!(
            (weekly.left, weekly.window.as_str(), weekly.spent_at(now)),
            (400, Period::Week.window(now).as_str(), Credits::ZERO)
        );
        assert_eq!(weekly.models, Some(vec!["haiku".to_owned()]));
        // No budget: it counts down from what it spent.
        let free = read_back(key.changed(None, None, now));
        assert_eq!(
            (
                free.left,
                free.window.as_str(),
                free.budget,
                free.spent_at(now)
            ),
            (-100, NO_WINDOW, None, Credits::new(100))
        );
    }

    #[test]
    fn a_key_is_refused_past_its_budget_or_outside_its_models() {
        let now = Timestamp::now();
        let today = Period::Day.window(now);
        let key = entry(150, &today, Some(250), Some(&["haiku"]));
        assert!(key.refusal("haiku", Credits::new(150), now).is_none());
        assert_eq!(
            key.refusal("haiku", Credits::new(151), now).unwrap().code(),
            "key_budget_exceeded"
        );
        assert_eq!(
            key.refusal("opus", Credits::new(1), now).unwrap().code(),
            "model_not_allowed"
        );
        assert_eq!(key.spent_at(now), Credits::new(100));
        assert_eq!(key.renewal(now), None);
    }

    #[test]
    fn an_ended_window_counts_as_a_full_budget_and_is_renewed() {
        let now = Timestamp::now();
        let key = entry(0, "d2000-01-01", Some(250), None);
        assert_eq!(key.left_at(now), Some(Credits::new(250)));
        assert_eq!(key.spent_at(now), Credits::new(0));
        assert!(key.refusal("any", Credits::new(250), now).is_none());
        assert_eq!(
            key.renewal(now),
            Some(Window::Renew {
                old: "d2000-01-01".into(),
                new: Period::Day.window(now)
            })
        );
        // A key without a budget never renews and is never refused for it.
        let free = entry(-500, "t", None, None);
        assert_eq!(free.renewal(now), None);
        assert_eq!(free.spent_at(now), Credits::new(500));
        assert!(free.refusal("any", Credits::new(u64::MAX), now).is_none());
    }
}
