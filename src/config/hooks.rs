//! `[hooks]`: the bearer token Alertmanager's webhook must present to `/hooks/alertmanager`.

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    pub alertmanager_token: Option<Secret>,
}
