//! The first five minutes on the built-in config: the status page is on behind a token
//! lifeboat makes, keeps and prints as an address to open, and a target with no backup
//! gets one when `serve` starts. Configs that set up `[web]` keep their own logins.

use std::os::unix::fs::PermissionsExt;

use crate::common::fakes::*;
use crate::common::*;

/// The shipped built-in config, listening on a free port, as a home's config (its paths
/// are relative to the config directory, as they are in the repository).
fn built_in_home() -> Home {
    let home = Home::new();
    let shipped = include_str!("../../config/lifeboat.toml");
    let text = shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    assert_ne!(
        text, shipped,
        "the built-in config listens on 127.0.0.1:8080"
    );
    std::fs::write(home.config_path(), text).unwrap();
    home
}

/// A GET that follows no redirect: status, the header `name`, body.
fn get(url: &str, headers: &[(&str, &str)], name: &str) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().expect("request");
    let value = resp
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    (resp.status().as_u16(), value, body)
}

/// The address `serve` printed for the page, and its token.
fn printed_url(serve: &Serve) -> (String, String) {
    let log = serve.log_text();
    let url = log
        .lines()
        .find_map(|l| l.split("status page: ").nth(1))
        .unwrap_or_else(|| panic!("no status page address in the log:\n{log}"))
        .trim()
        .to_string();
    let token = url.split("?token=").nth(1).unwrap().to_string();
    (url, token)
}

#[test]
fn the_built_in_config_opens_its_page_with_a_printed_token_and_backs_up_at_start() {
    let home = built_in_home();
    let serve = Serve::start(&home);
    wait_for(20, "the status page address", || {
        serve.log_text().contains("status page: ")
    });
    let (url, token) = printed_url(&serve);
    assert_eq!(url, format!("http://{}/?token={token}", serve.addr));
    assert_eq!(token.len(), 64);
    let file = home.path("var/web-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only lifeboat's user reads the token");

    // Without the token: refused, and no password dialog (there are no passwords).
    let (code, challenge, _) = get(&serve.url("/"), &[], "www-authenticate");
    assert_eq!((code, challenge), (401, None));
    let wrong = format!("/?token={}", "0".repeat(64));
    assert_eq!(get(&serve.url(&wrong), &[], "location").0, 401);

    // The printed address: swapped for a cookie and the address without the token.
    let (code, location, _) = get(&url, &[], "location");
    assert_eq!((code, location.as_deref()), (303, Some("/")));
    let (_, cookie, _) = get(&url, &[], "set-cookie");
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let (code, _, page) = get(&serve.url("/"), &[("cookie", &pair)], "x");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("lifeboat-state"), "{page}");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get(&serve.url("/"), &[("authorization", &bearer)], "x").0,
        200
    );

    // The only target had no backup: it gets its first one now, not at the top of the hour.
    wait_for(60, "the backup at start", || {
        home.state_strings(
            "SELECT state FROM jobs WHERE target = 'lifeboat-state' AND kind = 'backup'",
        ) == ["succeeded"]
    });
    assert!(
        serve
            .log_text()
            .contains("backup_on_start: no backup yet of lifeboat-state")
    );

    // The token appears once in the log (the address), never in the audit of the views.
    assert_eq!(serve.log_text().matches(&token).count(), 1);
    let audit = home.state_strings("SELECT coalesce(detail, '') FROM audit");
    assert!(audit.iter().all(|d| !d.contains(&token)), "{audit:?}");
    serve.stop();

    // Kept across starts; the state now has a backup, so none is taken at start.
    let serve = Serve::start(&home);
    wait_for(20, "the status page address", || {
        serve.log_text().contains("status page: ")
    });
    assert_eq!(printed_url(&serve).1, token);
    assert!(!stop_and_log(serve).contains("backup_on_start"));
}

#[test]
fn only_targets_without_any_backup_are_backed_up_at_start() {
    let home = Home::with_config(
        &ConfigBuilder::new()
            .sqlite_target("fresh", "../data/fresh.db")
            .with("backup_on_start = true")
            .sqlite_target("old", "../data/old.db")
            .with("backup_on_start = true")
            .sqlite_target("quiet", "../data/quiet.db"),
    );
    for db in ["fresh", "old", "quiet"] {
        drop(make_app_db(&home.path(&format!("data/{db}.db")), 5));
    }
    home.json(&["backup", "old"]);
    let serve = Serve::start(&home);
    let line = "backup_on_start: no backup yet of ";
    wait_for(30, "the backups at start", || {
        serve.log_text().contains(line)
    });
    // One line names every target chosen, before any of them starts.
    let log = serve.log_text();
    let chosen = log.lines().find_map(|l| l.split(line).nth(1)).unwrap();
    assert_eq!(chosen, "fresh; backing up now");
    wait_for(60, "fresh's first backup", || {
        home.state_strings("SELECT state FROM jobs WHERE target = 'fresh' AND kind = 'backup'")
            == ["succeeded"]
    });
    let jobs = |t: &str| {
        home.state_strings(&format!(
            "SELECT state FROM jobs WHERE target = '{t}' AND kind = 'backup'"
        ))
    };
    assert_eq!(jobs("old").len(), 1, "old had a backup already");
    assert!(jobs("quiet").is_empty(), "quiet does not ask for one");
    serve.stop();
}

#[test]
fn a_config_with_its_own_web_logins_keeps_them_and_makes_no_token() {
    // `echo -n hunter2 | argon2 somesaltsomesalt -id -e` (Debian's argon2 tool).
    let hash = "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$bEfk4vKa91KZa+YyjM36bH00sw8j6SozTR0YtRaSljg";
    let home = Home::with_config(&ConfigBuilder::new().section(&format!(
        "[web]\nenabled = true\n[web.users]\nalice = \"{hash}\"\n"
    )));
    let serve = Serve::start(&home);
    let (code, challenge, _) = get(&serve.url("/?token=anything"), &[], "www-authenticate");
    assert_eq!(code, 401);
    assert!(challenge.unwrap().starts_with("Basic"));
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:hunter2")
    );
    assert_eq!(
        get(&serve.url("/"), &[("authorization", &basic)], "x").0,
        200
    );
    assert!(!stop_and_log(serve).contains("status page: "));
    assert!(!home.path("var/web-token").exists());

    // No [web] at all: no page, no token.
    home.write_config("");
    let serve = Serve::start(&home);
    assert_eq!(get(&serve.url("/"), &[], "x").0, 404);
    assert!(!stop_and_log(serve).contains("status page: "));
    assert!(!home.path("var/web-token").exists());
}

/// Stop `serve` and return its whole log: it ends with "stopped", so nothing printed
/// before is still on its way.
fn stop_and_log(serve: Serve) -> String {
    let log = serve.log.clone();
    serve.stop();
    wait_for(20, "serve's last log line", || {
        log.lock().unwrap().iter().any(|l| l.contains("stopped"))
    });
    log.lock().unwrap().join("\n")
}
