//! When daily and weekly jobs (scheduled exports, retention, the self-check) run next.

use chrono::Datelike;
use trail_core::Timestamp;

/// The first run time strictly after `now` (µs).
pub fn next_run(weekday: Option<u8>, at_minute: u16, now: Timestamp) -> i64 {
    let dt = now.to_datetime();
    let midnight = dt.date_naive().and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(dt);
    for day in 0..=8 {
        let t = midnight + chrono::Duration::days(day) + chrono::Duration::minutes(i64::from(at_minute));
        let weekday_ok = weekday.is_none_or(|w| t.weekday().num_days_from_monday() == u32::from(w));
        if t > dt && weekday_ok {
            return t.timestamp_micros();
        }
    }
    (dt + chrono::Duration::days(1)).timestamp_micros()
}
