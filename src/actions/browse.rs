//! Browsing and comparing a tree's backups from their manifests alone (every store, no
//! content read): `ls` (one folder of a backup), `diff` (what was added, removed or
//! changed between two backups), and the paths a partial restore is asked for, checked
//! and counted.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::actions::catalog::{Selector, find};
use crate::app::App;
use crate::error::{Error, Result};
use crate::stores::manifest::{FileEntry, Manifest, at_or_under};
use crate::units::human_bytes;

/// A path as a person gave it, made a path relative to the target's root: `./` and
/// trailing or doubled `/` dropped; absolute paths, `..` and NUL refused. `None` for the
/// root itself.
pub fn relative_path(text: &str) -> Result<Option<String>> {
    let refuse = |why: &str| {
        Err(Error::Usage(format!(
            "path {text:?}: {why}; give a path relative to the target's root, as `lifeboat ls` shows it"
        )))
    };
    if text.contains('\0') {
        return refuse("a path cannot hold a NUL byte");
    }
    if text.starts_with('/') {
        return refuse("absolute paths are not allowed");
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return refuse("`..` is not allowed"),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// "1 file", "3 files".
pub(crate) fn files(n: u64) -> String {
    if n == 1 {
        "1 file".into()
    } else {
        format!("{n} files")
    }
}

/// The entries of `m`, through the target's source (a refusal for kinds without paths).
fn entries_of<'m>(app: &App, target: &str, m: &'m Manifest) -> Result<&'m [FileEntry]> {
    let source = crate::actions::kind::source(app, target)?;
    let paths = source.paths().ok_or_else(|| source.no_paths())?;
    paths.entries(m)
}

/// Refuse early, before any backup is looked up, a target whose kind has no paths.
pub fn refuse_without_paths(app: &App, target: &str) -> Result<()> {
    let source = crate::actions::kind::source(app, target)?;
    match source.paths() {
        Some(_) => Ok(()),
        None => Err(source.no_paths()),
    }
}

/// The refusal of a path a backup does not hold.
fn not_in_backup(target: &str, m: &Manifest, path: &str) -> Error {
    Error::Usage(format!(
        "{path:?} is not in backup {} of {target}; `lifeboat ls {target} --backup {}` shows what it holds",
        m.id, m.id
    ))
}

/// One asked-for path of a partial restore, with what it holds.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct AskedPath {
    pub path: String,
    /// file | dir | symlink
    #[serde(rename = "type")]
    pub kind: String,
    /// Files at or under it, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

/// Check the paths asked of backup `m` (each must be in it) and count what each holds.
/// A path under another asked for adds nothing and is dropped.
pub fn asked_paths(
    app: &App,
    target: &str,
    m: &Manifest,
    paths: &[String],
) -> Result<Vec<AskedPath>> {
    let entries = entries_of(app, target, m)?;
    let by_path: BTreeMap<&str, &FileEntry> =
        entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut asked: Vec<String> = Vec::new();
    for text in paths {
        let Some(p) = relative_path(text)? else {
            return Err(Error::Usage(format!(
                "path {text:?} names the whole tree; restore all of it with `lifeboat restore {target} --to <dir>`"
            )));
        };
        if !by_path.contains_key(p.as_str()) {
            return Err(not_in_backup(target, m, &p));
        }
        asked.push(p);
    }
    asked.sort();
    asked.dedup();
    let covered = |p: &String| asked.iter().any(|q| q != p && at_or_under(p, q));
    let kept: Vec<String> = asked.iter().filter(|p| !covered(p)).cloned().collect();
    Ok(kept
        .into_iter()
        .map(|p| {
            let (files, bytes) = entries
                .iter()
                .filter(|e| e.kind == "file" && at_or_under(&e.path, &p))
                .fold((0, 0), |(n, b), e| (n + 1, b + e.size.unwrap_or(0)));
            AskedPath {
                kind: by_path[p.as_str()].kind.clone(),
                path: p,
                files,
                bytes,
            }
        })
        .collect())
}

