//! UTC timestamps with microsecond precision, the unit every backend stores and sorts on.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since the Unix epoch, UTC. Stored as an integer so that every backend
/// compares and indexes it cheaply; rendered as RFC 3339 in UTC.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Earliest and latest timestamps accepted (years 1970 to 2499), so that every stored
/// timestamp renders as a four-digit-year RFC 3339 string and, times 512, fits the
/// 64-bit time-ordered position key of the SQLite store.
pub const MIN_MICROS: i64 = 0;
pub const MAX_MICROS: i64 = 16_725_225_599_999_999;

impl Timestamp {
    pub fn from_datetime(dt: DateTime<Utc>) -> Timestamp {
        Timestamp(dt.timestamp_micros())
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// Parses RFC 3339 with an explicit offset; the value is converted to UTC and
    /// truncated to microseconds.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
        let dt =
            DateTime::parse_from_rfc3339(s).map_err(|e| format!("must be an RFC 3339 timestamp with offset ({e})"))?;
        let micros = dt.timestamp_micros();
        if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
            return Err("must be between 1970 and 2499".into());
        }
        Ok(Timestamp(micros))
    }

    /// Parses either an RFC 3339 timestamp or a bare `YYYY-MM-DD` date. A date stands
    /// for the start of that day, or its last microsecond when `end_of_day` is set, so
    /// that `to=2024-03-31` includes the whole of the 31st.
    pub fn parse_bound(s: &str, end_of_day: bool) -> Result<Timestamp, String> {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let start = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_micros();
            let t = if end_of_day { start + 86_400_000_000 - 1 } else { start };
            if !(MIN_MICROS..=MAX_MICROS).contains(&t) {
                return Err("must be between 1970 and 2499".into());
            }
            return Ok(Timestamp(t));
        }
        Timestamp::parse_rfc3339(s).map_err(|_| "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp".to_string())
    }

    /// RFC 3339 in UTC with a `Z`, showing fractional seconds only when there are some.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// RFC 3339 in UTC with exactly six fractional digits: a fixed-width form that
    /// round-trips exactly, used in rendered queries and cursors.
    pub fn to_rfc3339_micros(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_normalises_to_utc() {
        let t = Timestamp::parse_rfc3339("2024-03-01T19:30:00+09:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-01T10:30:00Z");
        let t = Timestamp::parse_rfc3339("2024-03-01T10:30:00.1234567Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-01T10:30:00.123456Z");
        assert!(Timestamp::parse_rfc3339("2024-03-01 10:30").is_err());
        assert!(Timestamp::parse_rfc3339("2024-03-01T10:30:00").is_err());
    }

    #[test]
    fn date_bounds_cover_the_whole_day() {
        let a = Timestamp::parse_bound("2024-03-31", false).unwrap();
        let b = Timestamp::parse_bound("2024-03-31", true).unwrap();
        assert_eq!(b.0 - a.0, 86_400_000_000 - 1);
        assert_eq!(a.to_rfc3339(), "2024-03-31T00:00:00Z");
    }
}
