//! What `verify` proves of a continuous target's shipped history, generation by
//! generation: every transaction number from the base on is in some segment (a missing
//! run is a gap naming its numbers); every segment reads back whole (zstd's content
//! checksum over every byte, the end mark's frame count) and says of itself what its name
//! says (generation, transaction numbers, page size, one commit frame per transaction);
//! and the chain replayed onto its base copy passes `integrity_check`; where a later base
//! copy of the same generation records a transaction (a scheduled one, see
//! [`super::scheduled`]), the chain replayed up to it equals that copy page for page. What
//! it could not prove is said too, never passed over (no later base copy, one gone).

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::point::{Piece, PointInTime, replay};
use super::record::{Generation, Position, generations, position_key, read};
use super::scheduled::LaterBase;
use super::segment::{SegmentName, SegmentReader};
use crate::app::App;
use crate::error::{Error, Result};
use crate::progress::JobContext;
use crate::stores::Store;

/// What a chain check found: statements it stands behind, those it could not make, and
/// problems (a gap, a damaged segment, a replay that fails).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ChainProof {
    pub proved: Vec<String>,
    pub not_proved: Vec<String>,
    pub problems: Vec<String>,
}

/// One generation's segments, checked: the pieces a replay takes (each transaction
/// once) and the highest transaction reached with no gap.
struct Walked {
    pieces: Vec<Piece>,
    reached: u64,
    segments: usize,
    problems: Vec<String>,
}

/// Prove the shipped history of `target`: every generation's chain, and its replay
/// onto its base copy in `scratch`.
pub fn prove(app: &App, target: &str, scratch: &Path, ctx: &JobContext) -> Result<ChainProof> {
    let objects = super::objects_for(app, target)?;
    let mut proof = ChainProof::default();
    let position: Option<Position> = read(objects.as_ref(), &position_key(target))?;
    let all = generations(objects.as_ref(), target)?;
    if all.is_empty() {
        proof.not_proved.push(format!(
            "{target} has no shipped history in {} yet",
            objects.describe()
        ));
        return Ok(proof);
    }
    for g in &all {
        ctx.cancel.check().map_err(|e| Error::io("verifying", e))?;
        let walked = walk(objects.as_ref(), target, g)?;
        let current = position.as_ref().filter(|p| p.generation == g.generation);
        let mut problems = walked.problems;
        if let Some(p) = current
            && p.txid > walked.reached
            && problems.is_empty()
        {
            problems.push(format!(
                "generation {}: the position says transactions up to {} are shipped, the store holds them up to {} only",
                g.generation, p.txid, walked.reached
            ));
        }
        if !problems.is_empty() {
            proof.problems.extend(problems);
            continue;
        }
        proof.proved.push(format!(
            "generation {}: transactions {} to {} with no gap, {} segments read back whole and consistent with their names",
            g.generation,
            g.base_txid + 1,
            walked.reached,
            walked.segments
        ));
        let point = PointInTime {
            at: String::new(),
            generation: g.generation.clone(),
            base_backup: g.base_backup.clone(),
            base_at: g.base_at.clone(),
            first_base: true,
            passed_over: Vec::new(),
            base_txid: g.base_txid,
            up_to_txid: walked.reached,
            transactions: walked.reached - g.base_txid,
            up_to_committed_by: None,
            replicated_to: String::new(),
            segments: walked.pieces,
        };
        let later = super::scheduled::later_bases(objects.as_ref(), target, &g.generation)?;
        let mut compared = ChainProof::default();
        match replayed(app, target, objects.as_ref(), g, &point, &later, scratch, ctx, &mut compared) {
            Ok(Some(done)) => proof.proved.push(format!(
                "generation {}: replayed onto base copy {} ({done}), integrity_check ok",
                g.generation, g.base_backup
            )),
            Ok(None) => proof.not_proved.push(format!(
                "generation {}: its base copy {} is no longer in the store, so the chain was not replayed",
                g.generation, g.base_backup
            )),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => proof.problems.push(format!(
                "generation {}: replaying onto base copy {} failed: {e}",
                g.generation, g.base_backup
            )),
        }
        proof.proved.extend(compared.proved);
        proof.problems.extend(compared.problems);
        proof.not_proved.extend(compared.not_proved);
        if later.is_empty() {
            proof.not_proved.push(format!(
                "generation {}: no later base copy records a transaction of it, so the replayed state was not compared with one",
                g.generation
            ));
        }
    }
    Ok(proof)
}

