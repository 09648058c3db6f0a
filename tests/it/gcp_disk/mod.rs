//! gcp-disk targets end to end: the real binary and the real Compute Engine client
//! against a local fake of the Compute REST API (its paths, bodies, int64-as-string
//! fields and long-running operations). The fake answers only the requests it expects
//! and records every call, so the tests also check which calls lifeboat makes.

mod drills;
mod fake;
mod snapshots;

use serde_json::Value;

use crate::common::*;
use fake::FakeCompute;

const PROJECT: &str = "acme-analytics";
const ZONE: &str = "europe-north1-a";
const BASE: &str = "https://www.googleapis.com/compute/v1";

/// Targets data-disk and home-disk; with `broken`, also one whose disk does not exist
/// and one in a project the credentials may not use.
fn gcp_home(fake: &FakeCompute, broken: bool) -> Home {
    gcp_home_with(fake, broken, "retention = { last = 2 }")
}

/// As `gcp_home`, with `data_disk` as the rest of data-disk's config.
fn gcp_home_with(fake: &FakeCompute, broken: bool, data_disk: &str) -> Home {
    Home::with_config(&gcp_config(fake, broken, data_disk))
}

/// The config of `gcp_home_with`, to add to.
fn gcp_config(fake: &FakeCompute, broken: bool, data_disk: &str) -> ConfigBuilder {
    let target = |config: ConfigBuilder, name: &str, project: &str, disk: &str| {
        config.target(
            name,
            "gcp-disk",
            &format!(
                "project = \"{project}\"\nzone = \"{ZONE}\"\ndisk = \"{disk}\"\nendpoint = \"{}\"\ncredentials = \"anonymous\"\npoll_interval = \"20ms\"",
                fake.url
            ),
        )
    };
    let mut config =
        target(ConfigBuilder::new(), "data-disk", PROJECT, "data-disk").with(data_disk);
    config = target(config, "home-disk", PROJECT, "home-disk");
    if broken {
        config = target(config, "gone-disk", PROJECT, "no-such-disk");
        config = target(config, "locked", "locked-project", "data-disk");
    }
    config
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
