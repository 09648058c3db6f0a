#!/usr/bin/env bash
# Benchmark: lifeboat's own host is lost. A bot with 1 000 backups across 20 targets in
# moto's S3 server and an open incident; its host directory is deleted; on a fresh
# directory with only the config, `lifeboat recover --store offsite` (release build)
# brings back the state and the catalog. Prints the wall time of the recovery (target:
# under 60 s), then checks that every backup is listed, the incident and its timeline are
# back, a backup taken before the recovery restores, and a new backup runs.
#
#   bash bench/recover.sh
#   TARGETS=20 PER_TARGET=50 bash bench/recover.sh     # the defaults
#   LIFEBOAT_BIN=target/debug/lifeboat bash bench/recover.sh   # a binary already built
#
# Set-up is kept fast: the databases are tiny, each target gets two real backups (one
# before and one after the state backup, so the rebuild must find backups the restored
# state never knew), and the other 48 per target are server-side copies of the first
# one's artifact with manifests of their own (older ids and times), written with boto3.
# They are complete backups like any other: the same bytes, checked the same way.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS="${TARGETS:-20}"
PER_TARGET="${PER_TARGET:-50}"
python3 -m pip show moto >/dev/null 2>&1 ||
  python3 -m pip install -q "moto[server]==5.1.22" || python3 -m pip install -q --break-system-packages "moto[server]==5.1.22"
command -v pyenv >/dev/null && pyenv rehash
hash -r

if [[ -n "${LIFEBOAT_BIN:-}" ]]; then
  BIN="$(realpath "$LIFEBOAT_BIN")"
else
  echo "==> building lifeboat (release)"
  cargo build --release --locked --bin lifeboat >/dev/null
  BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/release/lifeboat"
