//! Target hooks in the state: the `after_*` commands owed once a `before_*` started (a
//! row per action, cleared when they ran, so a crash in between leaves them for the next
//! start), and each hook command's outcome and output tail, kept with its job. Runs of
//! owed commands are marked unposted until `serve` has told the alert channels.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Db, DbError};
use crate::units::now_text;

/// `after_*` commands a process took on to run and has not yet run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedHooks {
    pub id: i64,
    pub target: String,
    /// "backup" or "restore".
    pub action: String,
    pub job_id: Option<i64>,
    pub backup_id: Option<String>,
    pub commands: Vec<Vec<String>>,
    pub since: String,
    pub pid: i64,
}

/// One hook command as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookRunRecord {
    pub job_id: Option<i64>,
    pub target: String,
    /// "before_backup", "after_restore", ...
    pub phase: String,
    /// The argv as shown (masked).
    pub command: String,
    /// "ok", "failed (exit 3)", "timed out after 5s", ...
    pub outcome: String,
    /// The last lines of its output (masked).
    pub tail: String,
    pub at: String,
    /// For owed commands run after a crash: when they became owed.
    pub owed_since: Option<String>,
}

impl Db {
    /// Record `commands` as owed for `target` before the `before_*` that makes them owed
    /// starts; returns the row to clear once they ran.
    pub fn hooks_owe(
        &self,
        target: &str,
        action: &str,
        job_id: Option<i64>,
        backup_id: Option<&str>,
        commands: &[Vec<String>],
    ) -> Result<i64, DbError> {
        let conn = self.lock();
        let json = serde_json::to_string(commands).unwrap_or_else(|_| "[]".into());
        conn.execute(
            "INSERT INTO hooks_owed (target, action, job_id, backup_id, commands, since, pid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                target,
                action,
                job_id,
                backup_id,
                json,
                now_text(),
                std::process::id()
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The owed commands ran (whatever their exit): clear them.
    pub fn hooks_paid(&self, id: i64) -> Result<(), DbError> {
        self.lock()
            .execute("DELETE FROM hooks_owed WHERE id = ?1", [id])?;
        Ok(())
    }

    /// What is owed for a target (`None`: for every target), oldest first.
    pub fn hooks_owed(&self, target: Option<&str>) -> Result<Vec<OwedHooks>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, target, action, job_id, backup_id, commands, since, pid FROM hooks_owed
             WHERE ?1 IS NULL OR target = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([target], |r| {
            let commands: String = r.get(5)?;
            Ok(OwedHooks {
                id: r.get(0)?,
                target: r.get(1)?,
                action: r.get(2)?,
                job_id: r.get(3)?,
                backup_id: r.get(4)?,
                commands: serde_json::from_str(&commands).unwrap_or_default(),
                since: r.get(6)?,
                pid: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keep a hook command's outcome; runs of owed commands wait to be posted.
    pub fn hook_run_record(&self, run: &HookRunRecord) -> Result<(), DbError> {
        self.lock().execute(
            "INSERT INTO hook_runs (job_id, target, phase, command, outcome, tail, at, owed_since, posted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                run.job_id,
                run.target,
                run.phase,
                run.command,
                run.outcome,
                run.tail,
                run.at,
                run.owed_since,
                run.owed_since.is_none()
            ],
        )?;
        Ok(())
    }

    /// The hook commands a job ran, in order.
    pub fn hook_runs_of_job(&self, job_id: i64) -> Result<Vec<HookRunRecord>, DbError> {
        self.hook_runs_where("job_id = ?1 ORDER BY id", params![job_id], false)
    }

    /// Runs of owed commands no alert channel has been told of yet; marks them told.
    pub fn hook_runs_take_unposted(&self) -> Result<Vec<HookRunRecord>, DbError> {
        self.hook_runs_where("posted = 0 ORDER BY id", params![], true)
    }

    fn hook_runs_where(
        &self,
        clause: &str,
        args: impl rusqlite::Params,
        mark_posted: bool,
    ) -> Result<Vec<HookRunRecord>, DbError> {
        let verb = if mark_posted {
            format!(
                "UPDATE hook_runs SET posted = 1 WHERE id IN (SELECT id FROM hook_runs WHERE {clause})
                 RETURNING job_id, target, phase, command, outcome, tail, at, owed_since"
            )
        } else {
            format!(
                "SELECT job_id, target, phase, command, outcome, tail, at, owed_since FROM hook_runs WHERE {clause}"
            )
        };
        let conn = self.lock();
        let mut stmt = conn.prepare(&verb)?;
        let rows = stmt.query_map(args, |r| {
            Ok(HookRunRecord {
                job_id: r.get(0)?,
                target: r.get(1)?,
                phase: r.get(2)?,
                command: r.get(3)?,
                outcome: r.get(4)?,
                tail: r.get(5)?,
                at: r.get(6)?,
                owed_since: r.get(7)?,
            })
        })?;
        let mut out: Vec<HookRunRecord> = rows.collect::<Result<_, _>>()?;
        // RETURNING gives no order guarantee.
        out.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(out)
    }

    /// Whether anything is owed for the target (cheap; for `status`, which never runs them).
    pub fn hooks_owed_since(&self, target: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT min(since) FROM hooks_owed WHERE target = ?1",
                [target],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_commands_stay_until_paid() {
        let db = Db::in_memory();
        let cmds = vec![vec!["systemctl".to_string(), "start".into(), "app".into()]];
        let id = db
            .hooks_owe("app", "restore", Some(7), Some("B1"), &cmds)
            .unwrap();
        let owed = db.hooks_owed(Some("app")).unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].commands, cmds);
        assert_eq!(owed[0].backup_id.as_deref(), Some("B1"));
        assert!(db.hooks_owed(Some("other")).unwrap().is_empty());
        assert!(db.hooks_owed_since("app").unwrap().is_some());
        db.hooks_paid(id).unwrap();
        assert!(db.hooks_owed(None).unwrap().is_empty());
        assert!(db.hooks_owed_since("app").unwrap().is_none());
    }

    #[test]
    fn runs_of_owed_commands_are_posted_once() {
        let db = Db::in_memory();
        let run = |job: Option<i64>, owed: Option<&str>| HookRunRecord {
            job_id: job,
            target: "app".into(),
            phase: "after_backup".into(),
            command: "true".into(),
            outcome: "ok".into(),
            tail: String::new(),
            at: now_text(),
            owed_since: owed.map(String::from),
        };
        db.hook_run_record(&run(Some(1), None)).unwrap();
        db.hook_run_record(&run(None, Some("2026-01-01T00:00:00.000Z")))
            .unwrap();
        assert_eq!(db.hook_runs_of_job(1).unwrap().len(), 1);
        let unposted = db.hook_runs_take_unposted().unwrap();
        assert_eq!(unposted.len(), 1);
        assert!(unposted[0].owed_since.is_some());
        assert!(db.hook_runs_take_unposted().unwrap().is_empty());
    }
}
