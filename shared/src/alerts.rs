//! Alerts before the money runs out: which writes of an account cross a
//! threshold, decided from the users table's stream (old and new image of
//! each write), never by the writer.
//!
//! A chat's charge is one `TransactWriteItems`, which hands back no
//! values, so the chat cannot see that it crossed a threshold without a
//! read it cannot afford. The stream can: every atomic write of an account
//! item is one stream record with the item before and after, and the
//! writes of one item are totally ordered. A threshold is crossed by
//! exactly one record however many chats race (the one whose old image is
//! on one side and whose new image is on the other), so one event per
//! crossing needs no lock and no extra write on the chat's path.
//!
//! The thresholds:
//! - the user's own `alert_below` (an attribute of the account, set through
//!   `PATCH /balance/` or `chat-ops alert`): old balance >= N > new balance.
//!   A grant that brings the balance back to N or above re-arms it;
//! - each API key with a budget, at 80 % and at 100 % of it: the spend of
//!   the key's window reaches the mark in this record and had not in the
//!   previous one. A new window counts afresh: the old image's spend counts
//!   only when it was in the same window.
//!
//! Each alert's `id` is a hash of the user, what crossed and the record's
//! stream sequence number: a record delivered twice (a retried batch)
//! yields the same ids, which is how a consumer drops the repeat.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::domain::sha256_hex;
use crate::store::USERNAME;

/// The account attribute that holds the user's threshold, in tokens.
pub const ALERT_BELOW: &str = "alert_below";

/// The largest threshold a user or the operator may set: what the
/// configuration allows a balance to be granted in one go, and far inside
/// DynamoDB's and JSON's exact integers.
pub const MAX_ALERT_BELOW: u64 = 1_000_000_000_000;

/// The marks of a key's budget that alert, in percent.
pub const KEY_MARKS: [u8; 2] = [80, 100];

/// The EventBridge `Source` of every alert.
pub const SOURCE: &str = "chat-api.alerts";

/// One record of the users table's stream, as Lambda and DynamoDB Streams
/// both give it: the images are in DynamoDB's JSON (`{"N": "12"}`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct StreamRecord {
    #[serde(rename = "SequenceNumber")]
    pub sequence: String,
    #[serde(rename = "OldImage", default)]
    pub old: Option<Map<String, Value>>,
    #[serde(rename = "NewImage", default)]
    pub new: Option<Map<String, Value>>,
}

/// What an account image says that alerts read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Image {
    username: String,
    tokens: i64,
    alert_below: Option<i64>,
    keys: BTreeMap<String, KeySpend>,
}

/// A key's budget and what is left of it in `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct KeySpend {
    left: i64,
    window: String,
    budget: Option<i64>,
}

impl KeySpend {
    /// Spent in the window, if the key has a budget.
    fn spent(&self) -> Option<i64> {
        self.budget.map(|budget| budget - self.left)
    }

    /// Whether the spend has reached `mark` percent of the budget
    /// (exact: integers, no rounding).
    fn reached(&self, mark: u8) -> bool {
        match (self.budget, self.spent()) {
            (Some(budget), Some(spent)) => {
                i128::from(spent) * 100 >= i128::from(budget) * i128::from(mark)
            }
            _ => false,
        }
    }
}

/// One crossing: what an alert reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Crossing {
    /// The balance fell below the user's threshold.
    BalanceBelow { threshold: i64, balance: i64 },
    /// A key's spend this window reached `mark` percent of its budget.
    KeyBudget {
        key: String,
        mark: u8,
        budget: i64,
        spent: i64,
        window: String,
    },
}

impl Crossing {
    /// What crossed, as the alert's identity names it.
    fn what(&self) -> String {
        match self {
            Crossing::BalanceBelow { .. } => "balance".to_owned(),
            Crossing::KeyBudget { key, mark, .. } => format!("key/{key}/{mark}"),
        }
    }

    /// The EventBridge `DetailType`.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Crossing::BalanceBelow { .. } => "Balance below threshold",
            Crossing::KeyBudget { .. } => "Key budget reached",
        }
    }
}

/// One alert: a crossing, whose account and which record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub user: String,
    pub sequence: String,
    pub crossing: Crossing,
}

impl Alert {
    /// The stable identity: the same record always gives the same id, and
    /// no two crossings share one.
    pub fn id(&self) -> String {
        sha256_hex(format!("{}\n{}\n{}", self.user, self.crossing.what(), self.sequence).as_bytes())
    }

