//! gcp-disk targets end to end: the real binary and the real Compute Engine client
//! against a local fake of the Compute REST API (its paths, bodies, int64-as-string
//! fields and long-running operations). The fake answers only the requests it expects
//! and records every call, so the tests also check which calls lifeboat makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const PROJECT: &str = "acme-analytics";
const ZONE: &str = "europe-north1-a";
const BASE: &str = "https://www.googleapis.com/compute/v1";

/// What a pending operation does when it completes.
#[derive(Clone)]
enum Effect {
    Snapshot { disk: String, body: Value },
    DeleteSnapshot(String),
    CreateDisk(Value),
    DeleteDisk(String),
    Attach { instance: String, body: Value },
}

#[derive(Default)]
struct FakeState {
    disks: BTreeMap<String, Value>,
    instances: BTreeMap<String, Vec<Value>>,
    snapshots: BTreeMap<String, Value>,
    operations: BTreeMap<String, (Value, Option<Effect>)>,
    /// Every request, as "METHOD /path".
    calls: Vec<String>,
    /// Requests the fake did not expect, answered 400.
    unexpected: Vec<String>,
    /// The next createSnapshot operation ends with this error (code, message).
    fail_next_snapshot: Option<(String, String)>,
    /// The next disks.insert operation ends with this error (code, message).
    fail_next_disk: Option<(String, String)>,
    /// The body of every disks.insert that was accepted.
    inserted_disks: Vec<Value>,
    next_id: u64,
}

type Shared = Arc<Mutex<FakeState>>;

struct FakeCompute {
    state: Shared,
    url: String,
    _rt: tokio::runtime::Runtime,
}

impl FakeCompute {
    fn start() -> FakeCompute {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state: Shared = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        let fake = FakeCompute {
            state,
            url,
            _rt: rt,
        };
        fake.add_disk("data-disk", 10);
        fake.add_disk("home-disk", 20);
        fake.state
            .lock()
            .unwrap()
            .instances
            .insert("analytics-vm".into(), Vec::new());
        fake
    }

    fn add_disk(&self, name: &str, gb: u64) {
        let disk = json!({
            "kind": "compute#disk",
            "id": "4242",
            "name": name,
            "sizeGb": gb.to_string(),
            "zone": format!("{BASE}/projects/{PROJECT}/zones/{ZONE}"),
            "status": "READY",
            "selfLink": format!("{BASE}/projects/{PROJECT}/zones/{ZONE}/disks/{name}"),
        });
        self.state.lock().unwrap().disks.insert(name.into(), disk);
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn snapshot_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .snapshots
            .keys()
            .cloned()
            .collect()
    }

