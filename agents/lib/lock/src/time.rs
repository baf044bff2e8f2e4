//! Wall-clock instants in UTC, written as RFC 3339 with microseconds
//! (`2026-11-22T03:28:08.123456Z`): unambiguous across time zones and DST (ResourceLocker
//! wrote local-time ticks), sortable as text, and precise enough to check from the history
//! that two exclusive locks never overlapped.

use hale_tls::civil::{civil_from_days, days_from_civil};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    pub fn now() -> Time {
        Time(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0))
    }
    pub fn from_micros(us: u64) -> Time {
        Time(us)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
    pub fn plus(self, d: Duration) -> Time {
        // Saturating: a duration beyond u64 microseconds (585 000 years) must not wrap to a
        // short one.
        Time(self.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }
    /// How long from `self` until `later` (zero if `later` is earlier).
    pub fn until(self, later: Time) -> Duration {
        Duration::from_micros(later.0.saturating_sub(self.0))
    }

    /// Parse what [`Time`]'s Display writes (and the same without fraction or with fewer digits).
    pub fn parse(s: &str) -> Option<Time> {
        let s = s.strip_suffix('Z')?;
        let (date, clock) = s.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let (y, m, day): (i64, u32, u32) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
        let mut t = hms.splitn(3, ':');
        let (hh, mm, ss): (u64, u64, u64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?, t.next()?.parse().ok()?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 || frac.len() > 6 {
            return None;
        }
        let us_frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
        let days = days_from_civil(y, m, day);
        if days < 0 {
            return None;
        }
        Some(Time(((days as u64 * 86400) + hh * 3600 + mm * 60 + ss) * 1_000_000 + us_frac))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000;
        let (y, m, d) = civil_from_days((secs / 86400) as i64);
        let s = secs % 86400;
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z", s / 3600, s / 60 % 60, s % 60, self.0 % 1_000_000)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a UTC RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc() {
        assert_eq!(Time(0).to_string(), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        let t = Time(1_709_210_096_789_000);
        assert_eq!(t.to_string(), "2024-02-29T12:34:56.789000Z");
        assert_eq!(Time::parse(&t.to_string()), Some(t));
        assert_eq!(Time::parse("2024-02-29T12:34:56.789Z"), Some(t));
        assert_eq!(Time::parse("2024-02-29T12:34:56Z"), Some(Time(1_709_210_096_000_000)));
        assert_eq!(Time::parse("2024-02-29T12:34:56+01:00"), None);
        assert_eq!(Time::parse("2024-13-01T00:00:00Z"), None);
        let now = Time::now();
        assert_eq!(Time::parse(&now.to_string()), Some(now));
    }

    #[test]
    fn adding_a_huge_duration_saturates() {
        // 18446744073710 s in microseconds is just past u64::MAX: it once wrapped to 0.45 s.
        let t = Time(1_000_000);
        assert_eq!(t.plus(Duration::from_secs(18_446_744_073_710)), Time(u64::MAX));
    }
}
