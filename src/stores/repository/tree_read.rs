//! Reading a native tree back as the tar stream every restore, verify and drill takes:
//! the tree is walked first (only towards the paths asked for, for a partial restore),
//! and every node's name, kind, size and link is checked against the backup's manifest
//! before a byte is handed on. Names are data from the store: one that is not a single
//! path component (empty, `.`, `..`, with a `/` or a NUL) fails the read at its first
//! byte (an `InvalidData` error, as damage is), so nothing of it is written. Each
//! file's content is then dumped (rustic_core checks every chunk's MAC) and its SHA-256
//! compared with the manifest's as it passes; a mismatch is an `InvalidData` error.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use rustic_core::repofile::{Node, NodeType, SnapshotFile};
use rustic_core::{IndexedFullStatus, Repository};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::node::mode_from_go;
use super::reader::{ChannelWriter, PIECES_WAITING, SnapshotReader, dump_once};
use crate::stores::StoreError;
use crate::stores::manifest::{FileEntry, Manifest, at_or_under};

type Repo = Repository<IndexedFullStatus>;

/// The tree of `snap` (whose published manifest is `m`) as a tar stream; only the entries
/// at or under `wanted` and the directories above them when given.
///
/// The tree is walked twice: once here, checking every node before a byte goes out, and
/// again while the stream is written. Nodes are never all held at once, so memory stays
/// the manifest's entries plus one directory per level, however many files the tree has.
pub fn open(
    describe: String,
    repo: Repo,
    snap: &SnapshotFile,
    m: Manifest,
    wanted: Option<&[String]>,
) -> Result<SnapshotReader, StoreError> {
    let fail = |why: String| StoreError::Other(format!("{describe}: snapshot {}: {why}", snap.id));
    let root = snap
        .paths
        .iter()
        .next()
        .map(PathBuf::from)
        .ok_or_else(|| fail("it names no path".into()))?;
    let root_node = repo
        .node_from_path(snap.tree, &root)
        .map_err(|e| fail(super::one_line(&e)))?;
    let subtree = root_node
        .subtree
        .ok_or_else(|| fail(format!("{} is not a directory", root.display())))?;
    let listed: HashMap<String, FileEntry> = m
        .directory
        .map(|d| d.entries)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let mut seen = 0usize;
    let mut checked = walk(&repo, subtree, "", wanted, &listed, &mut |_, _, _| {
        seen += 1;
        Ok(())
    });
    if checked.is_ok() && wanted.is_none() && seen != listed.len() {
        checked = Err(format!(
            "the tree holds {seen} entries, the manifest lists {}",
            listed.len()
        ));
    }
    let (send, pieces) = sync_channel(PIECES_WAITING);
    if let Err(why) = checked {
        // Damaged or crafted content: the reader fails at its first byte, as a flipped
        // byte would make it fail later, so verify reports it and a restore writes nothing.
        let _ = send.send(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{describe}: snapshot {}: {why}", snap.id),
        )));
        return Ok(SnapshotReader::new(pieces));
    }
    let wanted = wanted.map(<[String]>::to_vec);
    std::thread::Builder::new()
        .name("lifeboat-tree".into())
        .spawn(move || {
            let mut out = ChannelWriter(send.clone());
            let mut tar = TarOut::new(&repo, &mut out);
            let written = walk(
                &repo,
                subtree,
                "",
                wanted.as_deref(),
                &listed,
                &mut |rel, node, entry| tar.entry(rel, node, entry),
            )
            .and_then(|()| tar.finish());
            if let Err(e) = written {
                let _ = send.send(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{describe}: {e}"),
                )));
            }
        })
        .map_err(|e| StoreError::Other(format!("starting to read a snapshot: {e}")))?;
    Ok(SnapshotReader::new(pieces))
}

/// A node's name as a single path component, or why it is refused.
fn component(name: &OsStr) -> Result<&str, String> {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || bytes == b"."
        || bytes == b".."
        || bytes.contains(&b'/')
        || bytes.contains(&0)
    {
        return Err(format!(
            "the tree holds an entry named {:?}, which is not a plain name: refused, nothing was \
             written",
            name.to_string_lossy()
        ));
    }
    name.to_str()
        .ok_or_else(|| format!("the tree holds a name that is not UTF-8: {name:?}"))
}

/// What the walk hands on: a node, its path under the root and its manifest entry.
type Visit<'a> = dyn FnMut(&str, &Node, &FileEntry) -> Result<(), String> + 'a;