    fn assert_nothing_unexpected(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.unexpected.is_empty(),
            "unexpected requests: {:?}",
            s.unexpected
        );
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let reason = match status.as_u16() {
        403 => "forbidden",
        404 => "notFound",
        _ => "invalid",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (status, axum::Json(body)).into_response()
}

fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Every request goes through here: known shapes are served, the rest refused.
async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_string();
    s.calls.push(format!("{method} {path}"));
    let alt_json = query.iter().any(|(k, v)| k == "$alt" && v == "json");
    if !alt_json || headers.contains_key("authorization") {
        s.unexpected.push(format!(
            "{method} {uri} (no $alt=json, or credentials sent)"
        ));
        return error(StatusCode::BAD_REQUEST, "unexpected request");
    }
    let Some(rest) = path.strip_prefix("/compute/v1/projects/") else {
        s.unexpected.push(format!("{method} {path}"));
        return error(StatusCode::NOT_FOUND, "unknown path");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts[0] == "locked-project" {
        return error(
            StatusCode::FORBIDDEN,
            "Required 'compute.snapshots.list' permission for 'projects/locked-project'",
        );
    }
    if parts[0] != PROJECT {
        s.unexpected.push(format!("{method} {path}"));
        return error(StatusCode::NOT_FOUND, "unknown project");
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                s.unexpected
                    .push(format!("{method} {path}: body is not JSON"));
                return error(StatusCode::BAD_REQUEST, "bad body");
            }
        }
    };
    let filter = query
        .iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.clone());
    match (method.as_str(), &parts[1..]) {
        ("GET", ["global", "snapshots"]) => list_snapshots(&mut s, filter),
        ("GET", ["global", "snapshots", name]) => match s.snapshots.get(*name) {
            Some(v) => ok(v.clone()),
            None => error(
                StatusCode::NOT_FOUND,
                &format!("The resource 'projects/{PROJECT}/global/snapshots/{name}' was not found"),
            ),
        },
        ("DELETE", ["global", "snapshots", name]) => {
            if !s.snapshots.contains_key(*name) {
                return error(StatusCode::NOT_FOUND, "snapshot not found");
            }
            let target = format!("{BASE}/projects/{PROJECT}/global/snapshots/{name}");
            start_op(
                &mut s,
                None,
                "delete",
                &target,
                Effect::DeleteSnapshot(name.to_string()),
            )
        }
        ("GET", ["global", "operations", op]) => poll_op(&mut s, op),
        ("GET", ["zones", z, "operations", op]) if *z == ZONE => poll_op(&mut s, op),
        ("POST", ["zones", z, "disks", disk, "createSnapshot"]) if *z == ZONE => {
            if !s.disks.contains_key(*disk) {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}' was not found"
                    ),
                );
            }
            if body["name"].as_str().is_none() {
                s.unexpected
                    .push(format!("{method} {path}: no snapshot name"));
                return error(StatusCode::BAD_REQUEST, "snapshot name required");
            }
            let target = format!(
                "{BASE}/projects/{PROJECT}/global/snapshots/{}",
                body["name"].as_str().unwrap()
            );
            let effect = Effect::Snapshot {
                disk: disk.to_string(),
                body,
            };
            start_op(&mut s, Some(ZONE), "createSnapshot", &target, effect)
        }
        ("GET", ["zones", z, "disks", disk]) if *z == ZONE => match s.disks.get(*disk) {
            Some(v) => ok(v.clone()),
            None => error(
                StatusCode::NOT_FOUND,
                &format!(
                    "The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}' was not found"
                ),
            ),
        },
        ("POST", ["zones", z, "disks"]) if *z == ZONE => {
            let (Some(name), Some(src)) = (body["name"].as_str(), body["sourceSnapshot"].as_str())
            else {
                s.unexpected.push(format!("{method} {path}: {body}"));
                return error(StatusCode::BAD_REQUEST, "name and sourceSnapshot required");
            };
            if s.disks.contains_key(name) {
                return error(StatusCode::CONFLICT, "The resource already exists");
            }
            let snap = src.rsplit('/').next().unwrap_or_default();
            if !s.snapshots.contains_key(snap) {
                return error(StatusCode::NOT_FOUND, "source snapshot not found");
            }
            let target = format!("{BASE}/projects/{PROJECT}/zones/{ZONE}/disks/{name}");
            s.inserted_disks.push(body.clone());
            start_op(
                &mut s,
                Some(ZONE),
                "insert",
                &target,
                Effect::CreateDisk(body),
            )
        }
        ("DELETE", ["zones", z, "disks", disk]) if *z == ZONE => {
            if !s.disks.contains_key(*disk) {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "The resource 'projects/{PROJECT}/zones/{ZONE}/disks/{disk}' was not found"
                    ),
                );
            }
            if s.disks[*disk]["users"]
                .as_array()
                .is_some_and(|u| !u.is_empty())
            {
                return error(StatusCode::BAD_REQUEST, "The disk is in use by an instance");
            }
            let target = format!("{BASE}/projects/{PROJECT}/zones/{ZONE}/disks/{disk}");
            start_op(
                &mut s,
                Some(ZONE),
                "delete",
                &target,
                Effect::DeleteDisk(disk.to_string()),
            )
        }
        ("GET", ["zones", z, "instances", i]) if *z == ZONE => match s.instances.get(*i) {
            Some(disks) => ok(json!({"kind": "compute#instance", "name": i, "disks": disks})),
            None => error(StatusCode::NOT_FOUND, "instance not found"),
        },
        ("POST", ["zones", z, "instances", i, "attachDisk"]) if *z == ZONE => {
            if !s.instances.contains_key(*i) {
                return error(StatusCode::NOT_FOUND, "instance not found");
            }
            let target = format!("{BASE}/projects/{PROJECT}/zones/{ZONE}/instances/{i}");
            let effect = Effect::Attach {
                instance: i.to_string(),
                body,
            };
            start_op(&mut s, Some(ZONE), "attachDisk", &target, effect)
        }
        _ => {
            s.unexpected.push(format!("{method} {path}"));
            error(StatusCode::BAD_REQUEST, "unexpected request")
        }
    }
}

