//! The sealed object format: an object's bytes encrypted with a repository's master key
//! in restic's own way (AES-256-CTR, authenticated with Poly1305-AES; each sealed piece
//! is nonce ‖ ciphertext ‖ MAC), cut into frames so any object streams in bounded memory.
//!
//! An object is the magic `lbseal01`, then frames, each a 4-byte little-endian length and
//! that many sealed bytes. A frame's plaintext starts with what ties it to its place: the
//! object's random id (the same in every frame of one write), a digest of the object's
//! key (its name in the store), the frame's index and whether it is the last frame; then
//! up to [`FRAME`] bytes of the object. Frames are sealed one by one, so reordered,
//! dropped, duplicated or swapped-in frames, a cut-off tail, bytes after the last frame
//! and an object renamed to another key all read as damaged, as does any flipped byte
//! (the MAC). Every object has at least one frame: an empty object is one empty last
//! frame. What is not hidden: the object's name and its size (about its plaintext size).

use std::io::{self, Read, Write};

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::Aead;
use rustic_core::repofile::MasterKey;
use sha2::{Digest, Sha256};

/// What every sealed object starts with.
pub const MAGIC: &[u8; 8] = b"lbseal01";
/// Plaintext bytes of the object per frame (the last frame may hold fewer).
pub const FRAME: usize = 1 << 20;
const NONCE: usize = 16;
const MAC: usize = 16;
/// object id, key digest, frame index, last-frame flag.
const HEADER: usize = 16 + 16 + 8 + 1;
/// The smallest and largest sealed frame: what a length outside is cannot be a frame.
const SEALED_MIN: usize = NONCE + HEADER + MAC;
const SEALED_MAX: usize = SEALED_MIN + FRAME;

/// The cipher of a repository's master key: its AES key and its Poly1305 `k` and `r`,
/// the 64 bytes restic's format keys every encrypted file with.
#[derive(Clone)]
pub struct Sealing {
    cipher: Aes256CtrPoly1305Aes,
}

impl Sealing {
    pub fn new(master: &MasterKey) -> Result<Sealing, String> {
        if master.encrypt.len() != 32 || master.mac.k.len() != 16 || master.mac.r.len() != 16 {
            return Err("the repository's master key is not 32 + 16 + 16 bytes".into());
        }
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&master.encrypt);
        key[32..48].copy_from_slice(&master.mac.k);
        key[48..].copy_from_slice(&master.mac.r);
        Ok(Sealing {
            cipher: Aes256CtrPoly1305Aes::new(aes256ctr_poly1305aes::Key::from_slice(&key)),
        })
    }

    fn seal(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let nonce = random16()?;
        let sealed = self
            .cipher
            .encrypt(nonce.as_slice().into(), plain)
            .map_err(|e| io::Error::other(format!("encrypting: {e}")))?;
        let mut out = Vec::with_capacity(NONCE + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, rest) = sealed.split_at(NONCE);
        self.cipher.decrypt(nonce.into(), rest).ok()
    }
}

fn random16() -> io::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `bytes`.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        } else {
            filled += n as usize;
        }
    }
    Ok(bytes)
}

