//! The state of serve's outgoing chat connections (Slack Socket Mode, Discord Gateway):
//! one row per platform, written by serve when the state changes, read by `/healthz`,
//! `/metrics` and `lifeboat status` (which runs in another process).

use rusqlite::params;

use super::{Db, DbError};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatLink {
    pub platform: String,
    /// "socket" or "gateway".
    pub mode: String,
    /// "connecting", "connected", "disconnected" or "stopped" (serve has exited).
    pub state: String,
    /// When the link entered this state.
    pub since: String,
    /// Why it is in this state (the last error, the disconnect reason), or "".
    pub detail: String,
}

impl ChatLink {
    pub fn connected(&self) -> bool {
        self.state == "connected"
    }
}

impl Db {
    /// Record a link's state; `since` only moves when the state changes.
    pub fn chat_link_set(
        &self,
        platform: &str,
        mode: &str,
        state: &str,
        detail: &str,
    ) -> Result<(), DbError> {
        let now = crate::units::now_text();
        self.lock().execute(
            "INSERT INTO chat_links (platform, mode, state, since, detail, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?4)
             ON CONFLICT(platform) DO UPDATE SET
                since = CASE WHEN state = excluded.state AND mode = excluded.mode
                        THEN since ELSE excluded.since END,
                mode = excluded.mode, state = excluded.state,
                detail = excluded.detail, updated_at = excluded.updated_at",
            params![platform, mode, state, now, detail],
        )?;
        Ok(())
    }

    /// Forget the links of platforms that no longer use a connection (mode back to http).
    pub fn chat_links_keep(&self, platforms: &[&str]) -> Result<(), DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT platform FROM chat_links")?;
        let all: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for p in all.iter().filter(|p| !platforms.contains(&p.as_str())) {
            conn.execute("DELETE FROM chat_links WHERE platform = ?1", [p])?;
        }
        Ok(())
    }

    pub fn chat_links(&self) -> Result<Vec<ChatLink>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT platform, mode, state, since, detail FROM chat_links ORDER BY platform",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ChatLink {
                    platform: r.get(0)?,
                    mode: r.get(1)?,
                    state: r.get(2)?,
                    since: r.get(3)?,
                    detail: r.get(4)?,
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
    fn since_moves_only_when_the_state_changes() {
        let db = Db::in_memory();
        db.chat_link_set("slack", "socket", "connecting", "")
            .unwrap();
        let first = db.chat_links().unwrap()[0].clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        db.chat_link_set("slack", "socket", "connecting", "retrying")
            .unwrap();
        let again = db.chat_links().unwrap()[0].clone();
        assert_eq!(again.since, first.since);
        assert_eq!(again.detail, "retrying");
        std::thread::sleep(std::time::Duration::from_millis(5));
        db.chat_link_set("slack", "socket", "connected", "")
            .unwrap();
        let up = db.chat_links().unwrap()[0].clone();
        assert!(up.connected() && up.since > first.since, "{up:?}");
        db.chat_link_set("discord", "gateway", "connected", "")
            .unwrap();
        db.chat_links_keep(&["discord"]).unwrap();
        let left: Vec<String> = db
            .chat_links()
            .unwrap()
            .into_iter()
            .map(|l| l.platform)
            .collect();
        assert_eq!(left, vec!["discord"]);
    }
}
