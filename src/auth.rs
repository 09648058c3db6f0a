//! Who may do what: identities (`slack:U…`, `discord:…`, `cli:<user>`), roles from the
//! config's access lists (viewer < operator < admin), and the channel allow-list.

use serde::Serialize;

use crate::config::AccessConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The highest role `identity` holds, if any. The CLI is the local operator: admin.
pub fn role_of(access: &AccessConfig, identity: &str) -> Option<Role> {
    let listed = |list: &[String]| list.iter().any(|i| i == identity);
    if identity.starts_with("cli:") || listed(&access.admins) {
        Some(Role::Admin)
    } else if listed(&access.operators) {
        Some(Role::Operator)
    } else if listed(&access.viewers) || access.viewers.iter().any(|v| v == "*") {
        Some(Role::Viewer)
    } else {
        None
    }
}

/// Whether commands are accepted from `channel` (`slack:C…`, `discord:…`).
pub fn channel_allowed(access: &AccessConfig, channel: &str) -> bool {
    access.channels.iter().any(|c| c == channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> AccessConfig {
        AccessConfig {
            admins: vec!["slack:UADMIN".into()],
            operators: vec!["slack:UOPS".into()],
            viewers: vec!["discord:42".into()],
            channels: vec!["slack:C1".into()],
        }
    }

    #[test]
    fn roles_come_from_the_lists() {
        let a = access();
        assert_eq!(role_of(&a, "slack:UADMIN"), Some(Role::Admin));
        assert_eq!(role_of(&a, "slack:UOPS"), Some(Role::Operator));
        assert_eq!(role_of(&a, "discord:42"), Some(Role::Viewer));
        assert_eq!(role_of(&a, "slack:USTRANGER"), None);
        assert_eq!(role_of(&a, "cli:root"), Some(Role::Admin));
        // The same id on another platform is another person.
        assert_eq!(role_of(&a, "discord:UADMIN"), None);
    }

    #[test]
    fn star_makes_everyone_a_viewer() {
        let mut a = access();
        a.viewers = vec!["*".into()];
        assert_eq!(role_of(&a, "slack:USTRANGER"), Some(Role::Viewer));
        assert_eq!(role_of(&a, "slack:UOPS"), Some(Role::Operator));
    }

    #[test]
    fn channels_are_an_allow_list() {
        let a = access();
        assert!(channel_allowed(&a, "slack:C1"));
        assert!(!channel_allowed(&a, "slack:C2"));
        assert!(!channel_allowed(&a, "discord:C1"));
    }
}