fn list_snapshots(s: &mut FakeState, filter: Option<String>) -> Response {
    // Only the one filter shape lifeboat sends: labels.KEY = "VALUE".
    let wanted = filter.as_deref().and_then(|f| {
        let (key, value) = f.strip_prefix("labels.")?.split_once(" = ")?;
        Some((key.to_string(), value.trim_matches('"').to_string()))
    });
    let Some((key, value)) = wanted else {
        s.unexpected
            .push(format!("snapshot list with filter {filter:?}"));
        return error(StatusCode::BAD_REQUEST, "unexpected filter");
    };
    let items: Vec<Value> = s
        .snapshots
        .values()
        .filter(|v| v["labels"][&key].as_str() == Some(value.as_str()))
        .cloned()
        .collect();
    ok(
        json!({"kind": "compute#snapshotList", "id": "projects/acme/global/snapshots", "items": items}),
    )
}

fn start_op(
    s: &mut FakeState,
    zone: Option<&str>,
    kind: &str,
    target: &str,
    effect: Effect,
) -> Response {
    s.next_id += 1;
    let name = format!("operation-{}-{kind}", s.next_id);
    let mut op = json!({
        "kind": "compute#operation",
        "id": (1_000_000 + s.next_id).to_string(),
        "name": name,
        "operationType": kind,
        "targetLink": target,
        "status": "RUNNING",
        "progress": 0,
        "insertTime": "2026-11-22T00:30:00.000-08:00",
    });
    if let Some(z) = zone {
        op["zone"] = json!(format!("{BASE}/projects/{PROJECT}/zones/{z}"));
        op["selfLink"] = json!(format!(
            "{BASE}/projects/{PROJECT}/zones/{z}/operations/{name}"
        ));
    } else {
        op["selfLink"] = json!(format!(
            "{BASE}/projects/{PROJECT}/global/operations/{name}"
        ));
    }
    s.operations.insert(name, (op.clone(), Some(effect)));
    ok(op)
}

/// The first poll completes the operation and applies its effect.
fn poll_op(s: &mut FakeState, name: &str) -> Response {
    let Some((mut op, effect)) = s.operations.get(name).cloned() else {
        return error(StatusCode::NOT_FOUND, "operation not found");
    };
    if let Some(effect) = effect {
        if let Err((code, message)) = apply(s, effect) {
            op["error"] = json!({"errors": [{"code": code, "message": message}]});
            op["httpErrorStatusCode"] = json!(if code == "QUOTA_EXCEEDED" { 403 } else { 400 });
            op["httpErrorMessage"] = json!("FORBIDDEN");
        }
        op["status"] = json!("DONE");
        op["progress"] = json!(100);
        op["endTime"] = json!("2026-11-22T00:30:05.000-08:00");
        s.operations.insert(name.to_string(), (op.clone(), None));
    }
    ok(op)
}