/// Which key an object was written under, as its frames carry it.
fn key_digest(key: &str) -> [u8; 16] {
    let full = Sha256::digest(key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Seals what is written into frames on `out`; [`Sealer::finish`] writes the last frame.
/// Dropped without it, what was written has no last frame and reads as cut off.
pub struct Sealer<W: Write> {
    out: W,
    sealing: Sealing,
    id: [u8; 16],
    key: [u8; 16],
    index: u64,
    /// The frame being filled: sealed once more bytes come (not last) or at the end (last).
    pending: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    pub fn new(mut out: W, sealing: Sealing, key: &str) -> io::Result<Sealer<W>> {
        out.write_all(MAGIC)?;
        Ok(Sealer {
            out,
            sealing,
            id: random16()?,
            key: key_digest(key),
            index: 0,
            pending: Vec::with_capacity(FRAME),
        })
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let mut plain = Vec::with_capacity(HEADER + self.pending.len());
        plain.extend_from_slice(&self.id);
        plain.extend_from_slice(&self.key);
        plain.extend_from_slice(&self.index.to_le_bytes());
        plain.push(u8::from(last));
        plain.extend_from_slice(&self.pending);
        let sealed = self.sealing.seal(&plain)?;
        self.out.write_all(&(sealed.len() as u32).to_le_bytes())?;
        self.out.write_all(&sealed)?;
        self.pending.clear();
        self.index += 1;
        Ok(())
    }

    /// Seal the last frame (an empty one when nothing was written) and hand `out` back.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // A full frame is sealed only once more bytes come: until then it may be the last.
        if self.pending.len() == FRAME {
            self.emit(false)?;
        }
        let n = buf.len().min(FRAME - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A frame is sealed whole; flushing what is below does not make it durable.
        self.out.flush()
    }
}

/// Reads a sealed object back, frame by frame, each checked before a byte of it is
/// handed on; anything out of place is an `InvalidData` error naming `what` as damaged.
pub struct Unsealer<R: Read> {
    from: R,
    sealing: Sealing,
    what: String,
    key: [u8; 16],
    id: Option<[u8; 16]>,
    index: u64,
    started: bool,
    ended: bool,
    plain: Vec<u8>,
    at: usize,
}

impl<R: Read> Unsealer<R> {
    /// `what` names the object in errors; `key` is the key it is read under.
    pub fn new(from: R, sealing: Sealing, key: &str, what: String) -> Unsealer<R> {
        Unsealer {
            from,
            sealing,
            what,
            key: key_digest(key),
            id: None,
            index: 0,
            started: false,
            ended: false,
            plain: Vec::new(),
            at: 0,
        }
    }

    fn damaged(&self, why: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged: {why}", self.what),
        )
    }

    /// Fill `buf` whole; `false` when the object ended before its first byte.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            match self.from.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(self.damaged(self.cut_off())),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn cut_off(&self) -> String {
        format!(
            "it is cut off in or after frame {} (no last frame)",
            self.index
        )
    }

    /// The next frame's plaintext into `plain`; `false` after the last frame.
    fn next_frame(&mut self) -> io::Result<bool> {
        if !self.started {
            let mut magic = [0u8; 8];
            if !self.fill(&mut magic)? || &magic != MAGIC {
                return Err(self.damaged("it is not a sealed object (no seal header)"));
            }
            self.started = true;
        }
        if self.ended {
            let mut more = [0u8; 1];
            if self.fill(&mut more)? {
                return Err(self.damaged("bytes follow its last frame"));
            }
            return Ok(false);
        }
        let mut len = [0u8; 4];
        if !self.fill(&mut len)? {
            return Err(self.damaged(self.cut_off()));
        }
        let len = u32::from_le_bytes(len) as usize;
        if !(SEALED_MIN..=SEALED_MAX).contains(&len) {
            return Err(self.damaged(format!(
                "frame {} says it is {len} bytes long, which no frame is",
                self.index
            )));
        }
        let mut sealed = vec![0u8; len];
        if !self.fill(&mut sealed)? {
            return Err(self.damaged(self.cut_off()));
        }
        let Some(mut plain) = self.sealing.open(&sealed) else {
            return Err(self.damaged(format!(
                "frame {} does not authenticate with the repository's key (changed bytes, or not sealed with this repository's key)",
                self.index
            )));
        };
        let (id, rest) = plain.split_at(16);
        let (key, rest) = rest.split_at(16);
        let (index, rest) = rest.split_at(8);
        let index = u64::from_le_bytes(index.try_into().expect("8 bytes"));
        let last = rest[0];
        if key != self.key {
            return Err(self.damaged(format!(
                "frame {} was sealed for another object (renamed or swapped in)",
                self.index
            )));
        }
        match self.id {
            None => self.id = Some(id.try_into().expect("16 bytes")),
            Some(first) if first != id => {
                return Err(self.damaged(format!(
                    "frame {} comes from another write of this object",
                    self.index
                )));
            }
            Some(_) => {}
        }
        if index != self.index {
            return Err(self.damaged(format!(
                "frame {index} stands where frame {} should (frames out of order)",
                self.index
            )));
        }
        if last > 1 || (last == 0 && len != SEALED_MAX) {
            return Err(self.damaged(format!("frame {} is not a whole frame", self.index)));
        }
        self.ended = last == 1;
        self.index += 1;
        plain.drain(..HEADER);
        self.plain = plain;
        self.at = 0;
        Ok(true)
    }
}

impl<R: Read> Read for Unsealer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.at == self.plain.len() {
            if !self.next_frame()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing() -> Sealing {
        Sealing::new(&MasterKey::new()).unwrap()
    }