/// The nodes under `tree` handed to `visit` in tar order (each directory before what it
/// holds), every one checked against the manifest first; into a directory only when it
/// may hold something asked.
fn walk(
    repo: &Repo,
    tree: rustic_core::TreeId,
    prefix: &str,
    wanted: Option<&[String]>,
    listed: &HashMap<String, FileEntry>,
    visit: &mut Visit<'_>,
) -> Result<(), String> {
    let tree = repo
        .get_tree(&tree)
        .map_err(|e| format!("reading a tree: {}", super::one_line(&e)))?;
    for node in tree.nodes {
        let name = node.name();
        let name = component(&name)?;
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let asked = wanted.is_none_or(|w| w.iter().any(|p| at_or_under(&rel, p)));
        let above_asked = wanted.is_some_and(|w| w.iter().any(|p| at_or_under(p, &rel)));
        if !asked && !above_asked {
            continue;
        }
        let entry = listed
            .get(&rel)
            .ok_or_else(|| format!("the tree holds {rel}, which the manifest does not list"))?;
        let kind = match &node.node_type {
            NodeType::Dir => "dir",
            NodeType::File => "file",
            NodeType::Symlink { .. } => "symlink",
            other => return Err(format!("the tree holds {rel}, an unsupported {other}")),
        };
        let same = entry.kind == kind
            && (kind != "file" || entry.size == Some(node.meta.size))
            && (kind != "symlink"
                || entry.link.as_deref() == Some(&*node.node_type.to_link().to_string_lossy()));
        if !same {
            return Err(format!("{rel} in the tree differs from the manifest"));
        }
        visit(&rel, &node, entry)?;
        if kind == "dir" {
            let subtree = node
                .subtree
                .ok_or_else(|| format!("directory {rel} has no tree"))?;
            walk(
                repo,
                subtree,
                &rel,
                if asked { None } else { wanted },
                listed,
                visit,
            )?;
        }
    }
    Ok(())
}

/// The walked nodes as a tar stream, each file's content checked against its SHA-256.
struct TarOut<'a> {
    repo: &'a Repo,
    out: &'a mut ChannelWriter,
    /// Headers (with the tar crate's long-name entries) are made here, then sent.
    headers: tar::Builder<Vec<u8>>,
}

impl<'a> TarOut<'a> {
    fn new(repo: &'a Repo, out: &'a mut ChannelWriter) -> Self {
        TarOut {
            repo,
            out,
            headers: tar::Builder::new(Vec::new()),
        }
    }

    fn entry(&mut self, rel: &str, node: &Node, entry: &FileEntry) -> Result<(), String> {
        let failed = |e: io::Error| format!("writing the stream: {e}");
        let mut header = Header::new_gnu();
        header.set_mode(mode_from_go(node.meta.mode.unwrap_or(0o644)));
        header.set_uid(node.meta.uid.unwrap_or(0).into());
        header.set_gid(node.meta.gid.unwrap_or(0).into());
        header.set_mtime(node.meta.mtime.map_or(0, |t| t.as_second().max(0) as u64));
        let headers = &mut self.headers;
        match &node.node_type {
            NodeType::Dir => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                headers
                    .append_data(&mut header, rel, io::empty())
                    .map_err(failed)?;
            }
            NodeType::Symlink { .. } => {
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                headers
                    .append_link(&mut header, rel, node.node_type.to_link())
                    .map_err(failed)?;
            }
            _ => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.meta.size);
                // The body follows below: the header goes out alone.
                headers
                    .append_data(&mut header, rel, io::empty())
                    .map_err(failed)?;
            }
        }
        self.out
            .write_all(&std::mem::take(headers.get_mut()))
            .map_err(failed)?;
        if node.node_type != NodeType::File {
            return Ok(());
        }
        let mut body = Hashing {
            out: &mut *self.out,
            hasher: Sha256::new(),
            bytes: 0,
        };
        dump_once(self.repo, node, &mut body)
            .map_err(|e| format!("reading {rel}: {}", super::one_line(&e)))?;
        let (bytes, sha) = (body.bytes, hex::encode(body.hasher.finalize()));
        if bytes != node.meta.size || entry.sha256.as_deref() != Some(sha.as_str()) {
            return Err(format!(
                "{rel}: content differs from the manifest (SHA-256 mismatch)"
            ));
        }
        let tail = (512 - bytes % 512) % 512;
        self.out
            .write_all(&[0u8; 512][..tail as usize])
            .map_err(failed)
    }

    /// The end-of-archive blocks.
    fn finish(self) -> Result<(), String> {
        self.out
            .write_all(&[0u8; 1024])
            .map_err(|e| format!("writing the stream: {e}"))
    }
}

/// The dump's output on its way out, hashed.
struct Hashing<'a> {
    out: &'a mut ChannelWriter,
    hasher: Sha256,
    bytes: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write_all(data)?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