fn apply(s: &mut FakeState, effect: Effect) -> Result<(), (String, String)> {
    match effect {
        Effect::Snapshot { disk, body } => {
            if let Some(e) = s.fail_next_snapshot.take() {
                return Err(e);
            }
            s.next_id += 1;
            let name = body["name"].as_str().unwrap().to_string();
            let gb = s.disks[&disk]["sizeGb"].clone();
            let snap = json!({
                "kind": "compute#snapshot",
                "id": (7_000_000 + s.next_id).to_string(),
                "name": name,
                "description": body["description"],
                "labels": body["labels"],
                "status": "READY",
                "sourceDisk": format!("{BASE}/projects/{PROJECT}/zones/{ZONE}/disks/{disk}"),
                "sourceDiskId": "4242",
                "diskSizeGb": gb,
                "storageBytes": "3221225472",
                "storageBytesStatus": "UP_TO_DATE",
                "creationTimestamp": "2026-11-22T00:30:00.000-08:00",
                "selfLink": format!("{BASE}/projects/{PROJECT}/global/snapshots/{name}"),
            });
            s.snapshots.insert(name, snap);
        }
        Effect::DeleteSnapshot(name) => {
            s.snapshots.remove(&name);
        }
        Effect::CreateDisk(body) => {
            if let Some(e) = s.fail_next_disk.take() {
                return Err(e);
            }
            let name = body["name"].as_str().unwrap().to_string();
            // The API answers with the full URL of the snapshot, its id and its disk size.
            let src = body["sourceSnapshot"].as_str().unwrap();
            let snap = s.snapshots[src.rsplit('/').next().unwrap()].clone();
            let mut disk = body.clone();
            disk["kind"] = json!("compute#disk");
            disk["id"] = json!("5151");
            disk["sizeGb"] = snap["diskSizeGb"].clone();
            disk["sourceSnapshot"] = snap["selfLink"].clone();
            disk["sourceSnapshotId"] = snap["id"].clone();
            disk["zone"] = json!(format!("{BASE}/projects/{PROJECT}/zones/{ZONE}"));
            disk["status"] = json!("READY");
            disk["selfLink"] = json!(format!(
                "{BASE}/projects/{PROJECT}/zones/{ZONE}/disks/{name}"
            ));
            s.disks.insert(name, disk);
        }
        Effect::DeleteDisk(name) => {
            s.disks.remove(&name);
        }
        Effect::Attach { instance, body } => {
            s.instances.get_mut(&instance).unwrap().push(body);
        }
    }
    Ok(())
}

/// Targets data-disk and home-disk; with `broken`, also one whose disk does not exist
/// and one in a project the credentials may not use.
fn gcp_home(fake: &FakeCompute, broken: bool) -> Home {
    gcp_home_with(fake, broken, "retention = { last = 2 }")
}

/// As `gcp_home`, with `data_disk` as the rest of data-disk's config.
fn gcp_home_with(fake: &FakeCompute, broken: bool, data_disk: &str) -> Home {
    let home = Home::new();
    let target = |name: &str, project: &str, disk: &str, more: &str| {
        format!(
            "[targets.{name}]\nkind = \"gcp-disk\"\nproject = \"{project}\"\nzone = \"{ZONE}\"\ndisk = \"{disk}\"\nendpoint = \"{}\"\ncredentials = \"anonymous\"\npoll_interval = \"20ms\"\n{more}\n",
            fake.url
        )
    };
    let mut config = target("data-disk", PROJECT, "data-disk", data_disk)
        + &target("home-disk", PROJECT, "home-disk", "");
    if broken {
        config += &target("gone-disk", PROJECT, "no-such-disk", "");
        config += &target("locked", "locked-project", "data-disk", "");
    }
    home.write_config(&config);
    home
}