/// One line of a listing: a file, a link, or a folder with what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: u32,
    /// A file's size; a folder's: the bytes of every file under it.
    pub size: u64,
    /// A folder: how many files are under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What one folder (or one file) of a backup holds.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub target: String,
    pub backup: String,
    pub created_at: String,
    /// The folder listed, relative to the root ("" for the root).
    pub path: String,
    pub entries: Vec<Listed>,
}

/// `ls`: the entries directly in `path` (the root when `None`) of the selected backup.
pub fn ls(app: &App, target: &str, path: Option<&str>, selector: &Selector) -> Result<Listing> {
    refuse_without_paths(app, target)?;
    let path = match path {
        Some(p) => relative_path(p)?,
        None => None,
    };
    let m = find(app, target, selector)?;
    let entries = entries_of(app, target, &m)?;
    let listed = match &path {
        None => children(entries, None),
        Some(p) => match entries.iter().find(|e| &e.path == p) {
            None => return Err(not_in_backup(target, &m, p)),
            Some(e) if e.kind == "dir" => children(entries, Some(p)),
            Some(e) => vec![listed(e)],
        },
    };
    Ok(Listing {
        target: target.to_string(),
        backup: m.id.clone(),
        created_at: m.created_at.clone(),
        path: path.unwrap_or_default(),
        entries: listed,
    })
}

fn listed(e: &FileEntry) -> Listed {
    Listed {
        path: e.path.clone(),
        kind: e.kind.clone(),
        mode: e.mode,
        size: e.size.unwrap_or(0),
        files: (e.kind == "dir").then_some(0),
        link: e.link.clone(),
    }
}

/// The entries directly in `dir`, folders with the files and bytes under them.
fn children(entries: &[FileEntry], dir: Option<&str>) -> Vec<Listed> {
    let mut out: BTreeMap<&str, Listed> = BTreeMap::new();
    let below = |path: &'_ str| -> Option<String> {
        match dir {
            None => Some(path.to_string()),
            Some(d) => path
                .strip_prefix(d)
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string),
        }
    };
    for e in entries {
        if let Some(rest) = below(&e.path)
            && !rest.contains('/')
        {
            out.insert(e.path.as_str(), listed(e));
        }
    }
    for e in entries.iter().filter(|e| e.kind == "file") {
        let Some(rest) = below(&e.path) else { continue };
        let Some((first, _)) = rest.split_once('/') else {
            continue;
        };
        let child = match dir {
            None => first.to_string(),
            Some(d) => format!("{d}/{first}"),
        };
        if let Some(l) = out.get_mut(child.as_str()) {
            l.size += e.size.unwrap_or(0);
            *l.files.get_or_insert(0) += 1;
        }
    }
    out.into_values().collect()
}

impl Listing {
    /// The listing in words, at most `limit` entries, then how many more there are and
    /// where to see them all.
    pub fn text(&self, limit: Option<usize>) -> String {
        // Paths are relative to the target's root, as `--path` and `ls <path>` take them.
        let shown = if self.path.is_empty() {
            "the top folder".to_string()
        } else {
            format!("{}/", self.path)
        };
        let mut out = format!(
            "{}: {} in backup {} (taken {}): {}\n",
            self.target,
            shown,
            self.backup,
            self.created_at,
            crate::units::count(self.entries.len() as u64, "entry", Some("entries"))
        );
        let limit = limit.unwrap_or(usize::MAX);
        for l in self.entries.iter().take(limit) {
            let what = match (l.kind.as_str(), &l.link, l.files) {
                ("symlink", Some(link), _) => format!("-> {link}"),
                ("dir", _, Some(n)) => format!("{} in {}", human_bytes(l.size), files(n)),
                _ => human_bytes(l.size),
            };
            let slash = if l.kind == "dir" { "/" } else { "" };
            out.push_str(&format!(
                "  {:<7} {:04o}  {}{slash}  {what}\n",
                l.kind, l.mode, l.path
            ));
        }
        if self.entries.len() > limit {
            let path = if self.path.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.path)
            };
            out.push_str(&format!(
                "  … and {} more; use `lifeboat ls {}{path} --backup {}`\n",
                self.entries.len() - limit,
                self.target,
                self.backup
            ));
        }
        out
    }
}

