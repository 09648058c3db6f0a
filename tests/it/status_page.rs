//! The status page end to end: the real `serve` over a state database holding months of
//! backups, drills, an alert and an incident; headless Chromium (Debian's) logs in, dumps
//! the DOM and takes the screenshots the README shows; plain HTTP for the refusals.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::fakes::*;
use crate::common::history::{Seed, finished_job, seed};
use crate::common::*;
use chrono::{Duration, Utc};
use rusqlite::{Connection, params};

const PASSWORD: &str = "hunter2-but-longer";
const TOKEN: &str = "status-page-token-0123456789";
/// An incident title and a note that would run script if they were not escaped.
const EVIL_TITLE: &str =
    "<img src=x onerror=\"document.body.dataset.pwned=1\">Primary <b>DB</b> down";
const EVIL_NOTE: &str = "<script>document.body.dataset.pwned=2</script>failover started";

/// An argon2id hash of `password` made by Debian's `argon2` tool, independently of
/// lifeboat.
fn debian_argon2(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("argon2")
        .args(["lifeboat-test-salt", "-id", "-e"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Debian's argon2 tool (apt-get install argon2; scripts/test.sh does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A home with three targets, the page enabled for alice (Debian-made hash) and bob
/// (a hash from `lifeboat web hash-password`), and months of history in its state.
fn page_home(chat: ConfigBuilder) -> Home {
    let home = Home::new();
    drop(make_app_db(&home.path("data/app.db"), 50));
    std::fs::create_dir_all(home.path("data/files")).unwrap();
    std::fs::write(home.path("data/files/a.txt"), "a").unwrap();
    let alice = debian_argon2(PASSWORD);
    let config = |users: &str| {
        chat.clone()
            .section(&format!(
                "[web]\nenabled = true\ntoken = \"${{WEB_TOKEN}}\"\n[web.users]\n{users}"
            ))
            .sqlite_target("app-db", "../data/app.db")
            .with("schedule = \"0 0 3 * * *\"\nrpo = \"26h\"\nrto = \"30m\"")
            .directory_target("files", "../data/files")
            .with("schedule = \"0 0 */6 * * *\"\nrpo = \"8h\"\nrto = \"15m\"")
            .sqlite_target("wiki-db", "../data/app.db")
            .with("rpo = \"26h\"\nrto = \"30m\"")
            .external_target("nightly-script", "0 0 2 * * *", "WEB_TOKEN")
            .with("grace = \"2h\"\nrpo = \"30h\"")
    };
    config(&format!("alice = \"{alice}\"\n")).write(&home);
    // bob's hash from lifeboat itself.
    let bob = home.hash_password("bobs password");
    config(&format!("bob = \"{bob}\"\nalice = \"{alice}\"\n")).write(&home);
    with_env(&home, &["status"]); // lifeboat makes the state database and its schema
    let mut db = Connection::open(home.path("var/lifeboat.db")).unwrap();
    let now = Utc::now();
    let app_db = Seed {
        target: "app-db",
        kind: "sqlite",
        store: Some("local"),
        days: 120,
        every_hours: 24,
        base_size: 48 << 20,
        base_seconds: 34.0,
        drill_every_days: 14,
        drill_rto: 540.0,
        gap: Some((41, 39)),
        failed_drill: Some(60),
    };
    seed(&mut db, &app_db, now - Duration::minutes(10));
    let files = Seed {
        target: "files",
        kind: "directory",
        store: Some("local"),
        days: 100,
        every_hours: 6,
        base_size: 3 << 20,
        base_seconds: 4.0,
        drill_every_days: 30,
        drill_rto: 120.0,
        gap: None,
        failed_drill: None,
    };
    seed(&mut db, &files, now - Duration::minutes(5));
    let nightly = Seed {
        target: "nightly-script",
        kind: "external",
        store: None,
        days: 90,
        every_hours: 24,
        base_size: 0,
        base_seconds: 0.0,
        drill_every_days: 0,
        drill_rto: 0.0,
        gap: None,
        failed_drill: None,
    };
    seed(&mut db, &nightly, now - Duration::minutes(10));
    // Backed up (no schedule) but never drilled although it has an RTO: amber.
    let wiki = Seed {
        target: "wiki-db",
        days: 60,
        base_size: 9 << 20,
        base_seconds: 12.0,
        drill_every_days: 0,
        gap: None,
        failed_drill: None,
        ..app_db
    };
    seed(&mut db, &wiki, now - Duration::hours(9));
    // The newest backup of `files` failed, and the watchdog holds its alert open.
    finished_job(&db, "backup", "files", "failed", "disk full on the store");
    db.execute(
        "INSERT OR REPLACE INTO watch (target, conditions, bad_since, alerted_at, first_seen) VALUES ('files', 'failed', ?1, ?1, ?1)",
        params![crate::common::history::text(now - Duration::minutes(3))],
    )
    .unwrap();
    drop(db);
    with_env(&home, &["incident", "start", EVIL_TITLE]);
    with_env(&home, &["incident", "note", EVIL_NOTE]);
    home
}

fn with_env(home: &Home, args: &[&str]) -> String {
    let out = home.command(args).env("WEB_TOKEN", TOKEN).output().unwrap();
    assert!(out.status.success(), "lifeboat {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn serve(home: &Home) -> Serve {
    let mut cmd = home.command(&["serve"]);
    cmd.env("WEB_TOKEN", TOKEN);
    Serve::from_command(cmd)
}

/// GET with an optional Authorization header: status, headers we care about, body.
fn get(url: &str, auth: Option<&str>) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let mut resp = req.call().expect("request");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (
        resp.status().as_u16(),
        challenge,
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Headless Chromium from Debian, on a fresh profile, with the flags that keep it off
/// the network (it would wait on it otherwise).
fn chromium(args: &[&str], url: &str) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("Debian's chromium (apt-get install chromium; scripts/test.sh does)");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    out
}

fn dom(serve: &Serve, path: &str) -> String {
    let url = format!("http://alice:{PASSWORD}@{}{path}", serve.addr);
    stdout(&chromium(&["--dump-dom"], &url))
}

/// Take a screenshot of `path` into `file` and check it shows the page: the header, and
/// at least 100 pixels of each of `colors` (e.g. the red badge, a chart's line).
fn screenshot(serve: &Serve, path: &str, file: &Path, height: u32, colors: &[[u8; 3]]) {
    let url = format!("http://alice:{PASSWORD}@{}{path}", serve.addr);
    let _ = std::fs::remove_file(file);
    chromium(
        &[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size=1360,{height}"),
        ],
        &url,
    );
    // A real picture of the page: the size asked for, and the health colors in it.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1360, height));
    let step = info.color_type.samples();
    let near = |px: &[u8], c: [u8; 3]| (0..3).all(|i| (px[i] as i32 - c[i] as i32).abs() < 12);
    let count = |c: [u8; 3]| buf.chunks(step).filter(|p| near(p, c)).count();
    assert!(count([0x1d, 0x23, 0x30]) > 1000, "the header is drawn");
    for c in colors {
        assert!(count(*c) > 100, "{c:?} is drawn in {}", file.display());
    }
}

fn docs(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn the_overview_shows_every_target_alerts_and_incidents_as_text() {
    let home = page_home(ConfigBuilder::new());
    let serve = serve(&home);
    let page = dom(&serve, "/");
    for target in ["app-db", "files", "wiki-db", "nightly-script"] {
        assert!(
            page.contains(&format!("id=\"target-{target}\"")),
            "row of {target}:\n{page}"
        );
        assert!(page.contains(&format!("href=\"/targets/{target}\"")));
    }
    // files: its last backup failed and the watchdog's alert is open.
    let row = |t: &str| {
        let start = page.find(&format!("id=\"target-{t}\"")).unwrap();
        let end = page[start..].find("</tr>").unwrap() + start;
        page[start..end].to_string()
    };
    assert!(
        row("files").contains("data-health=\"red\""),
        "{}",
        row("files")
    );
    assert!(row("files").contains("LAST BACKUP FAILED"));
    assert!(
        row("app-db").contains("data-health=\"green\""),
        "{}",
        row("app-db")
    );
    assert!(row("app-db").contains("passed"), "{}", row("app-db"));
    assert!(
        row("wiki-db").contains("data-health=\"amber\""),
        "{}",
        row("wiki-db")
    );
    assert!(row("wiki-db").contains("never drilled") && row("wiki-db").contains("9h ago"));
    assert!(
        row("nightly-script").contains("10m ago"),
        "{}",
        row("nightly-script")
    );
    let alerts = &page[page.find("id=\"alerts\"").expect("alerts table")..];
    assert!(alerts.contains("backup failed"), "{alerts}");
    // The incident's title and note are shown as text; nothing in them ran or became markup.
    assert!(
        page.contains("&lt;img src=x onerror="),
        "title shown as text:\n{page}"
    );
    assert!(
        page.contains("&lt;script&gt;document.body.dataset.pwned=2&lt;/script&gt;failover started")
    );
    assert!(!page.contains("<img"), "no image element was injected");
    assert!(!page.contains("<b>DB</b>"), "no markup from the title");
    assert!(!page.contains("data-pwned"), "no injected script ran");
    // A target name in the address is shown as text too (names in the config cannot
    // hold markup: config check allows letters, digits, '-' and '_' only).
    let missing = dom(&serve, "/targets/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
    assert!(
        missing.contains("&lt;img src=x onerror=alert(1)&gt;") && !missing.contains("<img"),
        "{missing}"
    );
    let (red, amber, green) = ([0xc6, 0x28, 0x28], [0xd9, 0x8c, 0x00], [0x2e, 0x85, 0x40]);
    screenshot(
        &serve,
        "/",
        &docs("status-page.png"),
        900,
        &[red, amber, green],
    );
    serve.stop();
}

#[test]
fn a_target_page_draws_its_history_charts_with_axes_and_objectives() {
    let home = page_home(ConfigBuilder::new());
    let serve = serve(&home);
    let page = dom(&serve, "/targets/app-db");
    for (chart, y_axis) in [
        ("size", "size (MiB)"),
        ("duration", "duration (seconds)"),
        ("rpo", "RPO (hours)"),
        ("rto", "RTO (minutes)"),
    ] {
        let start = page
            .find(&format!("id=\"chart-{chart}\""))
            .unwrap_or_else(|| panic!("chart {chart} missing:\n{page}"));
        let end = page[start..].find("</figure>").unwrap() + start;
        let figure = &page[start..end];
        assert!(figure.contains("<svg"), "{chart} is an inline SVG");
        assert!(figure.contains(y_axis), "{chart}'s Y axis says {y_axis}");
        assert!(figure.contains("date (UTC)"), "{chart}'s X axis is dated");
        assert!(
            figure.contains("<polyline") || figure.contains("<circle"),
            "{chart} plots data"
        );
    }
    let rpo = &page[page.find("id=\"chart-rpo\"").unwrap()..];
    assert!(rpo[..rpo.find("</figure>").unwrap()].contains("objective"));
    let rto = &page[page.find("id=\"chart-rto\"").unwrap()..];
    let rto = &rto[..rto.find("</figure>").unwrap()];
    assert!(
        rto.contains("objective") && rto.contains("drill failed"),
        "{rto}"
    );
    // The drills table lists the failed drill.
    assert!(page[page.find("id=\"drills\"").unwrap()..].contains("FAILED"));
    let (line, objective) = ([31, 119, 180], [214, 39, 40]);
    screenshot(
        &serve,
        "/targets/app-db",
        &docs("status-target.png"),
        1000,
        &[line, objective],
    );
    // The incident page has the whole timeline, as text.
    let incident = dom(&serve, "/incidents/1");
    assert!(
        incident.contains("Incident #1: &lt;img src=x"),
        "{incident}"
    );
    assert!(incident.contains("failover started") && !incident.contains("<img"));
    serve.stop();
}

#[test]
fn logins_are_required_checked_and_every_view_is_audited() {
    let home = page_home(ConfigBuilder::new());
    let serve = serve(&home);
    let (code, challenge, _) = get(&serve.url("/"), None);
    assert_eq!(code, 401, "no login, no page");
    assert!(challenge.unwrap().starts_with("Basic realm="));
    assert_eq!(get(&serve.url("/targets/app-db"), None).0, 401);
    assert_eq!(get(&serve.url("/incidents/1"), None).0, 401);
    assert_eq!(get(&serve.url("/"), Some(&basic("alice", "wrong"))).0, 401);
    assert_eq!(
        get(&serve.url("/"), Some(&basic("mallory", PASSWORD))).0,
        401
    );
    assert_eq!(
        get(&serve.url("/"), Some("Bearer not-the-token-at-all")).0,
        401
    );
    let (code, _, body) = get(&serve.url("/"), Some(&basic("alice", PASSWORD)));
    assert_eq!(code, 200);
    assert!(body.contains("id=\"target-app-db\""));
    // bob's hash came from `lifeboat web hash-password`; the token from the environment.
    assert_eq!(
        get(&serve.url("/"), Some(&basic("bob", "bobs password"))).0,
        200
    );
    assert_eq!(
        get(
            &serve.url("/targets/files"),
            Some(&format!("Bearer {TOKEN}"))
        )
        .0,
        200
    );
    // A target name in the address is echoed as text only.
    let (code, _, body) = get(
        &serve.url("/targets/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        Some(&basic("alice", PASSWORD)),
    );
    assert_eq!(code, 404);
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script>"),
        "{body}"
    );
    // Nothing secret or outside the config: no token, no hashes, no target paths.
    for path in ["/", "/targets/app-db", "/targets/files", "/incidents/1"] {
        let (_, _, body) = get(&serve.url(path), Some(&basic("alice", PASSWORD)));
        assert!(!body.contains(TOKEN) && !body.contains("$argon2"), "{path}");
        assert!(
            !body.contains(home.path("data").to_str().unwrap()),
            "{path} shows a path"
        );
    }
    // Counted in /metrics by view, not by name.
    let (_, _, metrics) = get(&serve.url("/metrics"), None);
    assert!(
        metrics.contains("endpoint=\"/targets/{name}\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("app-db\",status"),
        "no target names as endpoint labels"
    );
    serve.stop();
    let db = Connection::open(home.path("var/lifeboat.db")).unwrap();
    let rows: Vec<(String, String, String)> = db
        .prepare("SELECT actor, outcome, detail FROM audit WHERE action = 'web view' ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let has = |actor: &str, outcome: &str, detail: &str| {
        rows.iter()
            .any(|(a, o, d)| a == actor && o == outcome && d.contains(detail))
    };
    assert!(has("web:anonymous", "refused", "GET / → 401"), "{rows:#?}");
    assert!(
        has("web:alice", "refused", "GET / → 401"),
        "a wrong password is recorded"
    );
    assert!(has("web:mallory", "refused", "GET /"));
    assert!(has("web:alice", "ok", "GET / → 200"));
    assert!(has("web:bob", "ok", "GET / → 200"));
    assert!(has("web:token", "ok", "GET /targets/files → 200"));
    assert!(has("web:alice", "not found", "→ 404"));
    // Views stay off the incident's timeline.
    let timeline: i64 = db
        .query_row(
            "SELECT count(*) FROM incident_events WHERE text LIKE '%web view%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(timeline, 0);
}

#[test]
fn the_page_is_off_unless_enabled_and_an_enabled_page_needs_logins() {
    let home = Home::new();
    home.write_config("");
    let serve = Serve::start(&home);
    assert_eq!(
        get(&serve.url("/"), None).0,
        404,
        "no [web] section, no page"
    );
    assert_eq!(get(&serve.url("/healthz"), None).0, 200);
    serve.stop();
    home.write_config("[web]\nenabled = false\n");
    let serve = Serve::start(&home);
    assert_eq!(get(&serve.url("/"), None).0, 404);
    serve.stop();
    home.write_config("[web]\nenabled = true\n");
    let out = home.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("web.enabled"), "{}", stderr(&out));
    home.write_config("[web]\nenabled = true\n[web.users]\nalice = \"hunter2\"\n");
    let out = home.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("web.users.alice") && stderr(&out).contains("hash-password"));
    home.write_config("[web]\nenabled = true\ntoken = \"plain-text-token-here\"\n");
    let out = home.run(&["config", "check"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the token must come from the environment"
    );
    assert!(stderr(&out).contains("web.token"), "{}", stderr(&out));
}

#[test]
fn backup_status_of_a_target_in_slack_uploads_its_charts_as_png() {
    let api = FakeApi::start();
    let slack = ConfigBuilder::new()
        .viewers(&["slack:U0VIEW1"])
        .channels(&["slack:C0OPS"])
        .slack(&api, None);
    let home = page_home(slack);
    let serve = serve(&home);
    let (code, body) = slack_command(&serve, "U0VIEW1", "C0OPS", "/backup", "status app-db");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("app-db") && body.contains("Posting its charts"),
        "{body}"
    );
    let calls = api.wait_until(30, "the chart upload completed", |c| {
        c.iter()
            .any(|c| c.path.ends_with("files.completeUploadExternal"))
    });
    assert_eq!(api.calls_to("files.getUploadURLExternal").len(), 1);
    let uploaded = api.uploads();
    assert_eq!(uploaded.len(), 1);
    assert!(
        uploaded[0].starts_with("\u{fffd}PNG\r\n"),
        "a PNG was uploaded"
    );
    assert!(uploaded[0].len() > 10_000, "with four charts drawn in it");
    let done = calls
        .iter()
        .find(|c| c.path.ends_with("files.completeUploadExternal"))
        .unwrap();
    assert!(
        done.raw.contains("C0OPS") && done.raw.contains("drill RTO"),
        "{}",
        done.raw
    );
    // An unknown target is refused with the ones that exist, and nothing is uploaded.
    let (_, body) = slack_command(&serve, "U0VIEW1", "C0OPS", "/backup", "status nope");
    assert!(body.contains("app-db"), "{body}");
    // The charts asked for again after it: once they are uploaded, anything
    // the refused one had set off would have been uploaded too.
    let (code, body) = slack_command(&serve, "U0VIEW1", "C0OPS", "/backup", "status app-db");
    assert_eq!(code, 200, "{body}");
    api.wait_until(30, "the later charts", |_| {
        api.calls_to("files.completeUploadExternal").len() >= 2
    });
    assert_eq!(api.uploads().len(), 2, "nothing for the unknown target");
    serve.stop();
}
