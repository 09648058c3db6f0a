//! Runbook runs: one row per run with its steps' results (JSON), and the confirmations
//! people give manual steps (the first answer for a step wins).

use rusqlite::{OptionalExtension, params};

use super::{Db, DbError};
use crate::units::now_text;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// done | failed
    pub decision: String,
    pub actor: String,
    pub at: String,
}

fn confirmation(
    conn: &rusqlite::Connection,
    run: i64,
    step: usize,
) -> rusqlite::Result<Option<Confirmation>> {
    conn.query_row(
        "SELECT decision, actor, at FROM runbook_confirmations WHERE run_id = ?1 AND step = ?2",
        params![run, step as i64],
        |r| {
            Ok(Confirmation {
                decision: r.get(0)?,
                actor: r.get(1)?,
                at: r.get(2)?,
            })
        },
    )
    .optional()
}

impl Db {
    pub fn runbook_run_insert(
        &self,
        runbook: &str,
        actor: &str,
        channel: Option<&str>,
    ) -> Result<(i64, String), DbError> {
        let conn = self.lock();
        let at = now_text();
        conn.execute(
            "INSERT INTO runbook_runs (runbook, actor, channel, state, started_at, pid) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![runbook, actor, channel, at, std::process::id()],
        )?;
        Ok((conn.last_insert_rowid(), at))
    }

    /// Record the steps' results so far; with a final state, the run's end.
    pub fn runbook_run_update(
        &self,
        id: i64,
        steps_json: &str,
        final_state: Option<&str>,
    ) -> Result<(), DbError> {
        let conn = self.lock();
        match final_state {
            Some(state) => conn.execute(
                "UPDATE runbook_runs SET steps = ?2, state = ?3, finished_at = ?4 WHERE id = ?1",
                params![id, steps_json, state, now_text()],
            )?,
            None => conn.execute(
                "UPDATE runbook_runs SET steps = ?2 WHERE id = ?1",
                params![id, steps_json],
            )?,
        };
        Ok(())
    }

    /// The run's state (running | succeeded | failed | interrupted), if it exists.
    pub fn runbook_run_state(&self, id: i64) -> Result<Option<String>, DbError> {
        Ok(self
            .lock()
            .query_row("SELECT state FROM runbook_runs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Record a person's answer to a manual step. Returns the answer that stands: an
    /// earlier one if somebody was faster.
    pub fn runbook_confirm(
        &self,
        run: i64,
        step: usize,
        decision: &str,
        actor: &str,
    ) -> Result<Confirmation, DbError> {
        let conn = self.lock();
        conn.execute(
            "INSERT OR IGNORE INTO runbook_confirmations (run_id, step, decision, actor, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run, step as i64, decision, actor, now_text()],
        )?;
        Ok(confirmation(&conn, run, step)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
    }

    pub fn runbook_confirmation(
        &self,
        run: i64,
        step: usize,
    ) -> Result<Option<Confirmation>, DbError> {
        Ok(confirmation(&self.lock(), run, step)?)
    }

    /// Runs left `running` by a process that is gone are marked interrupted; returns
    /// (id, runbook) of each.
    pub fn runbook_runs_sweep(&self) -> Result<Vec<(i64, String)>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT id, runbook, pid FROM runbook_runs WHERE state = 'running'")?;
        let rows: Vec<(i64, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut swept = Vec::new();
        for (id, runbook, pid) in rows {
            // Signal 0 only asks whether the process exists.
            let alive = pid as u32 == std::process::id()
                || unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
            if !alive {
                conn.execute(
                    "UPDATE runbook_runs SET state = 'interrupted', finished_at = ?2 WHERE id = ?1",
                    params![id, now_text()],
                )?;
                swept.push((id, runbook));
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_answer_wins_and_dead_runs_are_swept() {
        let db = Db::in_memory();
        let (run, _) = db.runbook_run_insert("r", "cli:a", None).unwrap();
        assert_eq!(db.runbook_confirmation(run, 2).unwrap(), None);
        assert_eq!(
            db.runbook_confirm(run, 2, "done", "slack:U1")
                .unwrap()
                .actor,
            "slack:U1"
        );
        let second = db.runbook_confirm(run, 2, "failed", "slack:U2").unwrap();
        assert_eq!(
            (second.decision.as_str(), second.actor.as_str()),
            ("done", "slack:U1")
        );
        // Our own run is alive; one of a process that is gone is swept.
        assert!(db.runbook_runs_sweep().unwrap().is_empty());
        let (dead, _) = db.runbook_run_insert("r", "cli:a", None).unwrap();
        db.lock()
            .execute(
                "UPDATE runbook_runs SET pid = 999999999 WHERE id = ?1",
                [dead],
            )
            .unwrap();
        assert_eq!(
            db.runbook_runs_sweep().unwrap(),
            vec![(dead, "r".to_string())]
        );
        assert_eq!(
            db.runbook_run_state(dead).unwrap().as_deref(),
            Some("interrupted")
        );
        assert_eq!(
            db.runbook_run_state(run).unwrap().as_deref(),
            Some("running")
        );
    }
}
