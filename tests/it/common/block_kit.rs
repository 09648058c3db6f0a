//! Slack's own Block Kit models (PyPI `slack_sdk`, installed by scripts/test.sh) read the
//! messages lifeboat sent to the fake Slack API: every block parses, passes the SDK's
//! limit checks, and writes back exactly as sent.

use std::io::Write;
use std::process::{Command, Stdio};

use super::fakes::Call;

const SCRIPT: &str = r#"
import json, sys
from slack_sdk.models.blocks import Block
bad = []
for message in json.load(sys.stdin):
    for b in message:
        parsed = Block.parse(b)
        again = parsed.to_dict() if parsed is not None else None
        if again != b:
            bad.append({"sent": b, "parsed": again})
print(json.dumps(bad))
sys.exit(1 if bad else 0)
"#;

/// Every `chat.postMessage` / `chat.update` among `calls` read whole by slack_sdk;
/// returns how many messages were checked.
pub fn assert_slack_sdk_reads(calls: &[Call]) -> usize {
    let messages: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|c| c.path.ends_with("chat.postMessage") || c.path.ends_with("chat.update"))
        .map(|c| &c.body["blocks"])
        .collect();
    assert_blocks_read(&messages)
}

/// Every message's `blocks` (e.g. from a slash command's answer) read whole by slack_sdk;
/// returns how many messages were checked.
pub fn assert_blocks_read(messages: &[&serde_json::Value]) -> usize {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with slack_sdk (scripts/test.sh installs both)");
    let input = serde_json::to_vec(messages).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "slack_sdk did not read lifeboat's messages as sent:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    messages.len()
}