#[test]
fn backup_list_verify_restore_and_prune_through_the_compute_api() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);

    let b = home.json(&["backup", "data-disk"]);
    assert_eq!(b["kind"], "gcp-disk");
    assert_eq!(b["status"], "complete");
    assert_eq!(
        b["size_bytes"], 3221225472u64,
        "int64 read from a JSON string"
    );
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    assert_eq!(b["gcp"]["snapshot_status"], "READY");
    assert!(snap.starts_with("lifeboat-data-disk-"), "{snap}");
    let labels = fake.state.lock().unwrap().snapshots[&snap]["labels"].clone();
    assert_eq!(labels["lifeboat"], "1");
    assert_eq!(labels["lifeboat-target"], "data-disk");
    assert_eq!(
        labels["lifeboat-id"],
        b["id"].as_str().unwrap().to_lowercase()
    );
    let calls = fake.calls();
    assert!(
        calls.contains(&format!(
            "POST /compute/v1/projects/{PROJECT}/zones/{ZONE}/disks/data-disk/createSnapshot"
        )),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.contains("/zones/europe-north1-a/operations/")),
        "waited: {calls:?}"
    );

    // Another target's snapshots are not this one's backups.
    home.json(&["backup", "home-disk"]);
    let listed = home.json(&["list", "data-disk"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], b["id"]);
    assert_eq!(home.json(&["list"]).as_array().unwrap().len(), 2);

    let v = home.json(&["verify", "data-disk"]);
    assert_eq!(v["ok"], true, "{v}");

    // The plan reads and lists every call; it changes nothing.
    let before = fake.calls().len();
    let plan = home.ok(&[
        "restore",
        "data-disk",
        "--to",
        "data-restored",
        "--instance",
        "analytics-vm",
        "--dry-run",
    ]);
    for expected in [
        format!("GET  projects/{PROJECT}/global/snapshots/{snap}"),
        format!("POST projects/{PROJECT}/zones/{ZONE}/disks  {{\"name\": \"data-restored\""),
        format!("POST projects/{PROJECT}/zones/{ZONE}/instances/analytics-vm/attachDisk"),
    ] {
        assert!(plan.contains(&expected), "{expected} missing from:\n{plan}");
    }
    assert!(plan.contains("not touched"), "{plan}");
    assert!(
        fake.calls()[before..].iter().all(|c| c.starts_with("GET ")),
        "plan wrote: {:?}",
        &fake.calls()[before..]
    );

    let out = home.run(&["restore", "data-disk", "--to", "data-disk", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "the own disk is refused");
    let out = home.run(&[
        "restore",
        "data-disk",
        "--instance",
        "no-such-vm",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no such instance"),
        "{}",
        stderr(&out)
    );

    let r = home.json(&[
        "restore",
        "data-disk",
        "--to",
        "data-restored",
        "--instance",
        "analytics-vm",
        "--yes",
    ]);
    assert_eq!(r["ok"], true);
    {
        let s = fake.state.lock().unwrap();
        let disk = &s.disks["data-restored"];
        assert_eq!(
            disk["sourceSnapshot"],
            format!("{BASE}/projects/{PROJECT}/global/snapshots/{snap}")
        );
        assert_eq!(
            s.inserted_disks[0]["sourceSnapshot"],
            format!("projects/{PROJECT}/global/snapshots/{snap}")
        );
        let attached = &s.instances["analytics-vm"];
        assert_eq!(attached.len(), 1);
        assert_eq!(
            attached[0]["source"],
            format!("projects/{PROJECT}/zones/{ZONE}/disks/data-restored")
        );
        assert_eq!(attached[0]["deviceName"], "data-restored");
        assert_eq!(attached[0]["autoDelete"], false);
        assert_eq!(
            s.disks["data-disk"]["sizeGb"], "10",
            "the original disk is untouched"
        );
    }
    assert!(
        fake.calls()
            .iter()
            .all(|c| !(c.starts_with("DELETE") && c.contains("/disks/"))),
        "no disk was ever deleted"
    );

    // Retention: keep the two newest.
    let b2 = home.json(&["backup", "data-disk"]);
    let b3 = home.json(&["backup", "data-disk"]);
    let dry = home.ok(&["prune", "data-disk", "--dry-run"]);
    assert!(
        dry.contains(&format!("remove  {}", b["id"].as_str().unwrap())),
        "{dry}"
    );
    home.ok(&["prune", "data-disk"]);
    let ids: Vec<Value> = home
        .json(&["list", "data-disk"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![b3["id"].clone(), b2["id"].clone()]);
    assert!(
        !fake.snapshot_names().contains(&snap),
        "the old snapshot was deleted"
    );
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.starts_with("GET") && c.contains("/global/operations/")),
        "waited for the delete"
    );
    assert_eq!(fake.snapshot_names().len(), 3, "home-disk's snapshot stays");

    // A snapshot deleted behind lifeboat's back fails verify.
    let gone = b3["gcp"]["snapshot"].as_str().unwrap().to_string();
    fake.state.lock().unwrap().snapshots.remove(&gone);
    let out = home.run(&["verify", "data-disk", b3["id"].as_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["problems"][0]
            .as_str()
            .unwrap()
            .contains("deleted outside lifeboat"),
        "{report}"
    );
    let data = status_of(&home, "data-disk");
    // status answers from the catalog, which keeps what was taken; verify is what
    // notices the snapshot is gone.
    assert_eq!(data["last_backup"], b3["id"]);
    fake.assert_nothing_unexpected();
}

#[test]
fn failed_operations_end_the_job_in_plain_words() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, true);

    fake.state.lock().unwrap().fail_next_snapshot = Some((
        "QUOTA_EXCEEDED".into(),
        "Quota 'SNAPSHOTS' exceeded. Limit: 10.0 globally.".into(),
    ));
    let out = home.run(&["backup", "data-disk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("quota exceeded: Quota 'SNAPSHOTS' exceeded"),
        "{err}"
    );
    assert!(err.contains("data-disk"), "{err}");
    assert!(
        home.json(&["list", "data-disk"])
            .as_array()
            .unwrap()
            .is_empty()
    );

    let err = stderr(&home.run(&["backup", "gone-disk"]));
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("no-such-disk"), "{err}");

    let out = home.run(&["backup", "locked"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("permission denied"), "{err}");

    // The job record says the same.
    let data = status_of(&home, "data-disk");
    assert!(
        data["last_job"]
            .as_str()
            .unwrap()
            .contains("quota exceeded"),
        "{data}"
    );

    // The next attempt succeeds.
    assert_eq!(home.json(&["backup", "data-disk"])["status"], "complete");
    fake.assert_nothing_unexpected();
}

