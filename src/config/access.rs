//! `[access]`: who may run what (admins, operators, viewers by chat identity) and the
//! channels lifeboat takes commands in; `auth.rs` applies these lists.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub operators: Vec<String>,
    #[serde(default)]
    pub viewers: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
}