/// Walk a generation's segments in transaction order, reading each one whole.
fn walk(store: &dyn Store, target: &str, g: &Generation) -> Result<Walked> {
    let names = SegmentName::of_generation(store, target, &g.generation)?;
    let mut walked = Walked {
        pieces: Vec::new(),
        reached: g.base_txid,
        segments: 0,
        problems: Vec::new(),
    };
    // Damaged segments are named first; the transactions only they held then show as a
    // gap, said to be theirs.
    let mut damaged: Vec<&SegmentName> = Vec::new();
    let mut whole: Vec<&SegmentName> = Vec::new();
    for n in &names {
        match check_segment(store, g, n) {
            Ok(()) => whole.push(n),
            Err(why) => {
                walked.problems.push(format!(
                    "segment {} (transactions {} to {}): {why}",
                    n.key, n.first_txid, n.last_txid
                ));
                damaged.push(n);
            }
        }
    }
    for n in whole {
        walked.segments += 1;
        if n.last_txid <= walked.reached {
            continue; // shipped again after a crash: already in
        }
        if n.first_txid > walked.reached + 1 {
            let (from, to) = (walked.reached + 1, n.first_txid - 1);
            let whose = if damaged
                .iter()
                .any(|d| d.first_txid <= to && d.last_txid >= from)
            {
                " (only damaged segments hold them)"
            } else {
                ""
            };
            walked.problems.push(format!(
                "generation {}: a gap, transactions {from} to {to} are missing from the store{whose}",
                g.generation
            ));
        }
        walked.pieces.push(Piece {
            key: n.key.clone(),
            from_txid: (walked.reached + 1).max(n.first_txid),
            to_txid: n.last_txid,
        });
        walked.reached = n.last_txid;
    }
    if let Some(d) = damaged.iter().find(|d| d.last_txid > walked.reached) {
        walked.problems.push(format!(
            "generation {}: transactions after {} are only in damaged segments (up to {})",
            g.generation, walked.reached, d.last_txid
        ));
    }
    Ok(walked)
}

/// Read one segment whole: it decompresses with its checksum intact, ends with its end
/// mark, and holds what its name and its generation say.
fn check_segment(
    store: &dyn Store,
    g: &Generation,
    n: &SegmentName,
) -> std::result::Result<(), String> {
    let reader = store.open(&n.key).map_err(|e| e.to_string())?;
    let mut segment = SegmentReader::new(reader).map_err(|e| e.to_string())?;
    let h = segment.header.clone();
    if h.generation != g.generation
        || h.first_txid != n.first_txid
        || h.last_txid != n.last_txid
        || h.seen_ms != n.seen_ms
    {
        return Err(format!(
            "its header (generation {}, transactions {} to {}) differs from its name",
            h.generation, h.first_txid, h.last_txid
        ));
    }
    if h.page_size != g.page_size {
        return Err(format!(
            "pages of {} bytes, its generation's {}",
            h.page_size, g.page_size
        ));
    }
    let mut commits = 0u64;
    while let Some(f) = segment.next_frame().map_err(|e| e.to_string())? {
        if f.commit_pages > 0 {
            commits += 1;
        }
    }
    let named = n.last_txid + 1 - n.first_txid;
    if commits != named {
        return Err(format!(
            "it holds {commits} committed transactions, its name {named}"
        ));
    }
    Ok(())
}

