//! A local fake of the Compute Engine REST API for the gcp-disk tests: disks, snapshots,
//! instances and their long-running operations, with scripted failures; it answers only
//! the requests it expects and records every call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{BASE, PROJECT, ZONE};

/// What a pending operation does when it completes.
#[derive(Clone)]
pub enum Effect {
    Snapshot { disk: String, body: Value },
    DeleteSnapshot(String),
    CreateDisk(Value),
    DeleteDisk(String),
    Attach { instance: String, body: Value },
}

#[derive(Default)]
pub struct FakeState {
    pub disks: BTreeMap<String, Value>,
    pub instances: BTreeMap<String, Vec<Value>>,
    pub snapshots: BTreeMap<String, Value>,
    pub operations: BTreeMap<String, (Value, Option<Effect>)>,
    /// Every request, as "METHOD /path".
    pub calls: Vec<String>,
    /// Requests the fake did not expect, answered 400.
    pub unexpected: Vec<String>,
    /// The next createSnapshot operation ends with this error (code, message).
    pub fail_next_snapshot: Option<(String, String)>,
    /// The next disks.insert operation ends with this error (code, message).
    pub fail_next_disk: Option<(String, String)>,
    /// The body of every disks.insert that was accepted.
    pub inserted_disks: Vec<Value>,
    /// While set, a new snapshot is CREATING at its first read, then UPLOADING until
    /// this file exists (the test's hooks decide when it is READY), or for at most 200
    /// reads, so a lifeboat that waits for READY first fails the test instead of hanging.
    pub uploading_until: Option<std::path::PathBuf>,
    pub uploading_reads: u32,
    /// Whether that file existed when the snapshot became READY.
    pub ready_with_file: Option<bool>,
    pub next_id: u64,
}

pub type Shared = Arc<Mutex<FakeState>>;

pub struct FakeCompute {
    pub state: Shared,
    pub url: String,
    pub _rt: tokio::runtime::Runtime,
}

impl FakeCompute {
    pub fn start() -> FakeCompute {
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

    pub fn add_disk(&self, name: &str, gb: u64) {
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

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn snapshot_names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .snapshots
            .keys()
            .cloned()
            .collect()
    }

    pub fn assert_nothing_unexpected(&self) {
        let s = self.state.lock().unwrap();
        assert!(
            s.unexpected.is_empty(),
            "unexpected requests: {:?}",
            s.unexpected
        );
    }
}

pub fn error(status: StatusCode, message: &str) -> Response {
    let reason = match status.as_u16() {
        403 => "forbidden",
        404 => "notFound",
        _ => "invalid",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (status, axum::Json(body)).into_response()
}

pub fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// Every request goes through here: known shapes are served, the rest refused.
pub async fn handle(
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
            Some(v) if s.uploading_until.is_some() && v["status"] != "READY" => {
                let mut v = v.clone();
                let file = s.uploading_until.as_ref().is_some_and(|p| p.exists());
                s.uploading_reads += 1;
                let next = match v["status"].as_str() {
                    Some("CREATING") => "UPLOADING",
                    _ if file || s.uploading_reads > 200 => {
                        s.ready_with_file = Some(file);
                        "READY"
                    }
                    _ => "UPLOADING",
                };
                let shown = v.clone();
                v["status"] = json!(next);
                s.snapshots.insert(name.to_string(), v);
                ok(shown)
            }
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

pub fn list_snapshots(s: &mut FakeState, filter: Option<String>) -> Response {
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

pub fn start_op(
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
pub fn poll_op(s: &mut FakeState, name: &str) -> Response {
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

pub fn apply(s: &mut FakeState, effect: Effect) -> Result<(), (String, String)> {
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
                "status": if s.uploading_until.is_some() { "CREATING" } else { "READY" },
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
