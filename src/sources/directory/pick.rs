//! A partial restore's content: the backup's tar stream narrowed to the entries at or
//! under the paths asked for (and the directories above them, for their modes), every
//! name and link checked as a full extraction checks it and every file's SHA-256 against
//! the manifest, reading no further than the last entry wanted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use tar::EntryType;

use super::{safe_link, safe_relative};
use crate::error::{Error, Result};
use crate::pipe::HashReader;
use crate::progress::JobContext;
use crate::sources::{Paths, Picked};
use crate::stores::manifest::{FileEntry, Manifest, at_or_under};

/// The paths of a directory target's backups.
pub struct TreePaths;

impl Paths for TreePaths {
    fn entries<'m>(&self, m: &'m Manifest) -> Result<&'m [FileEntry]> {
        m.directory
            .as_ref()
            .map(|d| d.entries.as_slice())
            .ok_or_else(|| {
                Error::Failed(format!(
                    "backup {} of {} has no file list in its manifest",
                    m.id, m.target
                ))
            })
    }

    fn pick(
        &self,
        m: &Manifest,
        wanted: &[String],
        content: &mut dyn Read,
        into: &mut dyn Write,
        ctx: &JobContext,
    ) -> Result<Picked> {
        let entries = self.entries(m)?;
        pick(entries, wanted, content, into, ctx)
    }
}

fn pick(
    entries: &[FileEntry],
    wanted: &[String],
    content: &mut dyn Read,
    into: &mut dyn Write,
    ctx: &JobContext,
) -> Result<Picked> {
    let mut expected: BTreeMap<&str, &FileEntry> = entries
        .iter()
        .filter(|e| wanted.iter().any(|w| at_or_under(&e.path, w)))
        .map(|e| (e.path.as_str(), e))
        .collect();
    let above: BTreeSet<String> = wanted
        .iter()
        .flat_map(|w| {
            let parts: Vec<&str> = w.split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();
    let read_err = |e| Error::io("reading the backup", e);
    let write_err = |e| Error::io("passing on the restored paths", e);
    let mut builder = tar::Builder::new(into);
    let mut picked = Picked::default();
    let mut archive = tar::Archive::new(content);
    for entry in archive.entries().map_err(read_err)? {
        if expected.is_empty() {
            break; // everything asked for has been seen: the rest need not be read
        }
        ctx.cancel.check().map_err(|e| Error::io("restoring", e))?;
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let rel = safe_relative(&raw)?;
        let name = rel.to_string_lossy().into_owned();
        let kind = entry.header().entry_type();
        let mut header = entry.header().clone();
        let Some(e) = expected.remove(name.as_str()) else {
            if kind == EntryType::Directory && above.contains(&name) {
                builder
                    .append_data(&mut header, &rel, io::empty())
                    .map_err(write_err)?;
            }
            continue;
        };
        match kind {
            EntryType::Regular if e.kind == "file" => {
                let mut reader = HashReader::new(&mut entry);
                builder
                    .append_data(&mut header, &rel, &mut reader)
                    .map_err(write_err)?;
                let (bytes, sha) = reader.finish();
                if Some(&sha) != e.sha256.as_ref() {
                    return Err(Error::Failed(format!(
                        "{name}: its content in the backup differs from the manifest \
                         (SHA-256 mismatch)"
                    )));
                }
                picked.files += 1;
                picked.bytes += bytes;
            }
            EntryType::Directory if e.kind == "dir" => {
                builder
                    .append_data(&mut header, &rel, io::empty())
                    .map_err(write_err)?;
                picked.directories += 1;
            }
            EntryType::Symlink if e.kind == "symlink" => {
                let link = entry
                    .link_name()
                    .map_err(read_err)?
                    .ok_or_else(|| Error::Failed(format!("link {name} has no target")))?
                    .into_owned();
                safe_link(&rel, &link)?;
                if Some(link.to_string_lossy().as_ref()) != e.link.as_deref() {
                    return Err(Error::Failed(format!(
                        "{name}: its link target in the backup differs from the manifest"
                    )));
                }
                builder
                    .append_link(&mut header, &rel, &link)
                    .map_err(write_err)?;
                picked.symlinks += 1;
            }
            other => {
                return Err(Error::Failed(format!(
                    "{name}: the backup holds a {other:?} entry where the manifest lists a {}",
                    e.kind
                )));
            }
        }
    }
    if !expected.is_empty() {
        let missing: Vec<&str> = expected.keys().take(5).copied().collect();
        return Err(Error::Failed(format!(
            "{} paths the manifest lists are missing from the backup's content ({})",
            expected.len(),
            missing.join(", ")
        )));
    }
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(write_err)?;
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, body: &[u8]) -> FileEntry {
        use sha2::Digest;
        FileEntry {
            path: path.into(),
            kind: "file".into(),
            mode: 0o644,
            size: Some(body.len() as u64),
            sha256: Some(hex::encode(sha2::Sha256::digest(body))),
            link: None,
        }
    }

    fn dir(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: "dir".into(),
            mode: 0o755,
            size: None,
            sha256: None,
            link: None,
        }
    }

    /// A tar of `files` (path, body) with the directories `dirs`, in that order.
    fn tar_of(dirs: &[&str], files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for d in dirs {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, d, io::empty()).unwrap();
        }
        for (p, body) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            b.append_data(&mut h, p, *body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn picks_a_file_with_the_directories_above_it_and_a_folder() {
        let entries = vec![
            dir("a"),
            dir("a/b"),
            file("a/b/x.txt", b"x"),
            file("a/y.txt", b"yy"),
            dir("c"),
            file("c/z.txt", b"zzz"),
            file("top.txt", b"t"),
        ];
        let tar = tar_of(
            &["a", "a/b", "c"],
            &[
                ("a/b/x.txt", b"x"),
                ("a/y.txt", b"yy"),
                ("c/z.txt", b"zzz"),
                ("top.txt", b"t"),
            ],
        );
        let mut out = Vec::new();
        let wanted = vec!["a/b/x.txt".to_string(), "c".to_string()];
        let picked = pick(
            &entries,
            &wanted,
            &mut &tar[..],
            &mut out,
            &JobContext::silent(),
        )
        .unwrap();
        assert_eq!(
            picked,
            Picked {
                files: 2,
                directories: 1,
                symlinks: 0,
                bytes: 4
            }
        );
        assert_eq!(names(&out), ["a", "a/b", "c", "a/b/x.txt", "c/z.txt"]);
    }

    #[test]
    fn a_file_differing_from_the_manifest_is_refused() {
        let entries = vec![file("x.txt", b"original")];
        let tar = tar_of(&[], &[("x.txt", b"tampered")]);
        let e = pick(
            &entries,
            &["x.txt".into()],
            &mut &tar[..],
            &mut Vec::new(),
            &JobContext::silent(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("SHA-256 mismatch"), "{e}");
    }

    #[test]
    fn a_path_missing_from_the_content_is_an_error() {
        let entries = vec![file("x.txt", b"x"), file("y.txt", b"y")];
        let tar = tar_of(&[], &[("x.txt", b"x")]);
        let e = pick(
            &entries,
            &["y.txt".into()],
            &mut &tar[..],
            &mut Vec::new(),
            &JobContext::silent(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("missing from the backup's content"),
            "{e}"
        );
    }

    #[test]
    fn under_means_below_a_whole_name() {
        assert!(at_or_under("a/b", "a"));
        assert!(at_or_under("a", "a"));
        assert!(!at_or_under("ab", "a"));
        assert!(!at_or_under("a", "a/b"));
    }
}
