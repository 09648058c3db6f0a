//! A local server speaking Slack's Socket Mode protocol over plain WebSocket: `hello` on
//! connect, envelopes with an `envelope_id`, acknowledgements recorded as they come,
//! `disconnect` (refresh) messages, and a connection cut without a close handshake.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

enum Out {
    Text(String),
    /// End the TCP connection at once, as a network failure does.
    Cut,
}

#[derive(Default)]
struct State {
    /// Connections accepted (each got a hello).
    connections: u32,
    /// Acknowledgements received: (when, the frame).
    acks: Vec<(Instant, Value)>,
    /// Frames sent to the client: envelope id → when.
    sent: Vec<(String, Instant)>,
    current: Option<mpsc::UnboundedSender<Out>>,
    /// While set, connections are cut right after the TCP accept (Slack unreachable).
    refusing: bool,
    next: u64,
}

pub struct SocketModeServer {
    /// The wss-style URL apps.connections.open hands out (plain ws:// on loopback).
    pub url: String,
    state: Arc<Mutex<State>>,
    _runtime: tokio::runtime::Runtime,
}

impl SocketModeServer {
    pub fn start() -> SocketModeServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!(
            "ws://{}/link/?ticket=test-ticket&app_id=A0APP",
            listener.local_addr().unwrap()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let accept_state = state.clone();
        runtime.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if accept_state.lock().unwrap().refusing {
                    drop(tcp);
                    continue;
                }
                tokio::spawn(connection(tcp, accept_state.clone()));
            }
        });
        SocketModeServer {
            url,
            state,
            _runtime: runtime,
        }
    }

    pub fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    pub fn wait_connections(&self, n: u32, secs: u64) {
        super::wait_for(secs, &format!("{n} Socket Mode connection(s)"), || {
            self.connections() >= n && self.state.lock().unwrap().current.is_some()
        });
    }

    fn push(&self, out: Out) {
        let s = self.state.lock().unwrap();
        let sent = s.current.as_ref().expect("a client is connected").send(out);
        assert!(sent.is_ok(), "the connection is open");
    }

    /// Send a raw text frame.
    pub fn send_raw(&self, text: &str) {
        self.push(Out::Text(text.to_string()));
    }

    /// Send an envelope of `kind` with `payload`; returns its envelope id.
    pub fn envelope(&self, kind: &str, payload: Value) -> String {
        let id = {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            format!("env-{}-{}", s.next, kind)
        };
        let frame = json!({"envelope_id": id, "type": kind, "payload": payload, "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""});
        self.state
            .lock()
            .unwrap()
            .sent
            .push((id.clone(), Instant::now()));
        self.send_raw(&frame.to_string());
        id
    }

    /// A slash command as Socket Mode delivers it.
    pub fn slash(&self, user: &str, channel: &str, command: &str, text: &str) -> String {
        self.envelope(
            "slash_commands",
            json!({
                "token": "legacy-unused", "team_id": "T0TEAM", "team_domain": "acme",
                "channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": "someone",
                "command": command, "text": text, "api_app_id": "A0APP", "is_enterprise_install": "false",
                "response_url": "https://hooks.slack.com/commands/T0TEAM/1/abc", "trigger_id": "1.2.3"
            }),
        )
    }

    /// A Block Kit button click as Socket Mode delivers it.
    pub fn click(&self, user: &str, channel: &str, ts: &str, action: &str, value: &str) -> String {
        self.envelope(
            "interactive",
            json!({
                "type": "block_actions",
                "team": {"id": "T0TEAM", "domain": "acme"},
                "user": {"id": user, "username": "someone", "team_id": "T0TEAM"},
                "api_app_id": "A0APP", "token": "legacy-unused",
                "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
                "trigger_id": "1.2.3",
                "channel": {"id": channel, "name": "ops"},
                "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
                "actions": [{"type": "button", "action_id": action, "block_id": "b1", "value": value, "action_ts": "1700000000.1"}]
            }),
        )
    }

    /// Wait for the acknowledgement of `envelope_id`; returns it and how long it took.
    pub fn ack(&self, envelope_id: &str, secs: u64) -> (Value, Duration) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            {
                let s = self.state.lock().unwrap();
                if let Some((at, ack)) =
                    s.acks.iter().find(|(_, a)| a["envelope_id"] == envelope_id)
                {
                    let sent = s
                        .sent
                        .iter()
                        .find(|(id, _)| id == envelope_id)
                        .map(|(_, t)| *t);
                    return (
                        ack.clone(),
                        sent.map(|t| at.duration_since(t)).unwrap_or_default(),
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no acknowledgement of {envelope_id} in {secs}s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many acknowledgements of `envelope_id` arrived.
    pub fn ack_count(&self, envelope_id: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.acks
            .iter()
            .filter(|(_, a)| a["envelope_id"] == envelope_id)
            .count()
    }

    /// Ask the client to reconnect, as Slack does every few hours.
    pub fn refresh(&self) {
        self.send_raw(r#"{"type":"disconnect","reason":"refresh_requested","debug_info":{"host":"applink-test"}}"#);
    }

    /// Cut the current connection without a close handshake.
    pub fn cut(&self) {
        self.push(Out::Cut);
        super::wait_for(5, "the connection to close", || {
            self.state.lock().unwrap().current.is_none()
        });
    }

    /// Refuse (cut at once) every new connection until `accept` is called.
    pub fn refuse(&self) {
        self.state.lock().unwrap().refusing = true;
    }

    pub fn accept(&self) {
        self.state.lock().unwrap().refusing = false;
    }
}

async fn connection(tcp: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let n = {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        s.current = Some(tx.clone());
        s.connections
    };
    let hello = json!({"type": "hello", "num_connections": 1, "debug_info": {"host": "applink-test", "build_number": 1, "approximate_connection_time": 18060}, "connection_info": {"app_id": "A0APP"}});
    if ws.send(Message::text(hello.to_string())).await.is_err() {
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
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                        state.lock().unwrap().acks.push((Instant::now(), v));
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    // Dropping the stream ends the TCP connection with no close frame.
    let mut s = state.lock().unwrap();
    if s.connections == n {
        s.current = None;
    }
}