    fn seal(s: &Sealing, key: &str, data: &[u8]) -> Vec<u8> {
        let mut w = Sealer::new(Vec::new(), s.clone(), key).unwrap();
        // In uneven pieces, as a stream writes.
        for piece in data.chunks(77_777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    fn unseal(s: &Sealing, key: &str, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Unsealer::new(sealed, s.clone(), key, format!("object {key}")).read_to_end(&mut out)?;
        Ok(out)
    }

    fn damaged(s: &Sealing, key: &str, sealed: &[u8]) -> String {
        let e = unseal(s, key, sealed).expect_err("read as whole");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        let text = e.to_string();
        assert!(text.contains(&format!("object {key} is damaged")), "{text}");
        text
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// The byte ranges of each frame (length word included) in a sealed object.
    fn frames(sealed: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = MAGIC.len();
        while at < sealed.len() {
            let len = u32::from_le_bytes(sealed[at..at + 4].try_into().unwrap()) as usize;
            out.push(at..at + 4 + len);
            at += 4 + len;
        }
        out
    }

    #[test]
    fn objects_of_every_size_read_back_and_hide_their_bytes() {
        let s = sealing();
        for n in [0, 1, FRAME - 1, FRAME, FRAME + 1, 2 * FRAME, 2 * FRAME + 5] {
            let plain = data(n);
            let sealed = seal(&s, "a/b.seg.zst", &plain);
            assert_eq!(unseal(&s, "a/b.seg.zst", &sealed).unwrap(), plain, "{n}");
            let want = n.div_ceil(FRAME).max(1);
            assert_eq!(frames(&sealed).len(), want, "{n} bytes: frames");
            if n >= 64 {
                assert!(
                    !sealed.windows(64).any(|w| w == &plain[..64]),
                    "{n}: plaintext in the sealed bytes"
                );
            }
        }
    }

    #[test]
    fn an_empty_object_is_one_empty_last_frame() {
        let s = sealing();
        let sealed = seal(&s, "k", b"");
        assert_eq!(sealed.len(), MAGIC.len() + 4 + SEALED_MIN);
        assert_eq!(unseal(&s, "k", &sealed).unwrap(), b"");
        // Without its frame, or without anything, it is not an object.
        assert!(damaged(&s, "k", &sealed[..MAGIC.len()]).contains("cut off"));
        assert!(damaged(&s, "k", b"").contains("not a sealed object"));
    }

    #[test]
    fn exactly_one_frame_is_one_last_frame_and_its_cut_is_seen() {
        let s = sealing();
        let plain = data(FRAME);
        let sealed = seal(&s, "k", &plain);
        let f = frames(&sealed);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].len(), 4 + SEALED_MAX);
        assert_eq!(unseal(&s, "k", &sealed).unwrap(), plain);
        // A full frame that is not the last must be followed: two full frames, the
        // second removed, is cut off, not a one-frame object.
        let two = seal(&s, "k", &data(2 * FRAME));
        let f = frames(&two);
        assert!(damaged(&s, "k", &two[..f[0].end]).contains("cut off"));
    }

    #[test]
    fn a_cut_anywhere_is_damaged() {
        let s = sealing();
        let sealed = seal(&s, "k", &data(2 * FRAME + 10));
        let f = frames(&sealed);
        for cut in [
            MAGIC.len() - 3,
            MAGIC.len() + 2,
            f[0].end,
            f[1].start + 100,
            f[1].end,
            sealed.len() - 1,
        ] {
            damaged(&s, "k", &sealed[..cut]);
        }
        // The last frame dropped whole: cut off after frame 2 of 3.
        let text = damaged(&s, "k", &sealed[..f[2].start]);
        assert!(text.contains("cut off"), "{text}");
    }

    #[test]
    fn reordered_duplicated_or_foreign_frames_are_damaged() {
        let s = sealing();
        let sealed = seal(&s, "k", &data(3 * FRAME));
        let f = frames(&sealed);
        let join = |order: &[usize]| {
            let mut out = MAGIC.to_vec();
            for &i in order {
                out.extend_from_slice(&sealed[f[i].clone()]);
            }
            out
        };
        assert!(damaged(&s, "k", &join(&[1, 0, 2])).contains("out of order"));
        assert!(damaged(&s, "k", &join(&[0, 0, 1, 2])).contains("out of order"));
        assert!(damaged(&s, "k", &join(&[0, 2])).contains("out of order"));
        // Something after the last frame.
        let text = damaged(&s, "k", &join(&[0, 1, 2, 2]));
        assert!(text.contains("follow its last frame"), "{text}");
        // The same frame of another write of the same key.
        let other = seal(&s, "k", &data(3 * FRAME));
        let g = frames(&other);
        let mut mixed = sealed[..f[1].start].to_vec();
        mixed.extend_from_slice(&other[g[1].clone()]);
        mixed.extend_from_slice(&sealed[f[2].clone()]);
        assert!(damaged(&s, "k", &mixed).contains("another write"));
        // A whole object read under another key (renamed).
        assert!(damaged(&s, "other", &sealed).contains("another object"));
        // Another repository's key.
        assert!(damaged(&sealing(), "k", &sealed).contains("does not authenticate"));
    }

    #[test]
    fn any_flipped_byte_is_damaged() {
        let s = sealing();
        let sealed = seal(&s, "k", &data(FRAME + 300));
        let f = frames(&sealed);
        let mut places: Vec<usize> = vec![0, 7, f[0].start, f[0].start + 3];
        places.extend([f[0].start + 4, f[0].start + 30, f[0].start + 5000]);
        places.extend([f[0].end - 1, f[1].start + 20, sealed.len() - 1]);
        for at in places {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            damaged(&s, "k", &bad);
        }
    }

    #[test]
    fn nothing_of_a_damaged_frame_is_handed_on() {
        let s = sealing();
        let plain = data(FRAME + 300);
        let mut sealed = seal(&s, "k", &plain);
        let f = frames(&sealed);
        sealed[f[1].start + 40] ^= 1;
        let mut r = Unsealer::new(&sealed[..], s.clone(), "k", "object k".into());
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).is_err());
        assert_eq!(got, &plain[..FRAME], "only the whole first frame");
    }
}
