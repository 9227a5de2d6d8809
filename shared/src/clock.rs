//! Wall-clock reads in the two forms the API uses.

use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// ISO-8601 in UTC with milliseconds, e.g. `2026-11-25T14:03:07.123Z`.
const ISO_8601_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

const DAY: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// A point in wall-clock time, UTC: what is stored and shown. Named apart
/// from `std::time::Instant`, the monotonic clock that measures latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// Seconds since the epoch: the unit of DynamoDB's TTL attribute.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Milliseconds since the epoch: for waits short enough that a second's
    /// rounding would decide them, and all that [`Timestamp::iso8601`]
    /// shows, as a number to store and read back.
    pub fn unix_millis(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The instant `millis` milliseconds after the epoch, if it is a date.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .ok()
            .map(Timestamp)
    }

    pub fn plus(self, duration: std::time::Duration) -> Self {
        Timestamp(self.0 + duration)
    }

    /// The UTC day, `2026-11-25`: an API key's "last used".
    pub fn day(self) -> String {
        self.0
            .format(DAY)
            .expect("formatting a UTC date with a static description cannot fail")
    }

    /// The instant `seconds` after the epoch, if it is a date at all.
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Timestamp)
    }

    /// A UTC instant as the API takes one: a day (`2026-12-02`, its
    /// midnight) or a date-time in [`Timestamp::iso8601`]'s form, with or
    /// without its milliseconds. `None` for anything else.
    pub fn parse_utc(raw: &str) -> Option<Self> {
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = raw.get(range)?;
            part.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| part.parse().ok())?
        };
        let separated = |at: usize, with: u8| raw.as_bytes().get(at) == Some(&with);
        if !(separated(4, b'-') && separated(7, b'-')) {
            return None;
        }
        let month = time::Month::try_from(u8::try_from(number(5..7)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::try_from(number(0..4)?).ok()?,
            month,
            u8::try_from(number(8..10)?).ok()?,
        )
        .ok()?;
        let (time, millis) = match raw.len() {
            10 => (time::Time::MIDNIGHT, 0),
            20 | 24 => {
                let clock = separated(10, b'T')
                    && separated(13, b':')
                    && separated(16, b':')
                    && raw.ends_with('Z');
                if !clock {
                    return None;
                }
                let millis = if raw.len() == 24 {
                    if !separated(19, b'.') {
                        return None;
                    }
                    number(20..23)?
                } else {
                    0
                };
                let time = time::Time::from_hms(
                    u8::try_from(number(11..13)?).ok()?,
                    u8::try_from(number(14..16)?).ok()?,
                    u8::try_from(number(17..19)?).ok()?,
                )
                .ok()?;
                (time, millis)
            }
            _ => return None,
        };
        let at = time::PrimitiveDateTime::new(date, time).assume_utc();
        Timestamp::from_unix_millis(at.unix_timestamp() * 1000 + i64::from(millis))
    }

    pub fn iso8601(self) -> String {
        self.0
            .format(ISO_8601_MILLIS)
            .expect("formatting a UTC date with a static description cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let t = Timestamp(
            OffsetDateTime::from_unix_timestamp_nanos(1_795_615_387_123_456_789).unwrap(),
        );
        assert_eq!(t.iso8601(), "2026-11-25T14:03:07.123Z");
        assert_eq!(t.unix_seconds(), 1_795_615_387);
        assert_eq!(t.unix_millis(), 1_795_615_387_123);
        assert_eq!(
            Timestamp::from_unix_millis(1_795_615_387_123).map(Timestamp::unix_millis),
            Some(1_795_615_387_123)
        );
        assert_eq!(t.day(), "2026-11-25");
        let back = Timestamp::from_unix_millis(t.unix_millis()).unwrap();
        assert_eq!(back.iso8601(), t.iso8601());
    }

    #[test]
    fn days_and_date_times_are_read_back_and_nothing_else() {
        let iso = |raw: &str| Timestamp::parse_utc(raw).map(Timestamp::iso8601);
        assert_eq!(iso("2026-11-25").unwrap(), "2026-11-25T00:00:00.000Z");
        assert_eq!(
            iso("2026-11-25T14:03:07Z").unwrap(),
            "2026-11-25T14:03:07.000Z"
        );
        assert_eq!(
            iso("2026-11-25T14:03:07.123Z").unwrap(),
            "2026-11-25T14:03:07.123Z"
        );
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-1-01",
            "+026-11-25",
            "2026-11-25T14:03:07",
            "2026-11-25T24:00:00Z",
            "2026-11-25T14:03:07.12Z",
            "2026-11-25 14:03:07Z",
        ] {
            assert_eq!(iso(bad), None, "{bad}");
        }
    }
}
