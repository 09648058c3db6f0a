//! SQLite databases on another host: the host's own `sqlite3` makes the consistent copy
//! (the backup API, inside one read transaction so a busy database never restarts it)
//! into a temporary file that the remote shell always removes, describes the copy, and
//! streams it back; restores stream the other way into a staging file checked there.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::pipe::ProgressReader;
use crate::progress::JobContext;
use crate::sources::place::ssh::PRELUDE;
use crate::ssh::{RemoteChild, Session};
use crate::stores::manifest::SqliteFacts;

/// Facts about a database file `$f`, one tagged line each; table names in hex so any
/// name survives the trip. `sqlite_master` rather than `sqlite_schema`: older hosts.
const FACTS: &str = r#"
q() { sqlite3 -bail -batch -noheader -list "$f" "$@"; }
facts=$(q "SELECT 'version ' || sqlite_version();" \
  "SELECT 'page_size ' || page_size FROM pragma_page_size;" \
  "SELECT 'page_count ' || page_count FROM pragma_page_count;" \
  "SELECT 'check ' || hex(quick_check) FROM pragma_quick_check;") || say "sqlite3 cannot read the copy $f"
sql=$(q "SELECT 'SELECT ''table ' || hex(name) || ' '' || count(*) FROM \"' || replace(name, '\"', '\"\"') || '\";' FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name;") || say "sqlite3 cannot list the tables of $f"
counts=$(printf '%s\n' "$sql" | q) || say "sqlite3 cannot count the rows of $f"
printf '%s\n%s\n' "$facts" "$counts"
"#;

/// Backup: `$1` is the database. Output: `method <pinned|copied>`, `data <n>`, n bytes of
/// the database as of one transaction, then their fact lines.
///
/// First choice, no copy at all: the file itself, pinned by a read transaction (the same
/// reasoning as local backups, see `sources::sqlite::pin`), driven through one `sqlite3`
/// session with two connections (3.37+): connection 1 holds the write lock for a moment
/// while connection 0 checkpoints the WAL completely and starts its read, then describes
/// what it reads while the file streams.
/// Otherwise (an older sqlite3, a reader pinning old WAL frames, no write access): the
/// backup API into a temporary file next to the database (same disk, no /tmp filling
/// up) or, if that directory is not writable, into $TMPDIR or /tmp.
const BACKUP: &str = r#"
need sqlite3 mktemp cat rm wc sleep
db=$1 tmp= tmpdir= hb= fpid= spid= work=
cleanup() {
  [ -z "$hb" ] || kill "$hb" 2>/dev/null
  [ -z "$fpid" ] || kill "$fpid" 2>/dev/null
  [ -z "$spid" ] || kill "$spid" 2>/dev/null
  [ -z "$tmp" ] || rm -f -- "$tmpdir/$tmp" "$tmpdir/$tmp-journal" "$tmpdir/$tmp-wal" "$tmpdir/$tmp-shm" "$tmpdir/$tmp.facts"
  [ -z "$work" ] || rm -rf -- "$work"
}
trap cleanup EXIT
[ -e "$db" ] || say "the database $db does not exist"
[ -f "$db" ] || say "$db is not a file"
[ -r "$db" ] || say "$(id -un) may not read the database $db"
umask 077

