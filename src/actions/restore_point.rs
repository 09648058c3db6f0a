//! The replay half of a restore to a moment (`restore --at`) of a continuous target: the
//! shipped transactions replayed onto the staged base copy and the result checked whole
//! with `integrity_check` before anything is put in place. For a database on this host
//! the base is staged next to the destination as any restore's copy is; for one on
//! another host the replay happens here, in a scratch directory, and the checked copy is
//! then staged on the host through the target's own restore (the host's shell, its
//! `sqlite3` describing what arrived, compared with the replayed copy's facts), so the
//! same plan, approvals, move-aside and rename put it in place there.

use std::path::Path;

use crate::actions::restore::{RestorePlan, failed_checks, stream_content};
use crate::app::App;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::replicate::point::PointInTime;
use crate::sources::{Restoring, Source};

/// Replay `point` onto the base copy staged at `file` and check it with
/// `integrity_check`.
pub fn replay_checked(
    app: &App,
    plan: &RestorePlan,
    point: &PointInTime,
    file: &Path,
    ctx: &JobContext,
) -> Result<()> {
    let page_size = plan
        .backup
        .sqlite
        .as_ref()
        .map(|f| f.page_size)
        .ok_or_else(|| Error::Failed(format!("backup {} has no database facts", plan.backup.id)))?;
    ctx.progress.phase("replaying shipped transactions");
    let objects = crate::replicate::objects_for(app, &plan.target)?;
    let done = crate::replicate::point::replay(objects.as_ref(), point, file, page_size)?;
    ctx.progress.phase("integrity_check");
    let conn = rusqlite::Connection::open(file)
        .map_err(|e| Error::sqlite("opening the replayed copy", e))?;
    let check = crate::sources::sqlite::pragma_check(&conn, "integrity_check")?;
    drop(conn);
    if check != "ok" {
        return Err(Error::Failed(format!(
            "the copy replayed to {} failed integrity_check ({}): {done}",
            point.at,
            check.lines().take(5).collect::<Vec<_>>().join("; ")
        )));
    }
    tracing::info!(target = %plan.target, "restore to {}: {done}; integrity_check ok", point.at);
    Ok(())
}

/// A restore to a moment of a database on another host, up to the copy staged there and
/// checked: the base downloaded into a scratch directory here (its checksum checked),
/// replayed and checked, described, and sent to the host's staging path; what arrived
/// must have the replayed copy's `quick_check` result and rows per table.
pub fn staged_on_host<'a>(
    app: &App,
    plan: &RestorePlan,
    point: &PointInTime,
    source: &'a dyn Source,
    ctx: &JobContext,
) -> Result<Box<dyn Restoring + 'a>> {
    let scratch = app.scratch()?;
    let file = scratch.path().join("replayed.sqlite");
    stream_content(app, plan, ctx, |content| {
        let mut out = std::fs::File::create(&file)
            .map_err(|e| Error::io(format!("creating {}", file.display()), e))?;
        std::io::copy(content, &mut out)
            .map_err(|e| Error::io(format!("staging {}", file.display()), e))?;
        Ok(())
    })?;
    replay_checked(app, plan, point, &file, ctx)?;
    let conn = rusqlite::Connection::open(&file)
        .map_err(|e| Error::sqlite("opening the replayed copy", e))?;
    let facts = crate::sources::sqlite::describe(&conn)?;
    drop(conn);
    let bytes = std::fs::metadata(&file)
        .map_err(|e| Error::io(format!("reading {}", file.display()), e))?
        .len();
    // What goes to the host is the replayed copy, not the base: its size and its facts.
    let mut replayed = plan.backup.clone();
    replayed.content_bytes = bytes;
    replayed.sqlite = Some(facts);
    let mut restoring = source.restore(&replayed, &plan.placement(), ctx)?;
    ctx.progress.phase("sending the replayed copy to the host");
    let staged = std::fs::File::open(&file)
        .map_err(|e| Error::io(format!("opening {}", file.display()), e))
        .and_then(|mut f| restoring.stage(&mut f, ctx))
        .and_then(|()| failed_checks(&replayed, restoring.check(ctx)?));
    match staged {
        Ok(()) => Ok(restoring),
        Err(e) => {
            restoring.discard();
            Err(e)
        }
    }
}
