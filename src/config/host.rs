//! `host = "ssh://user@host:port"`: a target's (or runbook step's) other host, parsed and
//! checked when the config loads so no part can be read as an ssh option.

/// `ssh://user@host:port`, parsed and checked so no part can be read as an ssh option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl Host {
    pub fn parse(text: &str) -> std::result::Result<Host, String> {
        let shape = "must look like ssh://user@host:port (port optional, default 22)";
        let rest = text
            .strip_prefix("ssh://")
            .ok_or_else(|| shape.to_string())?;
        let (user, hostport) = rest.split_once('@').ok_or_else(|| shape.to_string())?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| shape.to_string())?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            None => 22,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port number; {shape}"))?,
        };
        let word_ok = |s: &str, extra: &[u8]| {
            !s.is_empty()
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
        };
        if !word_ok(user, b"") {
            return Err(format!(
                "user {user:?}: letters, digits, '.', '_', '-' only; {shape}"
            ));
        }
        if !word_ok(host, b":") {
            return Err(format!(
                "host {host:?} is not a host name or address; {shape}"
            ));
        }
        Ok(Host {
            user: user.into(),
            host: host.into(),
            port,
        })
    }

    /// The name `known_hosts` files use: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_with_and_without_port() {
        let h = Host::parse("ssh://deploy@db1.internal:2222").unwrap();
        assert_eq!(
            h,
            Host {
                user: "deploy".into(),
                host: "db1.internal".into(),
                port: 2222
            }
        );
        assert_eq!(h.known_hosts_name(), "[db1.internal]:2222");
        let h = Host::parse("ssh://backup@10.0.0.5").unwrap();
        assert_eq!(h.port, 22);
        assert_eq!(h.known_hosts_name(), "10.0.0.5");
        let h = Host::parse("ssh://b@[::1]:22").unwrap();
        assert_eq!(h.host, "::1");
        assert_eq!(h.to_string(), "b@[::1]:22");
    }

    #[test]
    fn hosts_that_could_smuggle_options_are_refused() {
        for bad in [
            "db1:22",
            "ssh://db1:22",
            "ssh://-oProxyCommand=x@db1",
            "ssh://u@-oProxyCommand=x",
            "ssh://u@db1:0",
            "ssh://u@db1:99999",
            "ssh://u@db 1",
            "ssh://u@db1;id",
            "ssh://u@",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }
}