/// Stage the generation's base copy (checked against its manifest as it is read) and
/// replay the chain onto it; `None` when the base copy is gone. On the way, at each
/// later base copy's transaction, the replayed file is compared with that copy page for
/// page ([`super::compare`]); what that proved, or found, goes into `compared`.
#[allow(clippy::too_many_arguments)]
fn replayed(
    app: &App,
    target: &str,
    objects: &dyn Store,
    g: &Generation,
    point: &PointInTime,
    later: &[LaterBase],
    scratch: &Path,
    ctx: &JobContext,
    compared: &mut ChainProof,
) -> Result<Option<String>> {
    let file = scratch.join(format!("{}.replayed.sqlite", g.generation));
    let Some(manifest) = stage_backup(app, target, &g.base_backup, &file, ctx)? else {
        return Ok(None);
    };
    let page_size = manifest
        .sqlite
        .as_ref()
        .map(|f| f.page_size)
        .ok_or_else(|| Error::Failed(format!("backup {} has no database facts", manifest.id)))?;
    let mut at = point.base_txid;
    for b in later.iter().filter(|b| b.txid > point.base_txid) {
        ctx.cancel.check().map_err(|e| Error::io("verifying", e))?;
        if b.txid > point.up_to_txid {
            compared.not_proved.push(format!(
                "generation {}: base copy {} records transaction {}, past the {} shipped, so it was not compared",
                g.generation, b.backup, b.txid, point.up_to_txid
            ));
            continue;
        }
        replay(objects, &between(point, at, b.txid), &file, page_size)?;
        at = b.txid;
        let other = scratch.join(format!("{}.base-{}.sqlite", g.generation, b.txid));
        let staged = stage_backup(app, target, &b.backup, &other, ctx);
        let outcome = match staged {
            Ok(None) => {
                compared.not_proved.push(format!(
                    "generation {}: base copy {} (transaction {}) is no longer in the store, so it was not compared",
                    g.generation, b.backup, b.txid
                ));
                continue;
            }
            Ok(Some(_)) => super::compare::first_difference(&file, &other, page_size),
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&other);
        match outcome {
            Ok(None) => compared.proved.push(format!(
                "generation {}: replayed from base copy {} to transaction {}, the database equals base copy {} page for page ({} pages)",
                g.generation,
                g.base_backup,
                b.txid,
                b.backup,
                super::compare::pages(&file, page_size)
            )),
            Ok(Some(why)) => compared.problems.push(format!(
                "generation {}: replayed from base copy {} to transaction {}, the database differs from base copy {}, which records that transaction: {why}",
                g.generation, g.base_backup, b.txid, b.backup
            )),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => compared.problems.push(format!(
                "generation {}: base copy {} (transaction {}) could not be compared: {e}",
                g.generation, b.backup, b.txid
            )),
        }
    }
    replay(
        objects,
        &between(point, at, point.up_to_txid),
        &file,
        page_size,
    )?;
    let conn = rusqlite::Connection::open(&file)
        .map_err(|e| Error::sqlite("opening the replayed copy", e))?;
    let check = crate::sources::sqlite::pragma_check(&conn, "integrity_check")?;
    drop(conn);
    let _ = std::fs::remove_file(&file);
    if check != "ok" {
        return Err(Error::Failed(format!(
            "integrity_check: {}",
            check.lines().take(5).collect::<Vec<_>>().join("; ")
        )));
    }
    Ok(Some(format!(
        "{} transactions replayed",
        point.up_to_txid - point.base_txid
    )))
}

/// The part of `point` after transaction `after`, up to and including `to`.
fn between(point: &PointInTime, after: u64, to: u64) -> PointInTime {
    PointInTime {
        base_txid: after,
        up_to_txid: to,
        transactions: to.saturating_sub(after),
        segments: point
            .segments
            .iter()
            .filter(|p| p.to_txid > after && p.from_txid <= to)
            .map(|p| Piece {
                key: p.key.clone(),
                from_txid: p.from_txid.max(after + 1),
                to_txid: p.to_txid.min(to),
            })
            .collect(),
        ..point.clone()
    }
}

/// Stage backup `id` of `target` at `file`, checked against its manifest as it is read;
/// `None` when it is no longer in the store.
fn stage_backup(
    app: &App,
    target: &str,
    id: &str,
    file: &Path,
    ctx: &JobContext,
) -> Result<Option<crate::stores::manifest::Manifest>> {
    let selector = crate::actions::shared::Selector::Id(id.to_string());
    let Ok(manifest) = crate::actions::catalog::find(app, target, &selector) else {
        return Ok(None);
    };
    let (_, store) = app.store_for(target)?;
    let problems =
        crate::actions::verify::read_checked(store.as_ref(), &manifest, ctx, |content| {
            copy_to(content, file)?;
            Ok(Vec::new())
        })?;
    if !problems.is_empty() {
        let _ = std::fs::remove_file(file);
        return Err(Error::Failed(format!(
            "backup {id} is damaged: {}",
            problems.join("; ")
        )));
    }
    Ok(Some(manifest))
}

fn copy_to(content: &mut dyn Read, file: &Path) -> Result<()> {
    let mut out = std::fs::File::create(file)
        .map_err(|e| Error::io(format!("creating {}", file.display()), e))?;
    std::io::copy(content, &mut out)
        .map_err(|e| Error::io(format!("staging {}", file.display()), e))?;
    Ok(())
}