/// One path in a diff, with its size in each backup where it exists.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
    /// For a changed path: what changed (content, type, mode, link).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<&'static str>,
    /// For a changed type, mode or link: what it was and what it became, by what
    /// changed ("mode": ["0644", "0755"]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<&'static str, [String; 2]>,
}

/// What changed between two backups of a target, from their manifests.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub target: String,
    pub from: String,
    pub to: String,
    pub added: Vec<Difference>,
    pub removed: Vec<Difference>,
    pub changed: Vec<Difference>,
}

/// `diff`: what is in `to` and not in `from`, the reverse, and what differs.
pub fn diff(app: &App, target: &str, from: &Selector, to: &Selector) -> Result<Diff> {
    refuse_without_paths(app, target)?;
    let (a, b) = (find(app, target, from)?, find(app, target, to)?);
    let index = |m: &Manifest| -> Result<BTreeMap<String, FileEntry>> {
        Ok(entries_of(app, target, m)?
            .iter()
            .map(|e| (e.path.clone(), e.clone()))
            .collect())
    };
    let (before, after) = (index(&a)?, index(&b)?);
    Ok(compare(target, &a.id, &b.id, &before, &after))
}

fn compare(
    target: &str,
    from: &str,
    to: &str,
    before: &BTreeMap<String, FileEntry>,
    after: &BTreeMap<String, FileEntry>,
) -> Diff {
    let size = |e: &FileEntry| (e.kind == "file").then(|| e.size.unwrap_or(0));
    let mut diff = Diff {
        target: target.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    for (path, new) in after {
        let Some(old) = before.get(path) else {
            diff.added.push(Difference {
                path: path.clone(),
                kind: new.kind.clone(),
                size_before: None,
                size_after: size(new),
                what: Vec::new(),
                values: BTreeMap::new(),
            });
            continue;
        };
        let link = |e: &FileEntry| e.link.clone().unwrap_or_else(|| "(none)".into());
        let content = old.kind == new.kind && (old.sha256 != new.sha256 || old.size != new.size);
        let mut values = BTreeMap::new();
        for (name, was, is) in [
            ("type", old.kind.clone(), new.kind.clone()),
            (
                "mode",
                format!("{:04o}", old.mode),
                format!("{:04o}", new.mode),
            ),
            ("link", link(old), link(new)),
        ] {
            if was != is {
                values.insert(name, [was, is]);
            }
        }
        let what: Vec<&'static str> = ["type", "content", "mode", "link"]
            .into_iter()
            .filter(|w| values.contains_key(w) || (*w == "content" && content))
            .collect();
        if !what.is_empty() {
            diff.changed.push(Difference {
                path: path.clone(),
                kind: new.kind.clone(),
                size_before: size(old),
                size_after: size(new),
                what,
                values,
            });
        }
    }
    for (path, old) in before {
        if !after.contains_key(path) {
            diff.removed.push(Difference {
                path: path.clone(),
                kind: old.kind.clone(),
                size_before: size(old),
                size_after: None,
                what: Vec::new(),
                values: BTreeMap::new(),
            });
        }
    }
    diff
}

impl Diff {
    /// The diff in words: one line per path, `+` added, `-` removed, `~` changed.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: from backup {} to {}: {} added, {} removed, {} changed\n",
            self.target,
            self.from,
            self.to,
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        );
        let size = |s: Option<u64>| s.map(human_bytes).unwrap_or_else(|| "-".into());
        for d in &self.added {
            out.push_str(&format!("+ {}  {}\n", d.path, size(d.size_after)));
        }
        for d in &self.removed {
            out.push_str(&format!("- {}  {}\n", d.path, size(d.size_before)));
        }
        for d in &self.changed {
            let what: Vec<String> = d
                .what
                .iter()
                .map(|w| match d.values.get(w) {
                    Some([was, is]) => format!("{w} {was} -> {is}"),
                    None => w.to_string(),
                })
                .collect();
            out.push_str(&format!(
                "~ {}  {} -> {} ({})\n",
                d.path,
                size(d.size_before),
                size(d.size_after),
                what.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: &str, size: u64, sha: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: kind.into(),
            mode: 0o644,
            size: (kind == "file").then_some(size),
            sha256: (kind == "file").then(|| sha.to_string()),
            link: None,
        }
    }

    #[test]
    fn paths_are_made_relative_or_refused() {
        assert_eq!(relative_path("a/b").unwrap().as_deref(), Some("a/b"));
        assert_eq!(relative_path("./a//b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(relative_path("").unwrap(), None);
        assert_eq!(relative_path(".").unwrap(), None);
        for bad in ["/etc/passwd", "a/../../x", "..", "a\0b"] {
            assert!(
                matches!(relative_path(bad), Err(Error::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn children_count_the_files_under_each_folder() {
        let entries = vec![
            e("a", "dir", 0, ""),
            e("a/b", "dir", 0, ""),
            e("a/b/x", "file", 10, "1"),
            e("a/y", "file", 5, "2"),
            e("top", "file", 1, "3"),
        ];
        let root = children(&entries, None);
        let shown: Vec<(&str, u64, Option<u64>)> = root
            .iter()
            .map(|l| (l.path.as_str(), l.size, l.files))
            .collect();
        assert_eq!(shown, [("a", 15, Some(2)), ("top", 1, None)]);
        let a = children(&entries, Some("a"));
        let shown: Vec<(&str, u64)> = a.iter().map(|l| (l.path.as_str(), l.size)).collect();
        assert_eq!(shown, [("a/b", 10), ("a/y", 5)]);
    }

    #[test]
    fn compare_names_added_removed_and_changed_with_sizes() {
        let map = |v: Vec<FileEntry>| -> BTreeMap<String, FileEntry> {
            v.into_iter().map(|e| (e.path.clone(), e)).collect()
        };
        let before = map(vec![
            e("same", "file", 3, "s"),
            e("gone", "file", 7, "g"),
            e("edited", "file", 4, "old"),
        ]);
        let mut chmod = e("same", "file", 3, "s");
        chmod.mode = 0o600;
        let after = map(vec![
            chmod,
            e("new", "file", 9, "n"),
            e("edited", "file", 6, "new"),
        ]);
        let d = compare("t", "1", "2", &before, &after);
        assert_eq!(d.added.len(), 1);
        assert_eq!(
            (d.added[0].path.as_str(), d.added[0].size_after),
            ("new", Some(9))
        );
        assert_eq!(
            (d.removed[0].path.as_str(), d.removed[0].size_before),
            ("gone", Some(7))
        );
        let changed: Vec<String> = d
            .changed
            .iter()
            .map(|c| {
                format!(
                    "{} {:?} {:?} {:?}",
                    c.path, c.size_before, c.size_after, c.what
                )
            })
            .collect();
        assert_eq!(
            changed,
            [
                "edited Some(4) Some(6) [\"content\"]",
                "same Some(3) Some(3) [\"mode\"]"
            ]
        );
        let text = d.text();
        assert!(
            text.contains("~ same  3 B -> 3 B (mode 0644 -> 0600)"),
            "{text}"
        );
        assert!(text.contains("(content)"), "{text}");
        let json = serde_json::to_value(&d.changed[1]).unwrap();
        assert_eq!(json["values"]["mode"], serde_json::json!(["0644", "0600"]));
        assert!(
            serde_json::to_value(&d.changed[0])
                .unwrap()
                .get("values")
                .is_none()
        );
    }

    #[test]
    fn a_link_pointed_elsewhere_or_a_file_become_a_link_names_both_values() {
        let one = |e: FileEntry| -> BTreeMap<String, FileEntry> { [(e.path.clone(), e)].into() };
        let mut link = e("cur", "symlink", 0, "");
        link.link = Some("v1".into());
        let mut moved = link.clone();
        moved.link = Some("v2".into());
        let text = compare("t", "1", "2", &one(link.clone()), &one(moved)).text();
        assert!(text.contains("(link v1 -> v2)"), "{text}");
        let text = compare("t", "1", "2", &one(e("cur", "file", 3, "s")), &one(link)).text();
        assert!(text.contains("type file -> symlink"), "{text}");
        assert!(text.contains("link (none) -> v1"), "{text}");
    }
}
