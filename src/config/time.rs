//! Time values written as text in the config: humantime durations, six-field cron
//! schedules and IANA time zones, each parsed (and refused with a clear message) at load.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A humantime duration such as "90s", "15m", "1h30m", "7d".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

/// A cron expression with a seconds field, parsed when the config loads.
#[derive(Debug, Clone)]
pub struct CronSchedule(pub cron::Schedule);

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        cron::Schedule::from_str(&text).map(CronSchedule).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid cron expression {text:?} (six fields, seconds first, e.g. \"0 30 3 * * *\"): {e}"
            ))
        })
    }
}

/// An IANA time zone name such as "Europe/Prague".
#[derive(Debug, Clone, Copy)]
pub struct TimeZone(pub chrono_tz::Tz);

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono_tz::Tz::from_str(&text)
            .map(TimeZone)
            .map_err(|_| serde::de::Error::custom(format!("unknown time zone {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_test as parse;

    #[test]
    fn bad_cron_is_named() {
        let e = parse(
            "[stores.l]\nkind=\"local\"\npath=\"/tmp\"\n[targets.a]\nkind=\"sqlite\"\npath=\"/tmp/a.db\"\nstore=\"l\"\nschedule=\"every day\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid cron expression"), "{e}");
        assert!(e.to_string().contains("schedule"), "{e}");
    }
}
