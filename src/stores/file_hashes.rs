//! Every file's SHA-256 in a tree backup, kept compact: a re-backup of hundreds of
//! thousands of files takes most of its hashes from the parent backup's list, and holding
//! each as a path string plus a hex string (two allocations, ~160 bytes a file) cost more
//! memory than the tree itself. Here the paths share one buffer and the hashes are bytes.

use std::collections::HashMap;

/// Files' SHA-256 by relative path, filled once and then looked up.
#[derive(Debug, Default)]
pub struct FileShas {
    /// Every path, one after the other.
    text: String,
    /// Each file: where its path is in `text`, and its hash. Sorted by path once
    /// [`seal`](FileShas::seal)ed.
    items: Vec<(u32, u32, [u8; 32])>,
}

impl FileShas {
    /// Add a file; `sha_hex` must be 64 hex digits.
    pub fn push(&mut self, path: &str, sha_hex: &str) -> Result<(), String> {
        let mut sha = [0u8; 32];
        hex::decode_to_slice(sha_hex, &mut sha)
            .map_err(|e| format!("{path}: the SHA-256 {sha_hex:?} is not 64 hex digits: {e}"))?;
        let start = u32::try_from(self.text.len())
            .map_err(|_| "more than 4 GiB of paths in one list".to_string())?;
        self.text.push_str(path);
        self.items.push((start, path.len() as u32, sha));
        Ok(())
    }

    /// Done adding: sorted for lookups (a list in tree order is nearly sorted already).
    pub fn seal(&mut self) {
        let text = &self.text;
        let path = |(start, len, _): &(u32, u32, [u8; 32])| {
            &text[*start as usize..(*start + *len) as usize]
        };
        if !self.items.is_sorted_by(|a, b| path(a) <= path(b)) {
            self.items.sort_unstable_by(|a, b| path(a).cmp(path(b)));
        }
        self.text.shrink_to_fit();
        self.items.shrink_to_fit();
    }

    fn path(&self, at: usize) -> &str {
        let (start, len, _) = self.items[at];
        &self.text[start as usize..(start + len) as usize]
    }

    /// The hash of the file at `path` (after [`seal`](FileShas::seal)).
    pub fn get(&self, path: &str) -> Option<&[u8; 32]> {
        let at = self
            .items
            .binary_search_by(|probe| {
                let (start, len, _) = *probe;
                self.text[start as usize..(start + len) as usize].cmp(path)
            })
            .ok()?;
        debug_assert_eq!(self.path(at), path);
        Some(&self.items[at].2)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What storing a tree knows of its files' hashes: the files it read, and the parent
/// backup's files it took unchanged (the ones read win).
#[derive(Debug, Default)]
pub struct FileHashes {
    pub read: HashMap<String, String>,
    pub parent: FileShas,
}

impl FileHashes {
    /// The file's SHA-256 in hex, if known.
    pub fn get(&self, rel: &str) -> Option<String> {
        match self.read.get(rel) {
            Some(sha) => Some(sha.clone()),
            None => self.parent.get(rel).map(hex::encode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_found_by_path_in_any_order_they_came() {
        let mut shas = FileShas::default();
        // Tree order puts `a/b` before `a.txt`; byte order the other way round.
        shas.push("a/b", &"11".repeat(32)).unwrap();
        shas.push("a.txt", &"22".repeat(32)).unwrap();
        shas.push("z", &"33".repeat(32)).unwrap();
        assert!(shas.push("bad", "xyz").is_err());
        shas.seal();
        assert_eq!(shas.len(), 3);
        assert_eq!(shas.get("a/b"), Some(&[0x11; 32]));
        assert_eq!(shas.get("a.txt"), Some(&[0x22; 32]));
        assert_eq!(shas.get("z"), Some(&[0x33; 32]));
        assert_eq!(shas.get("a"), None);
        let hashes = FileHashes {
            read: HashMap::from([("z".to_string(), "44".repeat(32))]),
            parent: shas,
        };
        assert_eq!(hashes.get("z"), Some("44".repeat(32)));
        assert_eq!(hashes.get("a.txt"), Some("22".repeat(32)));
        assert_eq!(hashes.get("nope"), None);
    }
}
