//! POSIX shell quoting for the remote commands lifeboat builds: every value that comes
//! from the config (paths, globs, SQL) reaches the remote shell as one literal word.

/// Quote `word` so a POSIX shell reads it back as exactly these bytes, as one word.
///
/// Single quotes keep everything literal except the single quote itself, which is
/// written as `'\''` (close, an escaped quote, reopen). Words made only of characters no
/// shell treats specially are left bare so logged commands stay readable.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        return word.to_string();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quote every word and join them with spaces: a command line for a POSIX shell.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What `sh` makes of a quoted word: printed back, each ended by a NUL.
    fn through_sh(words: &[&str]) -> Vec<String> {
        let script = format!("for a in {}; do printf '%s\\0' \"$a\"; done", join(words));
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{script}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut words: Vec<String> = text.split('\0').map(String::from).collect();
        words.pop(); // after the last terminator
        words
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(quote("/srv/app/app.db"), "/srv/app/app.db");
        assert_eq!(quote("a-b_c.d"), "a-b_c.d");
    }

    #[test]
    fn special_words_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn the_shell_reads_back_exactly_the_words() {
        let words = [
            "/srv/my data/app.db",
            "it's \"quoted\"",
            "$HOME `id` $(id) ; rm -rf / & | > <",
            "tab\there",
            "new\nline",
            "*.db ?x [a]",
            "\\back\\slash",
            "'",
            "''",
            "-n",
            "ünïcödé",
        ];
        assert_eq!(through_sh(&words), words);
    }
}