fi

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
cleanup() {
  kill "$MOTO" 2>/dev/null || true
  wait "$MOTO" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.2
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
: >"$WORK/aws-empty"
export AWS_CONFIG_FILE="$WORK/aws-empty" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-empty"
export ENDPOINT="http://127.0.0.1:$PORT"
python3 -c "import boto3; boto3.client('s3', endpoint_url='$ENDPOINT').create_bucket(Bucket='bench')"

# The config: an off-site store (the state goes there by itself) and TARGETS small
# SQLite targets. It is all a new host gets, besides the credentials.
write_config() {
  mkdir -p "$1/config" "$1/data" "$1/restores"
  {
    printf '[server]\nstate = "../var/lifeboat.db"\n\n'
    printf '[stores.offsite]\nkind = "s3"\nbucket = "bench"\nprefix = "lifeboat/"\nendpoint = "%s"\n\n' "$ENDPOINT"
    for i in $(seq -w 1 "$TARGETS"); do
      printf '[targets.app%s]\nkind = "sqlite"\npath = "../data/app%s.db"\nstore = "offsite"\nrestore_roots = ["../restores"]\n\n' "$i" "$i"
    done
  } >"$1/config/lifeboat.toml"
}

OLD="$WORK/old-host"
write_config "$OLD"
python3 - "$OLD/data" "$TARGETS" <<'PY'
import sqlite3, sys
for i in range(1, int(sys.argv[2]) + 1):
    db = sqlite3.connect(f"{sys.argv[1]}/app{i:02d}.db")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    db.executemany("INSERT INTO items (name) VALUES (?)", [(f"item {n}",) for n in range(100)])
    db.commit()
PY
LB_OLD=("$BIN" --config "$OLD/config/lifeboat.toml")
echo "==> set-up: one real backup per target, an open incident, the state backup"
start=$(date +%s.%N)
for i in $(seq -w 1 "$TARGETS"); do "${LB_OLD[@]}" backup "app$i" >/dev/null; done
"${LB_OLD[@]}" incident start Primary database host unreachable >/dev/null
"${LB_OLD[@]}" incident note Failing over to the replica in the second region >/dev/null
"${LB_OLD[@]}" incident action Replace the disk controller >/dev/null
python3 - "$TARGETS" "$((PER_TARGET - 2))" <<'PY'
# Copies of each target's first backup under older ids, as complete backups.
import boto3, datetime, json, os, sys
from concurrent.futures import ThreadPoolExecutor
s3 = boto3.client("s3", endpoint_url=os.environ["ENDPOINT"])
targets, copies = int(sys.argv[1]), int(sys.argv[2])
def clone(i):
    t = f"app{i:02d}"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="bench", Prefix=f"lifeboat/{t}/")["Contents"]]
    mkey = next(k for k in keys if k.endswith(".manifest.json"))
    m = json.loads(s3.get_object(Bucket="bench", Key=mkey)["Body"].read())
    base = datetime.datetime.strptime(m["id"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    for n in range(1, copies + 1):
        at = base - datetime.timedelta(hours=n)
        c = dict(m, id=at.strftime("%Y%m%dT%H%M%SZ"))
        c["created_at"] = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        c["finished_at"] = (at + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        c["artifact"] = f"{t}/{c['id']}.sqlite.zst"
        s3.copy_object(Bucket="bench", Key=f"lifeboat/{c['artifact']}",
                       CopySource={"Bucket": "bench", "Key": f"lifeboat/{m['artifact']}"})
        s3.put_object(Bucket="bench", Key=f"lifeboat/{t}/{c['id']}.manifest.json", Body=json.dumps(c).encode())
with ThreadPoolExecutor(8) as pool:
    list(pool.map(clone, range(1, targets + 1)))
PY
"${LB_OLD[@]}" backup lifeboat-state >/dev/null
echo "==> set-up: one more backup per target after the state backup"
for i in $(seq -w 1 "$TARGETS"); do "${LB_OLD[@]}" backup "app$i" >/dev/null; done
echo "    set-up took $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"

echo "==> the host is lost: deleting $OLD"
rm -rf "$OLD"
NEW="$WORK/new-host"
write_config "$NEW"
LB=("$BIN" --config "$NEW/config/lifeboat.toml")

echo "==> lifeboat recover --store offsite"
start=$(date +%s.%N)
"${LB[@]}" recover --store offsite --json >"$WORK/recover.json"
wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")

python3 - "$WORK/recover.json" "$TARGETS" "$PER_TARGET" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
targets, per, wall = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
counts = {t["target"]: t["backups"] for t in r["catalog"]["targets"]}
apps = {t: n for t, n in counts.items() if t.startswith("app")}
assert len(apps) == targets and all(n == per for n in apps.values()), counts
assert r["newer_than_state"] == targets, r["newer_than_state"]
assert len(r["open_incidents"]) == 1, r["open_incidents"]
print(f"\nrecovered: state backup {r['state_backup']['id']}, {sum(apps.values())} backups across {len(apps)} targets "
      f"({r['newer_than_state']} newer than the state backup), {len(r['open_incidents'])} open incident "
      f"with {r['open_incidents'][0]['timeline_events']} timeline events")
print(f"recovery wall time: {wall:.2f} s (lifeboat's own measure {r['duration_seconds']:.2f} s; target < 60 s)")
PY

echo "==> after the recovery"
listed=$("${LB[@]}" list --json | python3 -c 'import json,sys; print(len([b for b in json.load(sys.stdin) if b["target"].startswith("app")]))')
echo "    lifeboat list: $listed backups of the app targets"
"${LB[@]}" incident export --format json >"$WORK/incident.json"
python3 - "$WORK/incident.json" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
notes = [e["text"] for e in i["timeline"] if e["kind"] == "note"]
print(f"    incident #{i['id']} {i['title']!r}: {len(i['timeline'])} timeline events, notes {notes}, actions {i['actions']}")
PY
oldest=$("${LB[@]}" list app07 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
"${LB[@]}" restore app07 "$oldest" --to "$NEW/restores/app07.db" --yes >/dev/null 2>&1
echo "    restored app07 $oldest: $(python3 -c "import sqlite3; print(sqlite3.connect('$NEW/restores/app07.db').execute('select count(*) from items').fetchone()[0])") rows"
cp "$NEW/restores/app07.db" "$NEW/data/app07.db"
"${LB[@]}" backup app07 >/dev/null
echo "    a new backup of app07 ran: $("${LB[@]}" list app07 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') listed"
