//! How times, ages and sizes are written, everywhere: stored times (RFC 3339 UTC with
//! milliseconds), short ages ("3m", "1h30m"), byte sizes ("1.5 MiB"). A leaf: it imports
//! nothing from the crate, so every layer can use it.

use chrono::{DateTime, SecondsFormat, Utc};

/// Current UTC time as RFC 3339 with millisecond precision, the format of every stored time.
pub fn now_text() -> String {
    time_text(Utc::now())
}

/// A time as stored: RFC 3339, UTC, milliseconds.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored (or any RFC 3339) time, in UTC; None when the text is not one.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds as a short age: "45s", "3m", "1h30m", "2days".
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0) as u64;
    // Minutes are precise enough once past a minute.
    let shown = if s < 60 { s } else { s - s % 60 };
    humantime::format_duration(std::time::Duration::from_secs(shown))
        .to_string()
        .replace(' ', "")
}

/// A byte count in binary units with one decimal: "512 B", "1.5 MiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_ages_and_times_read_as_written() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_age(45), "45s");
        assert_eq!(human_age(5430), "1h 30m".replace(' ', ""));
        let t = parse_time("2026-11-22T08:30:00Z").unwrap();
        assert_eq!(time_text(t), "2026-11-22T08:30:00.000Z");
        assert!(parse_time("yesterday").is_none());
    }
}
