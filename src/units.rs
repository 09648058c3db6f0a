//! How times, ages, durations, counts and sizes are written, everywhere: stored times
//! (RFC 3339 UTC with milliseconds), short ages ("3m", "1h30m"), durations as people say
//! them ("0.4 s", "2 min 13 s"), counted nouns ("1 admin", "2 admins"), byte sizes
//! ("1.5 MiB"). A leaf: it imports nothing from the crate, so every layer can use it.

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

/// How long something took, as people say it: "0.4 s", "12 s", "2 min 13 s", "1 h 5 min".
pub fn human_duration(seconds: f64) -> String {
    let s = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    if s < 10.0 {
        // One decimal: a job of a few hundred milliseconds is not "0 s".
        return format!("{s:.1} s");
    }
    let whole = s.round() as u64;
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    match (h, m, sec) {
        (0, 0, sec) => format!("{sec} s"),
        (0, m, 0) => format!("{m} min"),
        (0, m, sec) => format!("{m} min {sec} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// `n` and the noun, in the singular for one: "1 admin", "2 admins", "0 backups".
/// `plural` is the noun's plural where adding an "s" is wrong ("entries").
pub fn count(n: u64, singular: &str, plural: Option<&str>) -> String {
    match (n, plural) {
        (1, _) => format!("1 {singular}"),
        (n, Some(p)) => format!("{n} {p}"),
        (n, None) => format!("{n} {singular}s"),
    }
}

/// A UTC time as people read it: "2026-12-05 12:46 UTC" (seconds only when asked).
pub fn utc_text(t: DateTime<Utc>, seconds: bool) -> String {
    let format = if seconds {
        "%Y-%m-%d %H:%M:%S UTC"
    } else {
        "%Y-%m-%d %H:%M UTC"
    };
    t.format(format).to_string()
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
        assert_eq!(utc_text(t, false), "2026-11-22 08:30 UTC");
    }

    #[test]
    fn durations_and_counts_read_as_people_say_them() {
        assert_eq!(human_duration(0.0), "0.0 s");
        assert_eq!(human_duration(0.42), "0.4 s");
        assert_eq!(human_duration(9.94), "9.9 s");
        assert_eq!(human_duration(12.4), "12 s");
        assert_eq!(human_duration(133.0), "2 min 13 s");
        assert_eq!(human_duration(120.2), "2 min");
        assert_eq!(human_duration(3900.0), "1 h 5 min");
        assert_eq!(human_duration(7200.0), "2 h");
        assert_eq!(human_duration(f64::NAN), "0.0 s");
        assert_eq!(count(1, "other admin", None), "1 other admin");
        assert_eq!(count(2, "other admin", None), "2 other admins");
        assert_eq!(count(0, "entry", Some("entries")), "0 entries");
    }
}
