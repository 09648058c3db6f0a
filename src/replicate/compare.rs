//! The replayed history against a later base copy of the same generation, page for page.
//! A base copy is the database file pinned right after a complete checkpoint at a known
//! transaction, and every change to a WAL database's file comes from the log's page
//! images, so the history replayed onto the earlier base up to that transaction must be
//! the same bytes: the same length and every page equal. Page equality is the stronger
//! claim than a logical dump (it also covers free pages, the header and the layout).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Where two database files first differ, in words; `None` when they are the same bytes.
pub fn first_difference(replayed: &Path, base: &Path, page_size: u64) -> Result<Option<String>> {
    let open =
        |p: &Path| File::open(p).map_err(|e| Error::io(format!("opening {}", p.display()), e));
    let (mut a, mut b) = (open(replayed)?, open(base)?);
    let len = |f: &File, p: &Path| {
        f.metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    let (a_len, b_len) = (len(&a, replayed)?, len(&b, base)?);
    if a_len != b_len {
        return Ok(Some(format!(
            "the replayed database has {} pages, the base copy {}",
            a_len.div_ceil(page_size),
            b_len.div_ceil(page_size)
        )));
    }
    let size = usize::try_from(page_size.max(1)).unwrap_or(4096);
    let (mut pa, mut pb) = (vec![0u8; size], vec![0u8; size]);
    let mut differing = Vec::new();
    let mut page = 0u64;
    while page * page_size < a_len {
        page += 1;
        let n = usize::try_from((a_len - (page - 1) * page_size).min(page_size)).unwrap_or(size);
        a.read_exact(&mut pa[..n])
            .map_err(|e| Error::io(format!("reading {}", replayed.display()), e))?;
        b.read_exact(&mut pb[..n])
            .map_err(|e| Error::io(format!("reading {}", base.display()), e))?;
        if pa[..n] != pb[..n] {
            differing.push(page);
        }
    }
    Ok(match differing.as_slice() {
        [] => None,
        some => Some(format!(
            "{} of {page} pages differ (the first: page {}{})",
            some.len(),
            some[0],
            if some.len() > 1 {
                format!(", then {}", list(&some[1..]))
            } else {
                String::new()
            }
        )),
    })
}

fn list(pages: &[u64]) -> String {
    let shown: Vec<String> = pages.iter().take(8).map(u64::to_string).collect();
    match pages.len() > 8 {
        true => format!("{} …", shown.join(", ")),
        false => shown.join(", "),
    }
}

/// The number of pages of a database file of `page_size`.
pub fn pages(file: &Path, page_size: u64) -> u64 {
    std::fs::metadata(file).map_or(0, |m| m.len().div_ceil(page_size.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_the_same_and_a_changed_page_or_length_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let content: Vec<u8> = (0..4096u32 * 3).map(|i| (i % 251) as u8).collect();
        std::fs::write(&a, &content).unwrap();
        std::fs::write(&b, &content).unwrap();
        assert_eq!(first_difference(&a, &b, 4096).unwrap(), None);
        assert_eq!(pages(&a, 4096), 3);

        let mut changed = content.clone();
        changed[4096 * 2 + 17] ^= 1;
        std::fs::write(&b, &changed).unwrap();
        let why = first_difference(&a, &b, 4096).unwrap().unwrap();
        assert_eq!(why, "1 of 3 pages differ (the first: page 3)");

        std::fs::write(&b, &content[..4096 * 2]).unwrap();
        let why = first_difference(&a, &b, 4096).unwrap().unwrap();
        assert!(
            why.contains("3 pages") && why.contains("base copy 2"),
            "{why}"
        );
    }
}