    /// The event's `detail`, as EventBridge carries it and `make run`
    /// prints it.
    pub fn detail(&self) -> Value {
        let mut detail = json!({
            "id": self.id(),
            "user": self.user,
            "sequence": self.sequence,
        });
        let fields = match &self.crossing {
            Crossing::BalanceBelow { threshold, balance } => json!({
                "kind": "balance_below",
                "threshold": threshold,
                "balance": balance,
            }),
            Crossing::KeyBudget {
                key,
                mark,
                budget,
                spent,
                window,
            } => json!({
                "kind": "key_budget",
                "key": key,
                "percent": mark,
                "budget": budget,
                "spent": spent,
                "window": window,
            }),
        };
        if let (Some(detail), Value::Object(fields)) = (detail.as_object_mut(), fields) {
            detail.extend(fields);
        }
        detail
    }
}

/// Why a record could not be read: an account image not as this code
/// writes it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stream record {sequence}: {reason}")]
pub struct BadRecord {
    pub sequence: String,
    pub reason: String,
}

/// The alerts of one stream record: none for a record of another kind of
/// item (the signing key's), an account made or deleted, or a write that
/// crossed nothing.
pub fn alerts_of(record: &StreamRecord) -> Result<Vec<Alert>, BadRecord> {
    let bad = |reason: String| BadRecord {
        sequence: record.sequence.clone(),
        reason,
    };
    let (Some(old), Some(new)) = (&record.old, &record.new) else {
        return Ok(Vec::new());
    };
    let (Some(old), Some(new)) = (image(old).map_err(&bad)?, image(new).map_err(&bad)?) else {
        return Ok(Vec::new());
    };
    Ok(crossings(&old, &new)
        .into_iter()
        .map(|crossing| Alert {
            user: new.username.clone(),
            sequence: record.sequence.clone(),
            crossing,
        })
        .collect())
}

/// What crossed between two images of one account.
fn crossings(old: &Image, new: &Image) -> Vec<Crossing> {
    let mut crossed = Vec::new();
    if let Some(threshold) = new.alert_below {
        if old.tokens >= threshold && new.tokens < threshold {
            crossed.push(Crossing::BalanceBelow {
                threshold,
                balance: new.tokens,
            });
        }
    }
    for (id, key) in &new.keys {
        let (Some(budget), Some(spent)) = (key.budget, key.spent()) else {
            continue;
        };
        // The spend before counts only in the same window: a new window
        // starts from nothing, so its first chat can cross again.
        let before = old.keys.get(id).filter(|k| k.window == key.window);
        for mark in KEY_MARKS {
            if key.reached(mark) && !before.is_some_and(|k| k.reached(mark)) {
                crossed.push(Crossing::KeyBudget {
                    key: id.clone(),
                    mark,
                    budget,
                    spent,
                    window: key.window.clone(),
                });
            }
        }
    }
    crossed
}

/// An account's image, `None` for any other item of the users table
/// (their keys start with `~`, which no username has).
fn image(item: &Map<String, Value>) -> Result<Option<Image>, String> {
    let username = string(item.get(USERNAME)).ok_or("no username")?;
    if username.starts_with('~') || !item.contains_key("tokens") {
        return Ok(None);
    }
    let tokens = number(item.get("tokens")).ok_or("tokens is not a number")?;
    let alert_below = match item.get(ALERT_BELOW) {
        None => None,
        Some(value) => Some(number(Some(value)).ok_or("alert_below is not a number")?),
    };
    let mut keys = BTreeMap::new();
    if let Some(entries) = item
        .get("api_keys")
        .and_then(|v| v.get("M"))
        .and_then(Value::as_object)
    {
        for (id, entry) in entries {
            if let Some(spend) = key_spend(entry)? {
                keys.insert(id.clone(), spend);
            }
        }
    }
    Ok(Some(Image {
        username: username.to_owned(),
        tokens,
        alert_below,
        keys,
    }))
}

/// A key entry's budget part (see `store::key_limits`: `[expires_at, last
/// used, left, window, budget, models]`); `None` for an entry from before
/// budgets, which has none.
fn key_spend(entry: &Value) -> Result<Option<KeySpend>, String> {
    let list = entry
        .get("L")
        .and_then(Value::as_array)
        .ok_or("a key entry is not a list")?;
    if list.len() < 5 {
        return Ok(None);
    }
    let left = number(list.get(2)).ok_or("a key's left is not a number")?;
    let window = string(list.get(3)).ok_or("a key's window is not a string")?;
    let budget = match list.get(4) {
        Some(v) if v.get("NULL").is_some() => None,
        other => Some(number(other).ok_or("a key's budget is not a number")?),
    };
    Ok(Some(KeySpend {
        left,
        window: window.to_owned(),
        budget,
    }))
}