/// `lifeboat status --json` of one target.
fn status_of(home: &Home, target: &str) -> Value {
    let status = home.json(&["status"]);
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == target)
        .unwrap()
        .clone()
}

/// The disks in the fake's zone, by name.
fn disk_names(fake: &FakeCompute) -> Vec<String> {
    fake.state.lock().unwrap().disks.keys().cloned().collect()
}

#[test]
fn a_gcp_disk_drill_makes_a_disk_from_the_newest_snapshot_checks_it_and_deletes_it() {
    let fake = FakeCompute::start();
    let seen = tempfile::NamedTempFile::new().unwrap();
    let home = gcp_home_with(
        &fake,
        false,
        &format!(
            "rto = \"30m\"\nrpo = \"24h\"\ndrill_schedule = \"0 0 4 1 * *\"\nchecks = [ {{ command = [\"sh\", \"-c\", \"echo \\\"$LIFEBOAT_SANDBOX\\\" > {}\"] }} ]",
            seen.path().display()
        ),
    );
    home.json(&["backup", "data-disk"]);
    let newest = home.json(&["backup", "data-disk"]);
    home.json(&["backup", "home-disk"]);
    let snap = newest["gcp"]["snapshot"].as_str().unwrap().to_string();
    let source_before = fake.state.lock().unwrap().disks["data-disk"].clone();
    let before = fake.calls().len();

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["ok"], true);
    assert_eq!(r["kind"], "gcp-disk");
    assert_eq!(r["problems"], json!([]));
    assert_eq!(r["backup_id"], newest["id"], "the newest snapshot");
    assert_eq!(r["rto_objective_seconds"], 1800.0);
    assert_eq!(r["rpo_objective_seconds"], 86400.0);
    let rto = r["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && rto < 1800.0, "{rto}");
    let rpo = r["rpo_seconds"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&rpo), "{rpo}");
    assert_eq!(r["sandbox_created"], true);
    assert_eq!(r["sandbox_removed"], true);

    // A new disk from the snapshot, labelled as the drill's, in the target's zone.
    let drill_disk = {
        let s = fake.state.lock().unwrap();
        let body = s.inserted_disks.last().unwrap().clone();
        assert_eq!(
            body["sourceSnapshot"],
            format!("projects/{PROJECT}/global/snapshots/{snap}")
        );
        assert_eq!(body["labels"]["lifeboat"], "1");
        assert_eq!(body["labels"]["lifeboat-target"], "data-disk");
        assert_eq!(body["labels"]["lifeboat-drill"], "1");
        body["name"].as_str().unwrap().to_string()
    };
    assert!(
        drill_disk.starts_with("lifeboat-drill-data-disk-2"),
        "{drill_disk}"
    );
    let path = format!("projects/{PROJECT}/zones/{ZONE}/disks/{drill_disk}");
    assert_eq!(r["sandbox"], path);
    // The command check found the disk in LIFEBOAT_SANDBOX.
    assert_eq!(std::fs::read_to_string(seen.path()).unwrap().trim(), path);

    // Made, read back, deleted, each operation waited for; nothing else was written.
    let calls: Vec<String> = fake.calls()[before..].to_vec();
    let zone = format!("/compute/v1/projects/{PROJECT}/zones/{ZONE}");
    let at = |wanted: &str| {
        calls
            .iter()
            .position(|c| c == wanted)
            .unwrap_or_else(|| panic!("{wanted} missing from {calls:#?}"))
    };
    let insert = at(&format!("POST {zone}/disks"));
    let read = at(&format!("GET {zone}/disks/{drill_disk}"));
    let delete = at(&format!("DELETE {zone}/disks/{drill_disk}"));
    assert!(read < insert, "the name was checked free first: {calls:#?}");
    assert!(insert < delete);
    assert!(
        calls[insert..delete]
            .iter()
            .any(|c| c.starts_with(&format!("GET {zone}/operations/"))),
        "waited for the insert: {calls:#?}"
    );
    assert!(
        calls[delete..]
            .iter()
            .any(|c| c.starts_with(&format!("GET {zone}/operations/"))),
        "waited for the delete: {calls:#?}"
    );
    let writes: Vec<&String> = calls.iter().filter(|c| !c.starts_with("GET ")).collect();
    assert_eq!(writes.len(), 2, "{writes:?}");

    // No drill disk is left, and the target's own disk is untouched.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert_eq!(fake.state.lock().unwrap().disks["data-disk"], source_before);

    let report = r["report"].as_str().unwrap();
    assert_contains_all(
        report,
        &[
            "# Recovery drill of data-disk: ✅ PASSED",
            &format!("- sandbox: new disk `{path}` (deleted afterwards)"),
            "## Objectives",
            "| RTO (drill start → verified restore) | 30m |",
            "| RPO (age of the restored backup) | 1day |",
            "✅ met",
            "## Timeline (UTC)",
            "| 1 | find the snapshot |",
            &format!("create disk {drill_disk} from snapshot {snap}"),
            &format!("verify disk {drill_disk}: READY, the snapshot's size, made from it"),
            "READY, 10 GB as the snapshot's disk",
            "check 1: command `sh -c",
            &format!("delete disk {drill_disk}"),
            "## Problems found\n\n- none",
            "## Action items\n\n- none",
        ],
    );
    assert_eq!(r["steps"].as_array().unwrap().len(), 5);

    // The drill is recorded: status shows it.
    let data = status_of(&home, "data-disk");
    assert_eq!(data["last_drill_ok"], true, "{data:#}");
    fake.assert_nothing_unexpected();
}

