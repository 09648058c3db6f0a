//! A local server speaking enough of the Discord Gateway (v10, JSON, no compression):
//! HELLO, IDENTIFY → READY, heartbeats and their acks, dispatched INTERACTION_CREATE
//! events with sequence numbers, RECONNECT, RESUME → RESUMED with the missed events
//! replayed, and connections cut without a close handshake.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

enum Out {
    Text(String),
    Cut,
}

#[derive(Default)]
struct State {
    /// Connections accepted.
    connections: u32,
    /// IDENTIFY payloads received.
    identifies: Vec<Value>,
    /// RESUME payloads received.
    resumes: Vec<Value>,
    heartbeats: u32,
    /// Every dispatch of the session, in order: (seq, frame).
    dispatched: Vec<(u64, String)>,
    current: Option<mpsc::UnboundedSender<Out>>,
    /// A session is live on `current` (after READY or RESUMED).
    live: bool,
    refusing: bool,
    next_interaction: u64,
}

pub struct GatewayServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

pub const SESSION: &str = "gateway-session-1";

impl GatewayServer {
    pub fn start() -> GatewayServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let (accept_state, resume_url) = (state.clone(), url.clone());
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if accept_state.lock().unwrap().refusing {
                    drop(tcp);
                    continue;
                }
                tokio::spawn(connection(tcp, accept_state.clone(), resume_url.clone()));
            }
        });
        GatewayServer {
            url,
            state,
            _runtime: runtime,
        }
    }

    pub fn identifies(&self) -> Vec<Value> {
        self.state.lock().unwrap().identifies.clone()
    }

    pub fn resumes(&self) -> Vec<Value> {
        self.state.lock().unwrap().resumes.clone()
    }

    pub fn heartbeats(&self) -> u32 {
        self.state.lock().unwrap().heartbeats
    }

    pub fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    /// Wait until a session is live (READY or RESUMED sent) on a connection.
    pub fn wait_live(&self, secs: u64) {
        super::wait_for(secs, "a live Gateway session", || {
            self.state.lock().unwrap().live
        });
    }

    /// Dispatch INTERACTION_CREATE with `interaction` (its `id` and `token` are set here
    /// when absent); returns the interaction's id. Queued for replay when nobody is on.
    pub fn interaction(&self, mut interaction: Value) -> String {
        let mut s = self.state.lock().unwrap();
        s.next_interaction += 1;
        let id = format!("90000000000000{:04}", s.next_interaction);
        if interaction.get("id").is_none() {
            interaction["id"] = json!(id);
        }
        if interaction.get("token").is_none() {
            interaction["token"] = json!(format!("token-{id}"));
        }
        let id = interaction["id"].as_str().unwrap().to_string();
        let seq = s.dispatched.len() as u64 + 2;
        let frame =
            json!({"op": 0, "s": seq, "t": "INTERACTION_CREATE", "d": interaction}).to_string();
        s.dispatched.push((seq, frame.clone()));
        if s.live
            && let Some(tx) = &s.current
        {
            let _ = tx.send(Out::Text(frame));
        }
        id
    }

    /// Send a raw frame on the current connection.
    pub fn send_raw(&self, text: &str) {
        let s = self.state.lock().unwrap();
        let _ = s
            .current
            .as_ref()
            .expect("connected")
            .send(Out::Text(text.into()));
    }

    /// Op 7: the client must reconnect and resume.
    pub fn reconnect(&self) {
        self.send_raw(r#"{"op":7,"d":null}"#);
    }

    /// Cut the current connection without a close handshake.
    pub fn cut(&self) {
        let tx = self.state.lock().unwrap().current.clone();
        if let Some(tx) = tx {
            let _ = tx.send(Out::Cut);
        }
        super::wait_for(5, "the Gateway connection to close", || {
            self.state.lock().unwrap().current.is_none()
        });
    }

    pub fn refuse(&self) {
        self.state.lock().unwrap().refusing = true;
    }

    pub fn accept(&self) {
        self.state.lock().unwrap().refusing = false;
    }
}

fn ready(resume_url: &str) -> String {
    json!({"op": 0, "s": 1, "t": "READY", "d": {
        "v": 10,
        "user": {"id": "4242", "username": "lifeboat", "discriminator": "0", "global_name": null, "avatar": null, "bot": true, "verified": true, "mfa_enabled": false, "flags": 0},
        "guilds": [],
        "session_id": SESSION,
        "resume_gateway_url": resume_url,
        "shard": [0, 1],
        "application": {"id": "4242", "flags": 0}
    }})
    .to_string()
}

async fn connection(tcp: tokio::net::TcpStream, state: Arc<Mutex<State>>, resume_url: String) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        s.current = Some(tx.clone());
        s.live = false;
        s.connections
    };
    let hello = json!({"op": 10, "d": {"heartbeat_interval": 2000}}).to_string();
    if ws.send(Message::text(hello)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Text(t)) => { if ws.send(Message::text(t)).await.is_err() { break; } }
                Some(Out::Cut) | None => break,
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else { continue };
                    let replies = answer(&state, &v, &resume_url);
                    for r in replies {
                        if ws.send(Message::text(r)).await.is_err() { break; }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut s = state.lock().unwrap();
    if s.connections == n {
        s.current = None;
        s.live = false;
    }
}

/// The frames to answer a client frame with.
fn answer(state: &Mutex<State>, v: &Value, resume_url: &str) -> Vec<String> {
    let mut s = state.lock().unwrap();
    match v["op"].as_u64() {
        Some(1) => {
            s.heartbeats += 1;
            vec![r#"{"op":11}"#.to_string()]
        }
        Some(2) => {
            s.identifies.push(v["d"].clone());
            s.live = true;
            s.dispatched.clear();
            vec![ready(resume_url)]
        }
        Some(6) => {
            s.resumes.push(v["d"].clone());
            let after = v["d"]["seq"].as_u64().unwrap_or(0);
            let mut out: Vec<String> = s
                .dispatched
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(_, f)| f.clone())
                .collect();
            let seq = s.dispatched.len() as u64 + 2;
            out.push(json!({"op": 0, "s": seq, "t": "RESUMED", "d": {}}).to_string());
            s.dispatched.push((seq, out.last().unwrap().clone()));
            s.live = true;
            out
        }
        _ => Vec::new(),
    }
}
