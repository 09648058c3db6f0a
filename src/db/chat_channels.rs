//! Alert channels lifeboat cannot post to (unknown, archived, not a member): one row per
//! channel while it stays so, written by serve's alert delivery, read by `/healthz` and
//! `lifeboat status` (which runs in another process).

use rusqlite::params;

use super::{Db, DbError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnusableChannel {
    /// "slack" or "discord".
    pub platform: String,
    pub channel: String,
    /// What the platform answered, e.g. "Slack API: channel_not_found".
    pub problem: String,
    /// Since when posts there fail.
    pub since: String,
}

impl UnusableChannel {
    /// The channel as the config names it, e.g. "slack:C0ALERTS".
    pub fn sink(&self) -> String {
        format!("{}:{}", self.platform, self.channel)
    }
}

impl Db {
    /// Record that posts to a channel fail for good; true when it was not known before
    /// (the caller then logs and audits it, once).
    pub fn chat_channel_unusable(
        &self,
        platform: &str,
        channel: &str,
        problem: &str,
    ) -> Result<bool, DbError> {
        let added = self.lock().execute(
            "INSERT INTO chat_channels (platform, channel, problem, since) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(platform, channel) DO NOTHING",
            params![platform, channel, problem, crate::units::now_text()],
        )?;
        Ok(added > 0)
    }

    /// A post to the channel went through; true when it had been recorded unusable.
    pub fn chat_channel_usable(&self, platform: &str, channel: &str) -> Result<bool, DbError> {
        let removed = self.lock().execute(
            "DELETE FROM chat_channels WHERE platform = ?1 AND channel = ?2",
            params![platform, channel],
        )?;
        Ok(removed > 0)
    }

    /// Forget channels no longer configured as alert channels (`platform:channel`).
    pub fn chat_channels_keep(&self, sinks: &[String]) -> Result<(), DbError> {
        for c in self.chat_channels_unusable()? {
            if !sinks.contains(&c.sink()) {
                self.chat_channel_usable(&c.platform, &c.channel)?;
            }
        }
        Ok(())
    }

    pub fn chat_channels_unusable(&self) -> Result<Vec<UnusableChannel>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT platform, channel, problem, since FROM chat_channels ORDER BY platform, channel",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(UnusableChannel {
                    platform: r.get(0)?,
                    channel: r.get(1)?,
                    problem: r.get(2)?,
                    since: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_reported_once_until_a_post_goes_through() {
        let db = Db::in_memory();
        assert!(
            db.chat_channel_unusable("slack", "C0", "channel_not_found")
                .unwrap()
        );
        assert!(
            !db.chat_channel_unusable("slack", "C0", "is_archived")
                .unwrap()
        );
        let listed = db.chat_channels_unusable().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].sink(), listed[0].problem.as_str()),
            ("slack:C0".to_string(), "channel_not_found")
        );
        assert!(db.chat_channel_usable("slack", "C0").unwrap());
        assert!(!db.chat_channel_usable("slack", "C0").unwrap());
        db.chat_channel_unusable("discord", "9", "Missing Access")
            .unwrap();
        db.chat_channels_keep(&["slack:C0".into()]).unwrap();
        assert!(db.chat_channels_unusable().unwrap().is_empty());
    }
}
