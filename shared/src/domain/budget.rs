//! An API key's budget: at most so many tokens per UTC day, week (from
//! Monday), month, or in total; and the windows its spend is counted in.
//!
//! A window is named by a string that says both its kind and its start
//! (`d2026-12-02`, `w2026-11-30`, `m2026-12`, `t`), so the names of the
//! four windows that hold at one instant are all different, and a stored
//! window equals one of them exactly when it is still the current window of
//! its own kind. That lets a chat's write ask "is this key's window still
//! current?" without knowing the key's period: `window IN (:d, :w, :m, :t)`.

use crate::credits::Credits;
use time::{Date, Duration, Month, OffsetDateTime};

use crate::clock::Timestamp;

/// How often a budget starts over, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    /// Never: the budget is for the key's whole life.
    Total,
}

impl Period {
    pub fn parse(raw: &str) -> Option<Period> {
        match raw {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            "total" => Some(Period::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Total => "total",
        }
    }

    /// The period a stored window name belongs to.
    pub fn of_window(window: &str) -> Option<Period> {
        match window.as_bytes().first() {
            Some(b'd') => Some(Period::Day),
            Some(b'w') => Some(Period::Week),
            Some(b'm') => Some(Period::Month),
            Some(b't') => Some(Period::Total),
            _ => None,
        }
    }

    /// The name of this period's window that holds at `at`.
    pub fn window(self, at: Timestamp) -> String {
        let date = date_of(at);
        match self {
            Period::Day => format!("d{}", iso_day(date)),
            Period::Week => format!("w{}", iso_day(monday_of(date))),
            Period::Month => format!("m{:04}-{:02}", date.year(), u8::from(date.month())),
            Period::Total => "t".to_owned(),
        }
    }

    /// When the window that holds at `at` ends; `None` for a total.
    pub fn resets_at(self, at: Timestamp) -> Option<Timestamp> {
        let date = date_of(at);
        let next = match self {
            Period::Day => date.next_day()?,
            Period::Week => monday_of(date).checked_add(Duration::days(7))?,
            Period::Month => {
                let (year, month) = match date.month() {
                    Month::December => (date.year() + 1, Month::January),
                    month => (date.year(), month.next()),
                };
                Date::from_calendar_date(year, month, 1).ok()?
            }
            Period::Total => return None,
        };
        Timestamp::from_unix_seconds(next.midnight().assume_utc().unix_timestamp())
    }
}

/// A key's budget: `tokens` per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub tokens: Credits,
    pub period: Period,
}

/// The names of the windows of every period at `at`, in the order day,
/// week, month, total: a stored window is current iff it is one of them.
pub fn current_windows(at: Timestamp) -> [String; 4] {
    [
        Period::Day.window(at),
        Period::Week.window(at),
        Period::Month.window(at),
        Period::Total.window(at),
    ]
}

fn date_of(at: Timestamp) -> Date {
    OffsetDateTime::from_unix_timestamp(at.unix_seconds())
        .map(OffsetDateTime::date)
        .unwrap_or(Date::MIN)
}

fn monday_of(date: Date) -> Date {
    let back = i64::from(date.weekday().number_days_from_monday());
    date.checked_sub(Duration::days(back)).unwrap_or(date)
}

fn iso_day(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds).unwrap()
    }

    // 2026-12-02T14:55:00Z, a Wednesday.
    const WEDNESDAY: i64 = 1_796_223_300;

    #[test]
    fn windows_are_named_by_kind_and_start() {
        let now = at(WEDNESDAY);
        assert_eq!(
            current_windows(now),
            ["d2026-12-02", "w2026-11-30", "m2026-12", "t"]
        );
        for period in [Period::Day, Period::Week, Period::Month, Period::Total] {
            assert_eq!(Period::of_window(&period.window(now)), Some(period));
            assert_eq!(Period::parse(period.as_str()), Some(period));
        }
        assert_eq!(Period::parse("year"), None);
    }

    #[test]
    fn each_window_resets_at_its_next_utc_start() {
        let now = at(WEDNESDAY);
        let iso = |p: Period| p.resets_at(now).map(Timestamp::iso8601);
        assert_eq!(iso(Period::Day).unwrap(), "2026-12-03T00:00:00.000Z");
        assert_eq!(iso(Period::Week).unwrap(), "2026-12-07T00:00:00.000Z");
        assert_eq!(iso(Period::Month).unwrap(), "2027-01-01T00:00:00.000Z");
        assert_eq!(iso(Period::Total), None);
        // The last second of a window is still in it; the reset is the next.
        let last = Period::Day.resets_at(now).unwrap().unix_seconds() - 1;
        assert_eq!(Period::Day.window(at(last)), "d2026-12-02");
        assert_eq!(Period::Day.window(at(last + 1)), "d2026-12-03");
    }
}