pinned() {
  for c in mkfifo head sed; do command -v "$c" >/dev/null 2>&1 || return 1; done
  case $db in *"
"*) return 1 ;; esac # a dot-command argument cannot hold a newline
  [ -w "$db" ] || return 1
  # Two FIFOs and the facts: next to the database if possible, as the copy would be.
  dir=${db%/*}; [ -n "$dir" ] || dir=/
  work=$(mktemp -d "$dir/.lifeboat-pin.XXXXXXXX" 2>/dev/null) ||
    work=$(mktemp -d "${TMPDIR:-/tmp}/.lifeboat-pin.XXXXXXXX" 2>/dev/null) || { work=; return 1; }
  mkfifo "$work/in" "$work/out" || return 1
  sqlite3 -batch -noheader -list "$db" <"$work/in" >"$work/out" 2>"$work/err" &
  spid=$!
  exec 7>"$work/in" 8<"$work/out"
  # Until the data flows, a sqlite3 that died must not end the script: fall back instead.
  trap '' PIPE
  send() { printf '%s\n' "$@" >&7; }
  # Lines up to the marker $1; the last one before it in $got.
  upto() { got=; while IFS= read -r line <&8; do [ "$line" = "$1" ] && return 0; got=$line; done; return 1; }
  size= tries=0
  # Connection 1 starts empty: it opens the database too (a dot-command argument in
  # double quotes, with backslash escapes).
  qdb=$(printf '%s' "$db" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  send ".timeout 5000" "PRAGMA wal_checkpoint;" ".connection 1" ".open \"$qdb\"" ".timeout 5000" \
    ".connection 0" ".print bulk"
  upto bulk || tries=99
  while [ "$tries" -lt 20 ] && [ ! -s "$work/err" ]; do
    send ".connection 1" "BEGIN IMMEDIATE;" ".connection 0" "PRAGMA wal_checkpoint;" ".print ckpt"
    upto ckpt || break
    # With the write lock held no checkpoint can start, so a running one (the application's
    # automatic checkpoint after its last commit) is about to end: wait it out.
    waits=0
    while [ "${got%%|*}" = 1 ] && [ "$waits" -lt 20 ]; do
      sleep 0.005 2>/dev/null || sleep 1
      send "PRAGMA wal_checkpoint;" ".print ckpt"
      upto ckpt || break
      waits=$((waits + 1))
    done
    busy=${got%%|*} rest=${got#*|}
    if [ ! -s "$work/err" ] && [ "$busy" = 0 ] && [ "${rest%%|*}" = "${rest#*|}" ]; then
      send "BEGIN;" "SELECT 'size ' || (page_size * page_count) FROM pragma_page_size, pragma_page_count;" \
        ".connection 1" "ROLLBACK;" ".connection 0" ".print pinned"
      upto pinned && case $got in "size "*) size=${got#size } ;; esac
      break
    fi
    # The application's own checkpoint was running, or a reader needs old frames: retry.
    send ".connection 1" "ROLLBACK;" ".connection 0"
    tries=$((tries + 1))
    sleep 0.05 2>/dev/null || sleep 1
  done
  # Pinned only if every step worked.
  if [ -s "$work/err" ] || [ -z "$size" ]; then
    exec 7>&- 8<&- # end of input: sqlite3 rolls back and exits
    wait "$spid"; spid=
    rm -rf -- "$work"; work=
    trap 'exit 141' PIPE
    return 1
  fi
  trap 'exit 141' PIPE
  # The facts come from the pinning connection itself, beside the stream.
  ( pinned_facts ) > "$work/facts" &
  fpid=$!
  printf 'method pinned\ndata %s\n' "$size"
  # The file may end before the database's last pages when those are free pages SQLite
  # never wrote; it reads them as zeros, and so does this.
  have=$(wc -c < "$db")
  if [ "$have" -eq "$size" ]; then cat -- "$db" || exit 3
  elif [ "$have" -gt "$size" ]; then head -c "$size" -- "$db" || exit 3
  else { cat -- "$db" && head -c "$((size - have))" /dev/zero; } || exit 3
  fi
  wait "$fpid" || exit 3
  fpid=
  [ -s "$work/err" ] && say "sqlite3 cannot describe $db: $(head -c 500 "$work/err")"
  printf '%s\n' "COMMIT;" ".quit" >&7
  exec 7>&- 8<&-
  wait "$spid"; spid=
  cat -- "$work/facts"
}
# The same fact lines as the copy path, asked of the session's connection 0 inside its transaction;
# the second round counts the rows of the tables the first one listed.
pinned_facts() {
  send "SELECT 'version ' || sqlite_version();" \
    "SELECT 'page_size ' || page_size FROM pragma_page_size;" \
    "SELECT 'page_count ' || page_count FROM pragma_page_count;" \
    "SELECT 'check ' || hex(quick_check) FROM pragma_quick_check;" \
    "SELECT 'SELECT ''table ' || hex(name) || ' '' || count(*) FROM \"' || replace(name, '\"', '\"\"') || '\";' FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name;" \
    ".print end"
  counts=
  while IFS= read -r line <&8; do
    case $line in
      end) break ;;
      "SELECT "*) counts="$counts$line
" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
  printf '%s' "$counts" >&7
  send ".print end"
  while IFS= read -r line <&8; do [ "$line" = end ] && break; printf '%s\n' "$line"; done
}
pinned && exit 0

dir=${db%/*}; [ -n "$dir" ] || dir=/
if tmp=$(cd -- "$dir" 2>/dev/null && mktemp .lifeboat-backup.XXXXXXXX 2>/dev/null); then
  tmpdir=$dir
else
  tmpdir=${TMPDIR:-/tmp}
  tmp=$(cd -- "$tmpdir" && mktemp .lifeboat-backup.XXXXXXXX) || { tmp=; say "cannot create a temporary file in $dir or $tmpdir"; }
fi
cd -- "$tmpdir" || say "cannot enter $tmpdir"
# One read transaction around the whole copy: the backup sees one snapshot and is never
# restarted by the application's writes. --async: the scratch copy needs no fsync.
sqlite3 -bail -batch "$db" ".timeout 30000" "BEGIN" "SELECT count(*) FROM sqlite_master" ".backup --async $tmp" "COMMIT" >/dev/null &
pid=$!
# Progress, and proof of life while the copy grows (a stuck copy stops reporting).
( while sleep 2 </dev/null >/dev/null 2>&1; do printf 'lifeboat-progress %s\n' "$(wc -c < "$tmp")" >&2 || exit; done ) &
hb=$!
wait "$pid"; rc=$?
kill "$hb" 2>/dev/null; hb=
[ "$rc" -eq 0 ] || say "sqlite3 could not copy $db (exit code $rc)"
# The facts are gathered while the copy streams (reading it does not change it) and
# follow the data, so the two overlap instead of adding up.
f=$tmp
( FACTS ) > "$tmp.facts" &
fpid=$!
printf 'method copied\ndata %s\n' "$(wc -c < "$tmp")"
cat -- "$tmp" || exit 3
wait "$fpid" || exit 3
cat -- "$tmp.facts"
"#;

/// Restore staging: stdin into the new file `$1`, which must come to `$2` bytes (a
/// connection that breaks ends stdin early), then its facts. `$3`, if it exists, is the
/// file whose owner and mode the restored copy takes (the database it replaces).
const STAGE: &str = r#"
need sqlite3 cat rm wc
staging=$1 size=$2 like=$3 kept=
cleanup() { [ -n "$kept" ] || rm -f -- "$staging" "$staging-journal" "$staging-wal" "$staging-shm"; }
trap cleanup EXIT
umask 077
set -C
cat > "$staging" || say "cannot write $staging"
set +C
got=$(wc -c < "$staging")
[ "$got" -eq "$size" ] || say "the restored copy arrived incomplete ($got of $size bytes)"
f=$staging
FACTS
rm -f -- "$staging-wal" "$staging-shm"
if [ -n "$like" ] && [ -e "$like" ]; then
  chown --reference="$like" -- "$staging" 2>/dev/null
  chmod --reference="$like" -- "$staging" 2>/dev/null
fi
kept=1
"#;

fn script(body: &str) -> String {
    format!("{PRELUDE}{}", body.replace("FACTS", FACTS))
}

/// Back up the database at `db` on the session's host into `content`; returns the facts
/// of the copy, exactly as a local backup records them.
pub fn backup(
    session: &Session,
    db: &Path,
    content: &mut dyn Write,
    ctx: &JobContext,
) -> Result<SqliteFacts> {
    let host = session.remote().host.to_string();
    ctx.progress.phase(&format!(
        "taking a consistent copy of the database on {host}"
    ));
    ctx.progress.total(None);
    let db_text = db.to_string_lossy();
    let mut child = session.spawn(
        &script(BACKUP),
        &[&db_text],
        false,
        "backing up the database",
        ctx,
    )?;
    let streamed = receive(&mut child, content, ctx);
    match streamed {
        Ok(facts) => {
            child.finish()?;
            Ok(facts)
        }
        // Writing into the store failed: that is the reason, whatever ssh says after.
        Err(Received::Store(e)) => Err(e),
        // The stream broke or was malformed: ssh's exit tells why, if it failed.
        Err(Received::Stream(e)) => {
            child.finish()?;
            Err(e)
        }
    }
}

enum Received {
    Store(Error),
    Stream(Error),
}

fn receive(
    child: &mut RemoteChild,
    content: &mut dyn Write,
    ctx: &JobContext,
) -> std::result::Result<SqliteFacts, Received> {
    let mut reader = BufReader::with_capacity(crate::pipe::CHUNK, child.stdout());
    let (preamble, size) = read_header(&mut reader).map_err(Received::Stream)?;
    let Some(size) = size else {
        return Err(Received::Stream(Error::Failed(
            "the remote copy ended before any data came".into(),
        )));
    };
    let pinned = preamble.iter().any(|l| l == "method pinned");
    ctx.progress.phase(if pinned {
        "streaming the database file, pinned at one transaction"
    } else {
        "streaming the copy"
    });
    ctx.progress.total(Some(size));
    let mut body = ProgressReader::new(
        (&mut reader).take(size),
        ctx.progress.clone(),
        ctx.cancel.clone(),
    );
    let mut buf = vec![0u8; crate::pipe::CHUNK];
    let mut got = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Received::Stream(Error::io("receiving the copy", e))),
        };
        content
            .write_all(&buf[..n])
            .map_err(|e| Received::Store(Error::io("storing the copy", e)))?;
        got += n as u64;
    }
    if got != size {
        return Err(Received::Stream(Error::Failed(format!(
            "the remote copy ended after {got} of {size} bytes"
        ))));
    }
    ctx.progress.phase("checking the copy on the host");
    let (lines, _) = read_header(&mut reader).map_err(Received::Stream)?;
    let facts = parse_facts(&lines).map_err(Received::Stream)?;
    if facts.page_size * facts.page_count != size {
        return Err(Received::Stream(Error::Failed(format!(
            "the remote copy has {size} bytes but its facts describe {} pages of {} bytes",
            facts.page_count, facts.page_size
        ))));
    }
    Ok(facts)
}

/// Tagged lines up to `data <size>` (None when the stream ended first, e.g. after the
/// facts that follow the data).
fn read_header(reader: &mut dyn BufRead) -> Result<(Vec<String>, Option<u64>)> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = reader
            .take(1 << 20)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("receiving the database facts", e))?;
        if n == 0 {
            return Ok((lines, None));
        }
        total += n;
        if total > 256 << 20 {
            return Err(Error::Failed(
                "the remote facts are implausibly long".into(),
            ));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if let Some(size) = text.strip_prefix("data ") {
            let size = size
                .trim()
                .parse()
                .map_err(|_| Error::Failed(format!("unexpected size line {text:?}")))?;
            return Ok((lines, Some(size)));
        }
        lines.push(text);
    }
}

/// The tagged fact lines of the remote scripts, as the manifest's facts.
fn parse_facts(lines: &[String]) -> Result<SqliteFacts> {
    let bad = |l: &str| {
        let shown: String = l.chars().take(120).collect();
        let more = if shown.len() < l.len() { " (cut)" } else { "" };
        Error::Failed(format!(
            "unexpected line from the remote sqlite3: {shown:?}{more}"
        ))
    };
    let unhex = |h: &str| -> Option<String> {
        hex::decode(h)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let mut version = None;
    let mut page_size = None;
    let mut page_count = None;
    let mut checks = Vec::new();
    let mut tables = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_once(' ').ok_or_else(|| bad(line))?;
        match tag {
            "version" => version = Some(rest.to_string()),
            "page_size" => page_size = Some(rest.parse::<u64>().map_err(|_| bad(line))?),
            "page_count" => page_count = Some(rest.parse::<u64>().map_err(|_| bad(line))?),
            "check" => checks.push(unhex(rest).ok_or_else(|| bad(line))?),
            "table" => {
                let (name, n) = rest.split_once(' ').ok_or_else(|| bad(line))?;
                let name = unhex(name).ok_or_else(|| bad(line))?;
                tables.insert(name, n.parse::<u64>().map_err(|_| bad(line))?);
            }
            _ => return Err(bad(line)),
        }
    }
    let missing = || Error::Failed("the remote sqlite3 did not describe the copy".into());
    Ok(SqliteFacts {
        sqlite_version: version.ok_or_else(missing)?,
        page_size: page_size.ok_or_else(missing)?,
        page_count: page_count.ok_or_else(missing)?,
        quick_check: if checks.is_empty() {
            return Err(missing());
        } else {
            checks.join("\n")
        },
        tables,
    })
}

/// Stream `content` into the new file `staging` on the host and return the facts of
/// what arrived there. `like`: the file whose owner and mode the copy should take.
pub fn stage(
    session: &Session,
    content: &mut dyn Read,
    staging: &Path,
    size: u64,
    like: Option<&Path>,
    ctx: &JobContext,
) -> Result<SqliteFacts> {
    let staging = staging.to_string_lossy();
    let size = size.to_string();
    let like = like.map(|p| p.to_string_lossy()).unwrap_or_default();
    let mut child = session.spawn(
        &script(STAGE),
        &[&staging, &size, &like],
        true,
        "writing the restored copy",
        ctx,
    )?;
    let mut stdin = child.take_stdin().expect("spawned with stdin");
    let sent = crate::pipe::copy(content, &mut stdin);
    drop(stdin);
    let mut out = Vec::new();
    let read = child.stdout().read_to_end(&mut out);
    if let Err(e) = sent {
        // Let the host's script end first (it removes a short copy itself); if it
        // failed, its reason is the better one (a broken pipe says little).
        child.finish()?;
        return Err(if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::io("sending the restored copy", e)
        } else {
            Error::io("the backup is damaged or unreadable", e)
        });
    }
    child.finish()?;
    read.map_err(|e| Error::io("receiving the check results", e))?;
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<String> = text.lines().map(String::from).collect();
    parse_facts(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_from_tagged_lines() {
        let lines: Vec<String> = [
            "version 3.40.1",
            "page_size 4096",
            "page_count 12",
            "check 6F6B",
            "",
            "table 6973737565 7",
            "table 6120227175 6F746564220A6E616D65 3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // The last line is malformed on purpose: a name cannot contain a space in hex.
        assert!(parse_facts(&lines).is_err());
        let good = &lines[..6];
        let f = parse_facts(good).unwrap();
        assert_eq!(f.sqlite_version, "3.40.1");
        assert_eq!(f.page_count, 12);
        assert_eq!(f.quick_check, "ok");
        assert_eq!(f.tables["issue"], 7);
        let odd = vec![
            "version 3".to_string(),
            "page_size 1".into(),
            "page_count 1".into(),
            "check 6F6B".into(),
            format!("table {} 3", hex::encode("a \"quoted\"\nname")),
        ];
        assert_eq!(parse_facts(&odd).unwrap().tables["a \"quoted\"\nname"], 3);
    }

    #[test]
    fn header_stops_at_the_data_line() {
        let mut input: &[u8] = b"version 3\ndata 5\nhello";
        let (lines, size) = read_header(&mut input).unwrap();
        assert_eq!(lines, vec!["version 3"]);
        assert_eq!(size, Some(5));
        assert_eq!(input, b"hello");
    }

    /// The scripts run as they are under a real `sh` (the remote side's shell).
    #[test]
    fn scripts_are_valid_sh() {
        for body in [BACKUP, STAGE] {
            crate::ssh::assert_valid_sh(&script(body));
        }
    }
}