#[test]
fn a_gcp_disk_drill_of_a_snapshot_deleted_behind_lifeboats_back_fails_naming_it() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);
    let b = home.json(&["backup", "data-disk"]);
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    fake.state.lock().unwrap().snapshots.remove(&snap);

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    assert_eq!(
        r["backup_id"], b["id"],
        "the recorded backup is the one named"
    );
    let problems = r["problems"].to_string();
    assert!(
        problems.contains(&format!(
            "snapshot {snap} no longer exists: it was deleted outside lifeboat"
        )),
        "{problems}"
    );
    assert_eq!(r["rto_seconds"], Value::Null);
    assert_eq!(r["sandbox_created"], false);
    let report = r["report"].as_str().unwrap();
    assert!(report.contains("❌ FAILED"), "{report}");
    assert!(report.contains("(not made)"), "{report}");
    assert!(
        report.contains(&format!(
            "backup {} cannot be drilled",
            b["id"].as_str().unwrap()
        )),
        "{report}"
    );
    // No disk was made, and nothing was written.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert!(
        fake.calls()
            .iter()
            .all(|c| !c.contains("/disks") || c.ends_with("/createSnapshot")),
        "{:#?}",
        fake.calls()
    );
    fake.assert_nothing_unexpected();
}

#[test]
fn a_gcp_disk_drill_whose_disk_creation_fails_says_why_and_leaves_no_disk() {
    let fake = FakeCompute::start();
    let home = gcp_home(&fake, false);
    home.json(&["backup", "data-disk"]);
    fake.state.lock().unwrap().fail_next_disk = Some((
        "QUOTA_EXCEEDED".into(),
        "Quota 'DISKS_TOTAL_GB' exceeded. Limit: 500.0 in region europe-north1.".into(),
    ));

    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    assert_eq!(r["ok"], false);
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("quota exceeded: Quota 'DISKS_TOTAL_GB' exceeded"),
        "{problems}"
    );
    assert!(problems.contains("lifeboat-drill-data-disk-"), "{problems}");
    assert_eq!(r["rto_seconds"], Value::Null);
    let steps = r["steps"].as_array().unwrap();
    let create = steps
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("create disk"))
        .unwrap();
    assert_eq!(create["ok"], false);
    assert!(
        r["report"]
            .as_str()
            .unwrap()
            .contains("could not be restored: take a new backup now"),
        "{}",
        r["report"]
    );
    // The failed operation left no disk, so there was nothing to delete.
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    assert!(
        fake.calls().iter().all(|c| !c.starts_with("DELETE")),
        "{:#?}",
        fake.calls()
    );
    let inserts = fake
        .calls()
        .iter()
        .filter(|c| c.ends_with("/disks"))
        .count();
    assert_eq!(inserts, 1);

    // A disk that already has the drill disk's name is refused and left alone (disks
    // for each second of the next minute, so the drill's start falls on one of them).
    let now = chrono::Utc::now();
    let taken: Vec<String> = (-2..60)
        .map(|s| {
            let at = now + chrono::Duration::seconds(s);
            format!("lifeboat-drill-data-disk-{}", at.format("%Y%m%dt%H%M%Sz"))
        })
        .collect();
    for name in &taken {
        fake.add_disk(name, 10);
    }
    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 1, "{r:#}");
    let problems = r["problems"].to_string();
    assert!(
        problems.contains("already exists") && problems.contains("leaves it alone"),
        "{problems}"
    );
    assert_eq!(r["sandbox_created"], false);
    assert!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("DELETE") || c.ends_with("/disks"))
            .count()
            == inserts,
        "{:#?}",
        fake.calls()
    );
    assert_eq!(disk_names(&fake).len(), 2 + taken.len());
    for name in &taken {
        fake.state.lock().unwrap().disks.remove(name);
    }

    // The next drill passes.
    let (code, r) = drill(&home, "data-disk");
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(disk_names(&fake), ["data-disk", "home-disk"]);
    fake.assert_nothing_unexpected();
}

