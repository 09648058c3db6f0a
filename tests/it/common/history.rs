//! Months of history written into a real lifeboat state database (after lifeboat made
//! its schema): catalog entries with their manifests, the backup and verify jobs that
//! made and checked them, drills with measured RTO/RPO, for the status page's tests and
//! benchmark.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rusqlite::{Connection, params};
use serde_json::json;

/// What to write for one target.
pub struct Seed<'a> {
    pub target: &'a str,
    pub kind: &'a str,
    /// None: an external target (reported backups, no catalog).
    pub store: Option<&'a str>,
    pub days: i64,
    pub every_hours: i64,
    /// Stored size of the first backup; it grows about 0.3% a backup.
    pub base_size: u64,
    /// Typical backup duration in seconds.
    pub base_seconds: f64,
    /// A drill this often (0: none), with this typical RTO in seconds.
    pub drill_every_days: i64,
    pub drill_rto: f64,
    /// Days ago (from, to) with no backups: an outage the RPO chart shows.
    pub gap: Option<(i64, i64)>,
    /// Drills about this many days ago fail and take 5x as long.
    pub failed_drill: Option<i64>,
}

pub fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A small deterministic generator, so every run draws the same charts.
struct Noise(u64);

impl Noise {
    /// A factor in 1 ± spread.
    fn factor(&mut self, spread: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        1.0 + spread * (unit * 2.0 - 1.0)
    }
}

/// Write `s`'s history, its newest backup at `newest`; returns how many backups were
/// written.
pub fn seed(conn: &mut Connection, s: &Seed, newest: DateTime<Utc>) -> usize {
    let now = newest;
    let tx = conn.transaction().unwrap();
    let mut noise = Noise(
        s.target
            .bytes()
            .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64)),
    );
    let start = now - Duration::days(s.days);
    let mut at = start;
    let mut n = 0usize;
    while at <= now {
        let days_ago = (now - at).num_days();
        let in_gap = s
            .gap
            .is_some_and(|(from, to)| days_ago <= from && days_ago >= to);
        if !in_gap {
            let secs = s.base_seconds * noise.factor(0.25);
            let size = (s.base_size as f64 * (1.0 + 0.003 * n as f64) * noise.factor(0.03)) as u64;
            backup(&tx, s, at, size, secs, n);
            n += 1;
        }
        at += Duration::hours(s.every_hours);
    }
    if s.drill_every_days > 0 {
        let mut d = start + Duration::days(s.drill_every_days / 2);
        while d < now {
            let days_ago = (now - d).num_days();
            let failed = s
                .failed_drill
                .is_some_and(|f| (days_ago - f).abs() < s.drill_every_days / 2 + 1);
            let rto = s.drill_rto * noise.factor(0.3) * if failed { 5.0 } else { 1.0 };
            drill(&tx, s, d, rto, !failed);
            d += Duration::days(s.drill_every_days);
        }
    }
    tx.commit().unwrap();
    n
}

fn backup(
    tx: &rusqlite::Transaction<'_>,
    s: &Seed,
    at: DateTime<Utc>,
    size: u64,
    secs: f64,
    n: usize,
) {
    let id = format!("{}-{}", at.format("%Y%m%dT%H%M%SZ"), n);
    let finished = at + Duration::milliseconds((secs * 1000.0) as i64);
    if let Some(store) = s.store {
        let manifest = json!({
            "format": 1, "id": id, "target": s.target, "kind": s.kind, "store": store,
            "created_at": text(at), "finished_at": text(finished), "duration_seconds": secs,
            "status": "complete", "artifact": format!("{}/{id}.zst", s.target),
            "compression": "zstd", "size_bytes": size, "sha256": "0".repeat(64),
            "content_bytes": size * 3, "content_sha256": "0".repeat(64),
            "lifeboat_version": "0.1.0"
        });
        tx.prepare_cached(
            "INSERT INTO catalog (target, id, store, kind, created_at, size_bytes, sha256, manifest) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .unwrap()
        .execute(params![s.target, id, store, s.kind, text(at), size as i64, "0".repeat(64), manifest.to_string()])
        .unwrap();
    }
    let actor = if s.store.is_some() {
        "lifeboat:schedule"
    } else {
        "hook:ping"
    };
    job(
        tx,
        "backup",
        s.target,
        actor,
        "succeeded",
        at,
        finished,
        s.store.map(|_| id.as_str()),
    );
    if n.is_multiple_of(7) && s.store.is_some() {
        let v = finished + Duration::minutes(5);
        job(
            tx,
            "verify",
            s.target,
            "lifeboat:schedule",
            "succeeded",
            v,
            v + Duration::seconds(20),
            Some(&id),
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn job(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    target: &str,
    actor: &str,
    state: &str,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    backup: Option<&str>,
) {
    tx.prepare_cached(
        "INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, backup_id, message, pid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
    )
    .unwrap()
    .execute(params![kind, target, actor, state, text(started), text(finished), backup, format!("{kind} {state}")])
    .unwrap();
}

fn drill(tx: &rusqlite::Transaction<'_>, s: &Seed, at: DateTime<Utc>, rto: f64, ok: bool) {
    let problems = if ok {
        json!([])
    } else {
        json!(["RTO over its objective"])
    };
    tx.prepare_cached(
        "INSERT INTO drills (target, backup_id, actor, started_at, finished_at, ok, rto_seconds, rpo_seconds, rto_objective_seconds, rpo_objective_seconds, problems, report) VALUES (?1, NULL, 'lifeboat:schedule', ?2, ?3, ?4, ?5, ?6, NULL, NULL, ?7, '# drill')",
    )
    .unwrap()
    .execute(params![
        s.target,
        text(at),
        text(at + Duration::milliseconds((rto * 1000.0) as i64)),
        ok,
        rto,
        s.every_hours as f64 * 1800.0,
        problems.to_string()
    ])
    .unwrap();
}

/// A job of `kind` on `target` that ended now in `state` (e.g. a failed backup).
pub fn finished_job(conn: &Connection, kind: &str, target: &str, state: &str, message: &str) {
    let now = Utc::now();
    conn.execute(
        "INSERT INTO jobs (kind, target, actor, state, started_at, finished_at, message, pid) VALUES (?1, ?2, 'lifeboat:schedule', ?3, ?4, ?5, ?6, 1)",
        params![kind, target, state, text(now - Duration::minutes(3)), text(now), message],
    )
    .unwrap();
}