fn number(value: Option<&Value>) -> Option<i64> {
    value?.get("N")?.as_str()?.parse().ok()
}

fn string(value: Option<&Value>) -> Option<&str> {
    value?.get("S")?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An account image in DynamoDB's JSON: balance, threshold and keys as
    /// (id, left, window, budget).
    fn account(tokens: i64, below: Option<i64>, keys: &[(&str, i64, &str, Option<i64>)]) -> Value {
        let mut item = json!({
            "username": {"S": "alice"},
            "tokens": {"N": tokens.to_string()},
            "version": {"N": "7"},
            "sessions": {"M": {}},
        });
        if let Some(below) = below {
            item[ALERT_BELOW] = json!({"N": below.to_string()});
        }
        let mut entries = Map::new();
        for (id, left, window, budget) in keys {
            let budget = budget.map_or(json!({"NULL": true}), |b| json!({"N": b.to_string()}));
            entries.insert(
                (*id).to_owned(),
                json!({"L": [{"N": "9999999999"}, {"NULL": true}, {"N": left.to_string()},
                             {"S": window}, budget, {"NULL": true}]}),
            );
        }
        item["api_keys"] = json!({ "M": entries });
        item
    }

    fn record(old: Value, new: Value) -> StreamRecord {
        serde_json::from_value(json!({
            "SequenceNumber": "100",
            "OldImage": old,
            "NewImage": new,
        }))
        .unwrap()
    }

    fn crossed(old: Value, new: Value) -> Vec<Crossing> {
        alerts_of(&record(old, new))
            .unwrap()
            .into_iter()
            .map(|a| a.crossing)
            .collect()
    }

    fn key(mark: u8, spent: i64, window: &str) -> Crossing {
        Crossing::KeyBudget {
            key: "k1".into(),
            mark,
            budget: 250,
            spent,
            window: window.into(),
        }
    }

    #[test]
    fn the_balance_alerts_once_when_it_falls_below_the_threshold() {
        let below = |balance| Crossing::BalanceBelow {
            threshold: 500,
            balance,
        };
        // From exactly the threshold to below it: crossed.
        assert_eq!(
            crossed(account(500, Some(500), &[]), account(400, Some(500), &[])),
            [below(400)]
        );
        // Further down, already below: nothing.
        assert!(crossed(account(400, Some(500), &[]), account(300, Some(500), &[])).is_empty());
        // Down to the threshold itself is not below it.
        assert!(crossed(account(600, Some(500), &[]), account(500, Some(500), &[])).is_empty());
        // No threshold, nothing.
        assert!(crossed(account(600, None, &[]), account(0, None, &[])).is_empty());
    }

    #[test]
    fn a_grant_back_over_the_threshold_re_arms_it() {
        let t = Some(500);
        // Grant: up, no alert.
        assert!(crossed(account(300, t, &[]), account(1300, t, &[])).is_empty());
        // The next fall below is a new crossing.
        assert_eq!(
            crossed(account(1300, t, &[]), account(450, t, &[])),
            [Crossing::BalanceBelow {
                threshold: 500,
                balance: 450
            }]
        );
    }

    #[test]
    fn setting_a_threshold_above_the_balance_is_not_a_crossing() {
        // The record that sets the threshold moves no tokens.
        assert!(crossed(account(300, None, &[]), account(300, Some(500), &[])).is_empty());
        assert!(crossed(account(300, Some(100), &[]), account(300, Some(500), &[])).is_empty());
    }

    #[test]
    fn a_key_alerts_at_80_and_at_100_percent_each_once() {
        let d = "d2026-12-02";
        let at = |left| account(1000, None, &[("k1", left, d, Some(250))]);
        // 150 spent -> 200 spent: 80 % (200 of 250) reached.
        assert_eq!(crossed(at(100), at(50)), [key(80, 200, d)]);
        // 200 -> 240: past 80 % already, short of 100 %.
        assert!(crossed(at(50), at(10)).is_empty());
        // 240 -> 250: 100 %.
        assert_eq!(crossed(at(10), at(0)), [key(100, 250, d)]);
        // 199 -> 200 exactly: the mark is reached at equality.
        assert_eq!(crossed(at(51), at(50)), [key(80, 200, d)]);
    }

    #[test]
    fn several_thresholds_crossed_in_one_record_each_alert() {
        let d = "d2026-12-02";
        let old = account(600, Some(500), &[("k1", 250, d, Some(250))]);
        let new = account(350, Some(500), &[("k1", 0, d, Some(250))]);
        assert_eq!(
            crossed(old, new),
            [
                Crossing::BalanceBelow {
                    threshold: 500,
                    balance: 350
                },
                key(80, 250, d),
                key(100, 250, d),
            ]
        );
    }

    #[test]
    fn a_new_window_counts_afresh() {
        let old = account(1000, None, &[("k1", 0, "d2026-12-01", Some(250))]);
        // The first chat of the next day: 200 of the new day's 250.
        let new = account(1000, None, &[("k1", 50, "d2026-12-02", Some(250))]);
        assert_eq!(crossed(old.clone(), new), [key(80, 200, "d2026-12-02")]);
        // A renewal that spends little crosses nothing.
        let new = account(1000, None, &[("k1", 200, "d2026-12-02", Some(250))]);
        assert!(crossed(old, new).is_empty());
    }

    #[test]
    fn a_give_back_re_arms_a_key_mark() {
        let d = "d2026-12-02";
        let at = |left| account(1000, None, &[("k1", left, d, Some(250))]);
        // A released hold gives 100 back: under 80 % again, no alert.
        assert!(crossed(at(0), at(100)).is_empty());
        // Spending it again reaches 80 % and 100 % anew.
        assert_eq!(crossed(at(100), at(0)), [key(80, 250, d), key(100, 250, d)]);
    }

    #[test]
    fn keys_without_a_budget_new_keys_and_old_entries_do_not_alert() {
        let d = "d2026-12-02";
        // No budget: counts down from 0, never a mark.
        let free = |left| account(1000, None, &[("k1", left, "t", None)]);
        assert!(crossed(free(0), free(-5000)).is_empty());
        // A key made now, its budget untouched.
        let made = account(1000, None, &[("k1", 250, d, Some(250))]);
        assert!(crossed(account(1000, None, &[]), made).is_empty());
        // An entry from before budgets: [expires_at, last used].
        let mut old = account(1000, None, &[]);
        old["api_keys"] = json!({"M": {"k1": {"L": [{"N": "1"}, {"NULL": true}]}}});
        assert!(crossed(old.clone(), old).is_empty());
    }

    #[test]
    fn records_of_other_items_and_of_made_or_deleted_accounts_are_ignored() {
        let signing = json!({"username": {"S": "~token-signing-key"}, "keys": {"L": []}});
        assert!(crossed(signing.clone(), signing).is_empty());
        // INSERT (a registration) and REMOVE carry one image only.
        let only_new: StreamRecord = serde_json::from_value(json!({
            "SequenceNumber": "1", "NewImage": account(0, Some(500), &[])
        }))
        .unwrap();
        assert!(alerts_of(&only_new).unwrap().is_empty());
        let only_old: StreamRecord = serde_json::from_value(json!({
            "SequenceNumber": "2", "OldImage": account(1000, Some(500), &[])
        }))
        .unwrap();
        assert!(alerts_of(&only_old).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_account_image_is_an_error_not_silence() {
        let mut bad = account(100, Some(500), &[]);
        bad["tokens"] = json!({"S": "many"});
        let err = alerts_of(&record(account(600, Some(500), &[]), bad)).unwrap_err();
        assert_eq!(err.sequence, "100");
    }

    #[test]
    fn the_same_record_gives_the_same_ids_and_crossings_differ() {
        let d = "d2026-12-02";
        let old = account(600, Some(500), &[("k1", 250, d, Some(250))]);
        let new = account(350, Some(500), &[("k1", 0, d, Some(250))]);
        let first = alerts_of(&record(old.clone(), new.clone())).unwrap();
        let again = alerts_of(&record(old.clone(), new.clone())).unwrap();
        let ids: Vec<String> = first.iter().map(Alert::id).collect();
        assert_eq!(ids, again.iter().map(Alert::id).collect::<Vec<_>>());
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 3);
        // Another record (sequence) with the same images: other ids.
        let mut later = record(old, new);
        later.sequence = "101".into();
        assert_ne!(alerts_of(&later).unwrap()[0].id(), ids[0]);
        // The detail carries the id and what crossed.
        let detail = first[0].detail();
        assert_eq!(detail["id"], json!(ids[0]));
        assert_eq!(detail["kind"], "balance_below");
        assert_eq!(detail["threshold"], 500);
        assert_eq!(detail["balance"], 350);
        assert_eq!(first[2].detail()["percent"], 100);
    }
}
