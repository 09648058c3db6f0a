//! A builder for the lifeboat config files the tests write: the server section every
//! test home has, access lists, the chat platforms pointed at the recording fakes, stores
//! and targets, rendered as TOML in the order a person would write them.

use super::Home;
use super::fakes::FakeApi;

/// A lifeboat config under construction. `new()` has the `[server]` section of every test
/// home (a free port, state in `var/`) and the local store `local` under `backups/`.
#[derive(Clone)]
pub struct ConfigBuilder {
    server: Vec<String>,
    access: Vec<String>,
    sections: Vec<String>,
    stores: Vec<String>,
    targets: Vec<String>,
}

/// `["a", "b"]` as TOML.
fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

impl ConfigBuilder {
    pub fn new() -> ConfigBuilder {
        ConfigBuilder {
            server: vec![
                "listen = \"127.0.0.1:0\"".into(),
                "state = \"../var/lifeboat.db\"".into(),
            ],
            access: Vec::new(),
            sections: Vec::new(),
            stores: vec!["[stores.local]\nkind = \"local\"\npath = \"../backups\"\n".into()],
            targets: Vec::new(),
        }
    }

    /// A further `[server]` key, written as TOML (`max_jobs = 2`).
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_string());
        self
    }

    /// `[server] runbooks = "<dir>"`.
    pub fn runbooks(self, dir: &str) -> Self {
        self.server(&format!("runbooks = \"{dir}\""))
    }

    fn access_list(mut self, key: &str, who: &[&str]) -> Self {
        self.access.push(format!("{key} = {}", list(who)));
        self
    }

    /// `[access] admins`, as `platform:user` names.
    pub fn admins(self, who: &[&str]) -> Self {
        self.access_list("admins", who)
    }

    pub fn operators(self, who: &[&str]) -> Self {
        self.access_list("operators", who)
    }

    pub fn viewers(self, who: &[&str]) -> Self {
        self.access_list("viewers", who)
    }

    /// `[access] channels`, as `platform:channel` names.
    pub fn channels(self, channels: &[&str]) -> Self {
        self.access_list("channels", channels)
    }

    /// Slack over HTTP (signed requests) with the Web API at the fake, alerts to
    /// `alert_channel` when given.
    pub fn slack(self, api: &FakeApi, alert_channel: Option<&str>) -> Self {
        let alerts = alert_channel
            .map(|c| format!("alert_channel = \"{c}\"\n"))
            .unwrap_or_default();
        self.section(&format!(
            "[slack]\nsigning_secret = \"${{SLACK_SIGNING_SECRET}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\n{alerts}api_url = \"{}/api/\"\n",
            api.base
        ))
    }

    /// Slack in Socket Mode (no signing secret) with the Web API at the fake.
    pub fn slack_socket(self, api: &FakeApi, alert_channel: &str) -> Self {
        self.section(&format!(
            "[slack]\nmode = \"socket\"\napp_token = \"${{SLACK_APP_TOKEN}}\"\nbot_token = \"${{SLACK_BOT_TOKEN}}\"\nalert_channel = \"{alert_channel}\"\napi_url = \"{}/api/\"\n",
            api.base
        ))
    }

    /// Discord over HTTP (signed interactions) with the REST API at the fake.
    pub fn discord(self, api: &FakeApi, alert_channel: Option<&str>) -> Self {
        let alerts = alert_channel
            .map(|c| format!("alert_channel = \"{c}\"\n"))
            .unwrap_or_default();
        self.section(&format!(
            "[discord]\npublic_key = \"${{DISCORD_PUBLIC_KEY}}\"\nbot_token = \"${{DISCORD_BOT_TOKEN}}\"\napplication_id = \"4242\"\n{alerts}api_url = \"{}/api/v10\"\n",
            api.base
        ))
    }

    /// Discord over the Gateway (no public key) with the REST API at the fake.
    pub fn discord_gateway(self, api: &FakeApi, alert_channel: &str) -> Self {
        self.section(&format!(
            "[discord]\nmode = \"gateway\"\nbot_token = \"${{DISCORD_BOT_TOKEN}}\"\napplication_id = \"4242\"\nalert_channel = \"{alert_channel}\"\napi_url = \"{}/api/v10\"\n",
            api.base
        ))
    }

    /// `[hooks] alertmanager_token = "${<var>}"`.
    pub fn alertmanager_token(self, var: &str) -> Self {
        self.section(&format!("[hooks]\nalertmanager_token = \"${{{var}}}\"\n"))
    }

    /// Any other section, as TOML.
    pub fn section(mut self, toml: &str) -> Self {
        self.sections.push(toml.to_string());
        self
    }

    /// A local store `name` at `path` (relative to the config directory).
    pub fn local_store(mut self, name: &str, path: &str) -> Self {
        self.stores.push(format!(
            "[stores.{name}]\nkind = \"local\"\npath = \"{path}\"\n"
        ));
        self
    }

    /// A sqlite target `name` of the database at `path`, into the store `local`.
    pub fn sqlite_target(self, name: &str, path: &str) -> Self {
        self.target(
            name,
            "sqlite",
            &format!("path = \"{path}\"\nstore = \"local\""),
        )
    }

    /// A directory target `name` of the tree at `path`, into the store `local`.
    pub fn directory_target(self, name: &str, path: &str) -> Self {
        self.target(
            name,
            "directory",
            &format!("path = \"{path}\"\nstore = \"local\""),
        )
    }

    /// An external target `name` (it reports to `/hooks/ping`) due on `schedule`, with
    /// the bearer token in `${<token_var>}`.
    pub fn external_target(self, name: &str, schedule: &str, token_var: &str) -> Self {
        self.target(
            name,
            "external",
            &format!("schedule = \"{schedule}\"\ntoken = \"${{{token_var}}}\""),
        )
    }

    /// A target of `kind` with `keys` (TOML lines); `with` adds to the newest target.
    pub fn target(mut self, name: &str, kind: &str, keys: &str) -> Self {
        self.targets
            .push(format!("[targets.{name}]\nkind = \"{kind}\"\n{keys}\n"));
        self
    }

    /// More keys (TOML lines) for the target added last, e.g. `restore_approvals = 2`.
    pub fn with(mut self, keys: &str) -> Self {
        let last = self.targets.last_mut().expect("a target to add keys to");
        last.push_str(keys);
        if !keys.ends_with('\n') {
            last.push('\n');
        }
        self
    }

    /// Targets (or anything else) written as TOML, after the others.
    pub fn raw(mut self, toml: &str) -> Self {
        self.targets.push(toml.to_string());
        self
    }

    /// The config's text.
    pub fn build(&self) -> String {
        let mut out = format!("[server]\n{}\n", self.server.join("\n"));
        if !self.access.is_empty() {
            out.push_str(&format!("\n[access]\n{}\n", self.access.join("\n")));
        }
        for part in self
            .sections
            .iter()
            .chain(&self.stores)
            .chain(&self.targets)
        {
            out.push('\n');
            out.push_str(part);
        }
        out
    }

    /// Write the config as `home`'s.
    pub fn write(&self, home: &Home) {
        std::fs::write(home.config_path(), self.build()).unwrap();
    }
}
