//! Secrets out of hook output: every secret value of the loaded config, and the values of
//! lifeboat's own environment variables named like credentials (AWS keys, tokens,
//! passwords), are replaced by `***` in what lifeboat keeps or posts.

/// Values shorter than this are not masked: replacing every "a" in an output hides the
/// output, not a secret (and config secrets that short are refused nowhere, but are no
/// secret worth the name either).
const MIN_MASKED: usize = 4;

/// Environment variable names whose values lifeboat treats as secrets.
const SECRET_NAME_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "ACCESS_KEY",
    "API_KEY",
    "CREDENTIAL",
];

#[derive(Debug, Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    /// The secrets of the configs this process loaded and of its environment.
    pub fn from_config() -> Masker {
        let mut values = crate::config::known_secret_values();
        for (name, value) in std::env::vars() {
            let upper = name.to_ascii_uppercase();
            if SECRET_NAME_PARTS.iter().any(|p| upper.contains(p)) {
                values.push(value);
            }
        }
        Masker::of(values)
    }

    pub fn of(mut values: Vec<String>) -> Masker {
        values.retain(|v| v.len() >= MIN_MASKED);
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker { values }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_longest_first_and_tiny_values_left() {
        let m = Masker::of(vec!["abc".into(), "s3cr3t".into(), "s3cr3t-longer".into()]);
        assert_eq!(
            m.mask("token=s3cr3t-longer and s3cr3t, abc"),
            "token=*** and ***, abc"
        );
    }
}