#[test]
fn serve_notices_a_snapshot_deleted_behind_lifeboats_back_and_alerts() {
    use crate::common::fakes::{FakeApi, Serve};
    let fake = FakeCompute::start();
    let api = FakeApi::start();
    let home = gcp_home_with(&fake, false, "verify_schedule = \"*/2 * * * * *\"");
    let config = std::fs::read_to_string(home.config_path()).unwrap();
    std::fs::write(
        home.config_path(),
        format!(
            "{config}\n[access]\nchannels = [\"slack:C0ALERTS\"]\n\n[slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\n\
             bot_token = \"${{SLACK_BOT_TOKEN}}\"\nalert_channel = \"C0ALERTS\"\napi_url = \"{}/api/\"\n",
            api.base
        ),
    )
    .unwrap();
    let b = home.json(&["backup", "data-disk"]);
    let snap = b["gcp"]["snapshot"].as_str().unwrap().to_string();
    let alerts = || -> Vec<String> {
        api.calls_to("chat.postMessage")
            .into_iter()
            .map(|c| c.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    let serve = Serve::start(&home);
    // While the snapshot exists, scheduled verifies pass and nothing is said.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(alerts().is_empty(), "{:?}", alerts());
    fake.state.lock().unwrap().snapshots.remove(&snap);
    api.wait_until(20, "the verify alert", |_| {
        alerts()
            .iter()
            .any(|t| t.contains("verification of data-disk failed") && t.contains(&snap))
    });
    serve.stop();
    let verifies = fake
        .calls()
        .iter()
        .filter(|c| **c == format!("GET /compute/v1/projects/{PROJECT}/global/snapshots"))
        .count();
    assert!(
        verifies >= 2,
        "looked up before and after the deletion: {:#?}",
        fake.calls()
    );
}
