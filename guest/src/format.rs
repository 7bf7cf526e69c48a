//! The keystate data format, version 1: what `encrypt` produces and `decrypt`
//! reads. `docs/format.md` describes the bytes; this module is the one place
//! that writes and reads them.
//!
//! In short: a 60-byte header (magic, version, cipher, chunk size, key tag,
//! random salt), then the plaintext in chunks, each sealed with AES-GCM under a
//! per-message subkey (HKDF-SHA256 of the key material, salted with the
//! header's salt, with the whole header in `info`) and a STREAM nonce (7 zero
//! bytes, big-endian u32 chunk counter, 1-byte last-chunk flag). Every chunk
//! but the last holds exactly `chunk_size` plaintext bytes; the last holds
//! fewer (possibly none), so a reader knows the end when it sees it and
//! detects truncation, reordering and trailing data.
//!
//! Pure Rust, no I/O and no randomness of its own: callers pass the salt.
//! Memory is bounded by one chunk on either side.

use core::fmt;

use aead::AeadInPlace;
use aead::Buffer;
use aes_gcm::{Aes128Gcm, Aes256Gcm, Key, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::types::{Cipher, Error, Result, Tag};

/// The first four bytes of every keystate ciphertext.
pub const MAGIC: [u8; 4] = *b"KSTD";
/// The data format version this module writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header that starts every ciphertext.
pub const HEADER_LEN: usize = 60;
/// Length of the GCM tag that ends every chunk.
pub const GCM_TAG_LEN: usize = 16;
/// Plaintext bytes per full chunk when the caller asks for 0.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest allowed chunk size.
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest allowed chunk size (16 MiB).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// HKDF `info` prefix; the 60 header bytes follow it.
const SUBKEY_INFO: &[u8] = b"keystate/data/v1";

/// Largest chunk counter. Counters run from 0 to this, so a message has at
/// most 2^32 chunks, and only the final one may use this counter.
const MAX_COUNTER: u64 = u32::MAX as u64;

// Header field offsets.
const OFF_VERSION: usize = 4;
const OFF_CIPHER: usize = 5;
const OFF_RESERVED: usize = 6;
const OFF_CHUNK_SIZE: usize = 8;
const OFF_KEY_TAG: usize = 12;
const OFF_SALT: usize = 28;

fn integrity(message: impl Into<String>) -> Error {
    Error::Integrity(message.into())
}

fn auth_failed(index: u64) -> Error {
    integrity(format!("chunk {index} failed authentication: tampered, truncated, wrong key or wrong associated data"))
}

/// The parsed 60-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub cipher: Cipher,
    /// Plaintext bytes per full chunk.
    pub chunk_size: u32,
    /// Identifies the key in the keystore.
    pub key_tag: Tag,
    /// Random per message; salts the subkey derivation.
    pub salt: [u8; 32],
}

impl Header {
    /// The 60 header bytes (no validation: `chunk_size` is written as is).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..OFF_VERSION].copy_from_slice(&MAGIC);
        out[OFF_VERSION] = VERSION;
        out[OFF_CIPHER] = self.cipher.code();
        // out[6..8]: reserved, zero.
        out[OFF_CHUNK_SIZE..OFF_KEY_TAG].copy_from_slice(&self.chunk_size.to_le_bytes());
        out[OFF_KEY_TAG..OFF_SALT].copy_from_slice(&self.key_tag.0);
        out[OFF_SALT..HEADER_LEN].copy_from_slice(&self.salt);
        out
    }

    /// Parses the first HEADER_LEN bytes (Integrity error if fewer or malformed).
    /// Bytes past the header are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < HEADER_LEN {
            return Err(integrity(format!(
                "ciphertext too short: {} bytes, the header alone is {HEADER_LEN}",
                bytes.len()
            )));
        }
        let h = &bytes[..HEADER_LEN];
        if h[..OFF_VERSION] != MAGIC {
            return Err(integrity("not keystate data: bad magic (expected \"KSTD\")"));
        }
        if h[OFF_VERSION] != VERSION {
            return Err(integrity(format!(
                "unsupported data format version {} (this build reads version {VERSION})",
                h[OFF_VERSION]
            )));
        }
        let cipher = Cipher::from_code(h[OFF_CIPHER])
            .ok_or_else(|| integrity(format!("unknown cipher code {} in header", h[OFF_CIPHER])))?;
        if h[OFF_RESERVED..OFF_CHUNK_SIZE] != [0, 0] {
            return Err(integrity("reserved header bytes are not zero"));
        }
        let chunk_size = u32::from_le_bytes(h[OFF_CHUNK_SIZE..OFF_KEY_TAG].try_into().unwrap());
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(integrity(format!(
                "chunk size {chunk_size} in header is out of range {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            )));
        }
        Ok(Header {
            cipher,
            chunk_size,
            key_tag: Tag(h[OFF_KEY_TAG..OFF_SALT].try_into().unwrap()),
            salt: h[OFF_SALT..HEADER_LEN].try_into().unwrap(),
        })
    }
}

/// Length in bytes of the ciphertext of a `plaintext_len`-byte plaintext
/// (chunk size 0 means DEFAULT_CHUNK_SIZE); None if the chunk size is out of
/// range or the plaintext needs more than 2^32 chunks.
pub fn sealed_len(plaintext_len: u64, chunk_size: u32) -> Option<u64> {
    let chunk_size = if chunk_size == 0 { DEFAULT_CHUNK_SIZE } else { chunk_size };
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return None;
    }
    let chunks = plaintext_len / u64::from(chunk_size) + 1;
    if chunks > MAX_COUNTER + 1 {
        return None;
    }
    Some(HEADER_LEN as u64 + plaintext_len + chunks * GCM_TAG_LEN as u64)
}

/// The per-message AES key: HKDF-SHA256(ikm = key material, salt = header
/// salt, info = SUBKEY_INFO || header), cipher.key_len() bytes.
#[derive(Zeroize, ZeroizeOnDrop)]
struct Subkey {
    bytes: [u8; 32],
    #[zeroize(skip)]
    len: usize,
}

impl Subkey {
    fn derive(cipher: Cipher, key: &[u8; 32], header: &[u8; HEADER_LEN]) -> Subkey {
        let hkdf = Hkdf::<Sha256>::new(Some(&header[OFF_SALT..HEADER_LEN]), key);
        let len = cipher.key_len();
        let mut subkey = Subkey { bytes: [0u8; 32], len };
        hkdf.expand_multi_info(&[SUBKEY_INFO, header], &mut subkey.bytes[..len])
            .expect("a 16- or 32-byte HKDF-SHA256 output is always allowed");
        subkey
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A view of `vec[start..]` as an AEAD in-place buffer, so chunks are sealed
/// and opened directly in the caller's output vector (one copy per byte).
struct Tail<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

/// The group cipher under one message's subkey, sealing and opening chunks by
/// position. Chunk `i` gets the STREAM nonce (the construction of
/// `aead::stream::StreamBE32`): 7 zero bytes (the subkey is already unique per
/// message), `i` as u32 big-endian, and a last-chunk flag byte (1 on the final
/// chunk, 0 otherwise). Position, not order of calls, decides the nonce, so the
/// chunks of one message can be sealed by several workers at once.
// The variants differ by a few hundred bytes and one lives per message.
#[allow(clippy::large_enum_variant)]
enum ChunkAead {
    Aes256(Aes256Gcm),
    Aes128(Aes128Gcm),
    ChaCha20(ChaCha20Poly1305),
}

impl ChunkAead {
    fn new(cipher: Cipher, subkey: &Subkey) -> ChunkAead {
        let key = subkey.as_bytes();
        match cipher {
            Cipher::Aes256Gcm => ChunkAead::Aes256(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))),
            Cipher::Aes128Gcm => ChunkAead::Aes128(Aes128Gcm::new(Key::<Aes128Gcm>::from_slice(key))),
            Cipher::ChaCha20Poly1305 => {
                ChunkAead::ChaCha20(ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(key)))
            }
        }
    }

    fn nonce(index: u64, last: bool) -> [u8; 12] {
        debug_assert!(index <= MAX_COUNTER);
        let mut nonce = [0u8; 12];
        nonce[7..11].copy_from_slice(&(index as u32).to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    fn seal(&self, index: u64, last: bool, aad: &[u8], buf: &mut dyn Buffer) -> aead::Result<()> {
        let nonce = &ChunkAead::nonce(index, last).into();
        match self {
            ChunkAead::Aes256(a) => a.encrypt_in_place(nonce, aad, buf),
            ChunkAead::Aes128(a) => a.encrypt_in_place(nonce, aad, buf),
            ChunkAead::ChaCha20(a) => a.encrypt_in_place(nonce, aad, buf),
        }
    }

    fn open(&self, index: u64, last: bool, aad: &[u8], buf: &mut dyn Buffer) -> aead::Result<()> {
        let nonce = &ChunkAead::nonce(index, last).into();
        match self {
            ChunkAead::Aes256(a) => a.decrypt_in_place(nonce, aad, buf),
            ChunkAead::Aes128(a) => a.decrypt_in_place(nonce, aad, buf),
            ChunkAead::ChaCha20(a) => a.decrypt_in_place(nonce, aad, buf),
        }
    }
}

/// The chunks of one message, sealed and opened by position: what `Encryptor`
/// and `Decryptor` run on, and what lets a host spread one large message over
/// several component instances (each seals or opens its own run of chunks;
/// the output is byte for byte what one `Encryptor` would write).
///
/// Sealing is safe only if every chunk position of a message is sealed once:
/// a position sealed twice with different plaintext reuses a nonce.
pub struct Chunks {
    header: Header,
    aead: ChunkAead,
}

impl fmt::Debug for Chunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunks").field("header", &self.header).finish_non_exhaustive()
    }
}

impl Chunks {
    /// The chunks of the message that starts with `header_bytes` (parsed and
    /// checked: Integrity if malformed), under the 32 bytes of key material.
    pub fn new(header_bytes: &[u8], key: &[u8; 32]) -> Result<Chunks> {
        let header = Header::parse(header_bytes)?;
        let header_bytes: &[u8; HEADER_LEN] = header_bytes[..HEADER_LEN].try_into().expect("parse checked the length");
        let subkey = Subkey::derive(header.cipher, key, header_bytes);
        Ok(Chunks { header, aead: ChunkAead::new(header.cipher, &subkey) })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn chunk_size(&self) -> usize {
        self.header.chunk_size as usize
    }

    /// Appends chunk `index` sealed: `plaintext` is a full chunk, or the final one.
    fn seal_chunk(&self, index: u64, last: bool, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if index > MAX_COUNTER || (!last && index == MAX_COUNTER) {
            return Err(Error::InvalidArgument(
                "plaintext too long: the data format allows at most 2^32 chunks per message".into(),
            ));
        }
        let start = out.len();
        out.reserve(plaintext.len() + GCM_TAG_LEN);
        out.extend_from_slice(plaintext);
        if self.aead.seal(index, last, aad, &mut Tail { vec: out, start }).is_err() {
            out.truncate(start);
            return Err(Error::InvalidArgument(format!("sealing chunk {index} failed")));
        }
        Ok(())
    }

    /// Appends the plaintext of sealed chunk `index`; Integrity if it does not authenticate.
    fn open_chunk(&self, index: u64, last: bool, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if index > MAX_COUNTER || (!last && index == MAX_COUNTER) {
            return Err(integrity("ciphertext has more than 2^32 chunks, more than the data format allows"));
        }
        let start = out.len();
        out.extend_from_slice(sealed);
        if self.aead.open(index, last, aad, &mut Tail { vec: out, start }).is_err() {
            out.truncate(start);
            return Err(auth_failed(index));
        }
        Ok(())
    }

    /// Appends chunks `first, first + 1, ...` sealed. Without `last`,
    /// `plaintext` is whole chunks; with it, whole chunks and then the final
    /// chunk (the remainder, possibly empty). On error nothing is appended.
    pub fn seal_run(&self, first: u64, plaintext: &[u8], last: bool, aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let chunk_size = self.chunk_size();
        if !last && !plaintext.len().is_multiple_of(chunk_size) {
            return Err(Error::InvalidArgument(format!(
                "a run of chunks that does not end the message must be whole chunks of {chunk_size} bytes, not {}",
                plaintext.len()
            )));
        }
        let start = out.len();
        let result = (|| {
            let mut index = first;
            let mut rest = plaintext;
            while rest.len() >= chunk_size {
                self.seal_chunk(index, false, aad, &rest[..chunk_size], out)?;
                rest = &rest[chunk_size..];
                index += 1;
            }
            if last { self.seal_chunk(index, true, aad, rest, out) } else { Ok(()) }
        })();
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// Appends the plaintext of sealed chunks `first, first + 1, ...`. Without
    /// `last`, `sealed` is whole chunks; with it, whole chunks and then the
    /// final chunk (Integrity if that is missing or cut short). On error
    /// nothing is appended.
    pub fn open_run(&self, first: u64, sealed: &[u8], last: bool, aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let full_len = self.chunk_size() + GCM_TAG_LEN;
        if !last && !sealed.len().is_multiple_of(full_len) {
            return Err(Error::InvalidArgument(format!(
                "a run of chunks that does not end the message must be whole sealed chunks of {full_len} bytes, not {}",
                sealed.len()
            )));
        }
        let start = out.len();
        let result = (|| {
            let mut index = first;
            let mut rest = sealed;
            // A full-size chunk is never the final one.
            while rest.len() >= full_len {
                self.open_chunk(index, false, aad, &rest[..full_len], out)?;
                rest = &rest[full_len..];
                index += 1;
            }
            if !last {
                return Ok(());
            }
            if rest.is_empty() {
                return Err(integrity(format!(
                    "ciphertext truncated: the final chunk is missing after {index} full chunk(s)"
                )));
            }
            if rest.len() < GCM_TAG_LEN {
                return Err(integrity(format!(
                    "ciphertext truncated: final chunk {index} has {} bytes, shorter than its {GCM_TAG_LEN}-byte tag",
                    rest.len()
                )));
            }
            self.open_chunk(index, true, aad, rest, out)
        })();
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// Streaming encryption in bounded memory (buffers at most one chunk).
///
/// Full chunks are sealed as soon as they are complete (a full chunk is never
/// the final one), so the output does not depend on how the plaintext is
/// split across `update` calls. If a call fails, nothing is appended to `out`
/// and the encryptor refuses further use.
pub struct Encryptor {
    header_bytes: [u8; HEADER_LEN],
    header_emitted: bool,
    chunks: Chunks,
    aad: Vec<u8>,
    /// Plaintext of the chunk being filled: always fewer than chunk_size bytes
    /// between calls.
    pending: Zeroizing<Vec<u8>>,
    /// Counter of the next chunk to seal.
    next_index: u64,
    failed: bool,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("header", &self.chunks.header)
            .field("chunks_sealed", &self.next_index)
            .field("pending_len", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// chunk_size 0 means DEFAULT_CHUNK_SIZE; otherwise it must be in
    /// MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE (InvalidArgument if not).
    pub fn new(
        cipher: Cipher,
        key: &[u8; 32],
        key_tag: Tag,
        salt: [u8; 32],
        chunk_size: u32,
        aad: &[u8],
    ) -> Result<Encryptor> {
        let chunk_size = if chunk_size == 0 { DEFAULT_CHUNK_SIZE } else { chunk_size };
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::InvalidArgument(format!(
                "chunk size {chunk_size} is out of range {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} (or 0 for the default {DEFAULT_CHUNK_SIZE})"
            )));
        }
        let header_bytes = Header { cipher, chunk_size, key_tag, salt }.encode();
        Ok(Encryptor {
            header_bytes,
            header_emitted: false,
            chunks: Chunks::new(&header_bytes, key)?,
            aad: aad.to_vec(),
            pending: Zeroizing::new(Vec::new()),
            next_index: 0,
            failed: false,
        })
    }

    /// The header this encryptor writes.
    pub fn header(&self) -> &Header {
        &self.chunks.header
    }

    /// The 60 bytes of that header.
    pub fn header_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.header_bytes
    }

    /// Appends to `out` the ciphertext ready so far (the 60-byte header on the
    /// first call that emits anything, or at finish).
    pub fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument("encryptor already failed".into()));
        }
        let start = out.len();
        let result = self.update_inner(plaintext, out);
        if result.is_err() {
            self.failed = true;
            out.truncate(start);
        }
        result
    }

    fn update_inner(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let chunk_size = self.chunks.chunk_size();
        if !self.pending.is_empty() {
            let take = (chunk_size - self.pending.len()).min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
            if self.pending.len() < chunk_size {
                return Ok(());
            }
            let chunk = core::mem::take(&mut *self.pending);
            let sealed = self.seal_whole(&chunk, out);
            // Reuse the allocation (the contents are overwritten or zeroized on drop).
            *self.pending = chunk;
            self.pending.clear();
            sealed?;
        }
        // Whole chunks straight from the input, without buffering.
        let whole = plaintext.len() - plaintext.len() % chunk_size;
        if whole > 0 {
            self.seal_whole(&plaintext[..whole], out)?;
            plaintext = &plaintext[whole..];
        }
        if !plaintext.is_empty() {
            if self.pending.capacity() == 0 {
                // Reserve up front so that filling the chunk does not reallocate
                // (and leave stray plaintext copies behind), except for huge
                // chunk sizes, where short messages should not cost 16 MiB.
                self.pending.reserve_exact(chunk_size.min(DEFAULT_CHUNK_SIZE as usize));
            }
            self.pending.extend_from_slice(plaintext);
        }
        Ok(())
    }

    fn emit_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_emitted {
            out.extend_from_slice(&self.header_bytes);
            self.header_emitted = true;
        }
    }

    /// Seals whole (hence non-final) chunks onto `out`.
    fn seal_whole(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.emit_header(out);
        self.chunks.seal_run(self.next_index, plaintext, false, &self.aad, out)?;
        self.next_index += (plaintext.len() / self.chunks.chunk_size()) as u64;
        Ok(())
    }

    /// Seals the final chunk (header first if nothing was emitted yet).
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<()> {
        let pending = core::mem::take(&mut self.pending);
        self.seal_last(&pending, out)
    }

    /// Seals `tail` (fewer than chunk_size bytes, after any pending ones) as
    /// the final chunk.
    fn seal_last(mut self, tail: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument("encryptor already failed".into()));
        }
        debug_assert!(self.pending.len() + tail.len() < self.chunks.chunk_size());
        let start = out.len();
        self.emit_header(out);
        let result = if self.pending.is_empty() {
            self.chunks.seal_chunk(self.next_index, true, &self.aad, tail, out)
        } else {
            let mut last = Zeroizing::new(Vec::with_capacity(self.pending.len() + tail.len()));
            last.extend_from_slice(&self.pending);
            last.extend_from_slice(tail);
            self.chunks.seal_chunk(self.next_index, true, &self.aad, &last, out)
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// Set up once the header has arrived and the key is resolved.
struct Body {
    chunks: Chunks,
    /// Ciphertext bytes of a full chunk: chunk_size + GCM_TAG_LEN.
    full_len: usize,
    /// Counter of the next chunk to open.
    next_index: u64,
}

impl Body {
    /// Opens whole full-size (hence non-final) chunks onto `out`.
    fn open_whole(&mut self, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.chunks.open_run(self.next_index, sealed, false, aad, out)?;
        self.next_index += (sealed.len() / self.full_len) as u64;
        Ok(())
    }
}

/// Streaming decryption. The key is resolved once the header has arrived.
///
/// Plaintext is released chunk by chunk, each only after it has been
/// authenticated; the whole message is authentic only once `finish` returns
/// Ok. If a call fails, nothing is appended to `out` by that call and the
/// decryptor refuses further use.
pub struct Decryptor {
    aad: Vec<u8>,
    header: Option<Header>,
    /// Set once the header is parsed and the key resolved.
    body: Option<Body>,
    /// Header bytes until the header is complete, then the ciphertext of the
    /// chunk being filled: always fewer than a full chunk between calls.
    pending: Vec<u8>,
    failed: bool,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("header", &self.header)
            .field("chunks_opened", &self.body.as_ref().map(|b| b.next_index))
            .field("pending_len", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    pub fn new(aad: &[u8]) -> Decryptor {
        Decryptor { aad: aad.to_vec(), header: None, body: None, pending: Vec::new(), failed: false }
    }

    /// The header, once parsed.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Appends to `out` the plaintext of chunks verified so far. When the
    /// header is complete (the first time), calls `resolve(&header)` to get
    /// the 32-byte key material (its error is returned as is).
    ///
    /// A full-size chunk is never final, so it is opened as soon as it is
    /// complete; a shorter remainder waits for more data or for `finish`.
    pub fn update(
        &mut self,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
        resolve: &mut dyn FnMut(&Header) -> Result<Zeroizing<[u8; 32]>>,
    ) -> Result<()> {
        if self.failed {
            return Err(integrity("decryption already failed"));
        }
        let start = out.len();
        let result = self.update_inner(ciphertext, out, resolve);
        if result.is_err() {
            self.failed = true;
            out.truncate(start);
        }
        result
    }

    fn update_inner(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        resolve: &mut dyn FnMut(&Header) -> Result<Zeroizing<[u8; 32]>>,
    ) -> Result<()> {
        if self.body.is_none() {
            let take = (HEADER_LEN - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < HEADER_LEN {
                return Ok(());
            }
            let header = Header::parse(&self.pending)?;
            self.header = Some(header);
            let key = resolve(&header)?;
            let chunks = Chunks::new(&self.pending, &key)?;
            self.pending.clear();
            self.body = Some(Body { chunks, full_len: header.chunk_size as usize + GCM_TAG_LEN, next_index: 0 });
        }
        let body = self.body.as_mut().expect("set above");
        let full_len = body.full_len;
        if !self.pending.is_empty() {
            let take = (full_len - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < full_len {
                return Ok(());
            }
            body.open_whole(&self.aad, &self.pending, out)?;
            self.pending.clear();
        }
        // Whole chunks straight from the input, without buffering.
        let whole = input.len() - input.len() % full_len;
        if whole > 0 {
            body.open_whole(&self.aad, &input[..whole], out)?;
            input = &input[whole..];
        }
        self.pending.extend_from_slice(input);
        Ok(())
    }

    /// Opens the final chunk; Integrity error if the data was truncated (no
    /// header, or ended after a full chunk) or the final chunk does not
    /// authenticate (which includes trailing bytes after it).
    pub fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(integrity("decryption already failed"));
        }
        let Decryptor { aad, body, pending, .. } = self;
        let Some(body) = body else {
            return Err(if pending.is_empty() {
                integrity("ciphertext is empty: the header is missing")
            } else {
                integrity(format!("ciphertext truncated: {} of the {HEADER_LEN} header bytes", pending.len()))
            });
        };
        // `pending` is shorter than a full chunk, so this opens just the final one.
        body.chunks.open_run(body.next_index, &pending, true, &aad, out)
    }
}

/// Encrypts `plaintext` in one go (see `Encryptor`).
pub fn seal(
    cipher: Cipher,
    key: &[u8; 32],
    key_tag: Tag,
    salt: [u8; 32],
    chunk_size: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let encryptor = Encryptor::new(cipher, key, key_tag, salt, chunk_size, aad)?;
    let capacity = sealed_len(plaintext.len() as u64, encryptor.header().chunk_size).ok_or_else(|| {
        Error::InvalidArgument("plaintext too long: the data format allows at most 2^32 chunks per message".into())
    })?;
    let mut out = Vec::with_capacity(capacity as usize);
    out.extend_from_slice(encryptor.header_bytes());
    encryptor.chunks.seal_run(0, plaintext, true, aad, &mut out)?;
    Ok(out)
}

/// Decrypts and verifies a whole ciphertext (see `Decryptor`).
pub fn open(
    ciphertext: &[u8],
    aad: &[u8],
    resolve: &mut dyn FnMut(&Header) -> Result<Zeroizing<[u8; 32]>>,
) -> Result<Vec<u8>> {
    let mut decryptor = Decryptor::new(aad);
    let mut out = Vec::with_capacity(ciphertext.len().saturating_sub(HEADER_LEN));
    decryptor.update(ciphertext, &mut out, resolve)?;
    decryptor.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u32 = 64;
    const KEY_A: [u8; 32] = [0xa1; 32];
    const KEY_B: [u8; 32] = [0xb2; 32];
    const TAG: Tag = Tag([0x7a; 16]);
    const SALT: [u8; 32] = [0x5a; 32];
    const AAD: &[u8] = b"associated";
    const CIPHERS: [Cipher; 3] = [Cipher::Aes256Gcm, Cipher::Aes128Gcm, Cipher::ChaCha20Poly1305];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
    }

    fn key_of(key: [u8; 32]) -> impl FnMut(&Header) -> Result<Zeroizing<[u8; 32]>> {
        move |_| Ok(Zeroizing::new(key))
    }

    fn seal_a(cipher: Cipher, pt: &[u8]) -> Vec<u8> {
        seal(cipher, &KEY_A, TAG, SALT, CHUNK, AAD, pt).unwrap()
    }

    fn open_a(ct: &[u8]) -> Result<Vec<u8>> {
        open(ct, AAD, &mut key_of(KEY_A))
    }

    fn assert_integrity(result: Result<Vec<u8>>, what: &str) {
        match result {
            Err(Error::Integrity(_)) => {}
            other => panic!("{what}: expected an Integrity error, got {other:?}"),
        }
    }

    /// Tiny deterministic PRNG for split points.
    struct XorShift(u64);
    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn encrypt_in_pieces(cipher: Cipher, pt: &[u8], sizes: &mut dyn FnMut() -> usize) -> Vec<u8> {
        let mut enc = Encryptor::new(cipher, &KEY_A, TAG, SALT, CHUNK, AAD).unwrap();
        let mut out = Vec::new();
        let mut rest = pt;
        while !rest.is_empty() {
            let n = sizes().min(rest.len());
            enc.update(&rest[..n], &mut out).unwrap();
            rest = &rest[n..];
        }
        enc.finish(&mut out).unwrap();
        out
    }

    fn decrypt_in_pieces(ct: &[u8], sizes: &mut dyn FnMut() -> usize) -> Result<Vec<u8>> {
        let mut dec = Decryptor::new(AAD);
        let mut out = Vec::new();
        let mut rest = ct;
        while !rest.is_empty() {
            let n = sizes().min(rest.len());
            dec.update(&rest[..n], &mut out, &mut key_of(KEY_A))?;
            rest = &rest[n..];
        }
        dec.finish(&mut out)?;
        Ok(out)
    }

    /// The construction written out directly against hkdf and aes-gcm, one
    /// whole chunk at a time, independent of the streaming code.
    fn reference_seal(cipher: Cipher, key: &[u8; 32], salt: [u8; 32], chunk: u32, aad: &[u8], pt: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, Payload};
        let mut header = Vec::new();
        header.extend_from_slice(b"KSTD");
        header.push(1);
        header.push(cipher.code());
        header.extend_from_slice(&[0, 0]);
        header.extend_from_slice(&chunk.to_le_bytes());
        header.extend_from_slice(&TAG.0);
        header.extend_from_slice(&salt);
        assert_eq!(header.len(), 60);
        let mut info = b"keystate/data/v1".to_vec();
        info.extend_from_slice(&header);
        let mut subkey = vec![0u8; cipher.key_len()];
        Hkdf::<Sha256>::new(Some(&salt), key).expand(&info, &mut subkey).unwrap();

        let chunk = chunk as usize;
        let n_chunks = pt.len() / chunk + 1;
        let mut out = header;
        for i in 0..n_chunks {
            let piece = &pt[i * chunk..((i + 1) * chunk).min(pt.len())];
            let last = i == n_chunks - 1;
            let mut nonce = [0u8; 12];
            nonce[7..11].copy_from_slice(&(i as u32).to_be_bytes());
            nonce[11] = last as u8;
            let payload = Payload { msg: piece, aad };
            let sealed = match cipher {
                Cipher::Aes256Gcm => {
                    Aes256Gcm::new_from_slice(&subkey).unwrap().encrypt(aes_gcm::Nonce::from_slice(&nonce), payload)
                }
                Cipher::Aes128Gcm => {
                    Aes128Gcm::new_from_slice(&subkey).unwrap().encrypt(aes_gcm::Nonce::from_slice(&nonce), payload)
                }
                Cipher::ChaCha20Poly1305 => ChaCha20Poly1305::new_from_slice(&subkey)
                    .unwrap()
                    .encrypt(chacha20poly1305::Nonce::from_slice(&nonce), payload),
            }
            .unwrap();
            out.extend_from_slice(&sealed);
        }
        out
    }

    #[test]
    fn round_trip_lengths_both_ciphers() {
        let c = CHUNK as usize;
        for cipher in CIPHERS {
            for len in [0, 1, c - 1, c, c + 1, 2 * c + 5, 3 * c] {
                let pt = plaintext(len);
                let ct = seal_a(cipher, &pt);
                assert_eq!(ct.len() as u64, sealed_len(len as u64, CHUNK).unwrap(), "{cipher:?} len {len}");
                assert_eq!(ct.len(), HEADER_LEN + len + (len / c + 1) * GCM_TAG_LEN);
                assert_eq!(open_a(&ct).unwrap(), pt, "{cipher:?} len {len}");
                let header = Header::parse(&ct).unwrap();
                assert_eq!(header, Header { cipher, chunk_size: CHUNK, key_tag: TAG, salt: SALT });
            }
        }
    }

    #[test]
    fn matches_independent_reference_construction() {
        let c = CHUNK as usize;
        for cipher in CIPHERS {
            for len in [0, 1, c - 1, c, c + 1, 3 * c, 3 * c + 17] {
                let pt = plaintext(len);
                assert_eq!(
                    seal_a(cipher, &pt),
                    reference_seal(cipher, &KEY_A, SALT, CHUNK, AAD, &pt),
                    "{cipher:?} len {len}"
                );
            }
        }
        // An empty aad and a larger chunk size too.
        let pt = plaintext(1000);
        assert_eq!(
            seal(Cipher::Aes128Gcm, &KEY_B, TAG, SALT, 300, b"", &pt).unwrap(),
            reference_seal(Cipher::Aes128Gcm, &KEY_B, SALT, 300, b"", &pt)
        );
    }

    #[test]
    fn runs_sealed_apart_concatenate_to_the_message() {
        let c = CHUNK as usize;
        for cipher in CIPHERS {
            for len in [0, 1, c, 3 * c, 5 * c + 17] {
                let pt = plaintext(len);
                let whole = seal_a(cipher, &pt);
                let header: [u8; HEADER_LEN] = whole[..HEADER_LEN].try_into().unwrap();
                let chunks = Chunks::new(&header, &KEY_A).unwrap();
                // Every way of cutting the whole chunks into two runs.
                let full = len / c;
                for cut in 0..=full {
                    let mut out = header.to_vec();
                    chunks.seal_run(0, &pt[..cut * c], false, AAD, &mut out).unwrap();
                    chunks.seal_run(cut as u64, &pt[cut * c..], true, AAD, &mut out).unwrap();
                    assert_eq!(out, whole, "{cipher:?} len {len} cut after chunk {cut}");

                    // And opened apart too.
                    let sealed = &whole[HEADER_LEN..];
                    let split = cut * (c + GCM_TAG_LEN);
                    let mut opened = Vec::new();
                    chunks.open_run(0, &sealed[..split], false, AAD, &mut opened).unwrap();
                    chunks.open_run(cut as u64, &sealed[split..], true, AAD, &mut opened).unwrap();
                    assert_eq!(opened, pt, "{cipher:?} len {len} opened apart at chunk {cut}");
                }
            }
        }
    }

    #[test]
    fn runs_at_the_wrong_place_or_of_the_wrong_shape_fail() {
        let c = CHUNK as usize;
        let pt = plaintext(4 * c + 9);
        let whole = seal_a(Cipher::Aes256Gcm, &pt);
        let chunks = Chunks::new(&whole[..HEADER_LEN], &KEY_A).unwrap();
        let sealed = &whole[HEADER_LEN..];
        let full = c + GCM_TAG_LEN;
        let mut out = Vec::new();
        // A run that does not end the message must be whole chunks.
        let e = chunks.seal_run(0, &pt[..c + 1], false, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e = chunks.open_run(0, &sealed[..full + 1], false, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        // Chunks opened at another position, or a middle run taken as the last, fail to authenticate.
        let e = chunks.open_run(1, &sealed[..full], false, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::Integrity(_)), "{e:?}");
        let e = chunks.open_run(0, &sealed[..2 * full], true, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::Integrity(_)), "{e:?}");
        // A last run missing its final chunk, or cut inside the tag.
        let e = chunks.open_run(4, &[], true, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::Integrity(ref m) if m.contains("truncated")), "{e:?}");
        let e = chunks.open_run(4, &sealed[4 * full..4 * full + 10], true, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::Integrity(ref m) if m.contains("truncated")), "{e:?}");
        // A failing run appends nothing, even after good chunks.
        let e = chunks.open_run(3, &sealed[3 * full..sealed.len() - 1], true, AAD, &mut out).unwrap_err();
        assert!(matches!(e, Error::Integrity(_)), "{e:?}");
        assert!(out.is_empty());
        // The right place works.
        chunks.open_run(3, &sealed[3 * full..], true, AAD, &mut out).unwrap();
        assert_eq!(out, &pt[3 * c..]);
    }

    #[test]
    fn output_independent_of_split_points() {
        let c = CHUNK as usize;
        for cipher in CIPHERS {
            for len in [0, 5, c, 3 * c, 3 * c + 17] {
                let pt = plaintext(len);
                let whole = seal_a(cipher, &pt);
                let bytewise = encrypt_in_pieces(cipher, &pt, &mut || 1);
                assert_eq!(bytewise, whole, "encrypt byte by byte, {cipher:?} len {len}");
                let mut rng = XorShift(0x9e3779b97f4a7c15 ^ len as u64);
                let random = encrypt_in_pieces(cipher, &pt, &mut || rng.below(3 * c) + 1);
                assert_eq!(random, whole, "encrypt random splits, {cipher:?} len {len}");
                // Empty updates change nothing.
                let mut enc = Encryptor::new(cipher, &KEY_A, TAG, SALT, CHUNK, AAD).unwrap();
                let mut out = Vec::new();
                enc.update(&[], &mut out).unwrap();
                enc.update(&pt, &mut out).unwrap();
                enc.update(&[], &mut out).unwrap();
                enc.finish(&mut out).unwrap();
                assert_eq!(out, whole);

                assert_eq!(decrypt_in_pieces(&whole, &mut || 1).unwrap(), pt, "decrypt byte by byte");
                let mut rng = XorShift(0x1234567 + len as u64);
                let random = decrypt_in_pieces(&whole, &mut || rng.below(3 * c) + 1).unwrap();
                assert_eq!(random, pt, "decrypt random splits");
            }
        }
    }

    #[test]
    fn encryptor_emits_header_with_first_chunk_and_full_chunks_immediately() {
        let c = CHUNK as usize;
        let pt = plaintext(2 * c + 10);
        let mut enc = Encryptor::new(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, CHUNK, AAD).unwrap();
        let mut out = Vec::new();
        enc.update(&pt[..c - 1], &mut out).unwrap();
        assert!(out.is_empty(), "nothing is ready before a full chunk");
        enc.update(&pt[c - 1..c], &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + c + GCM_TAG_LEN, "header + first chunk");
        enc.update(&pt[c..], &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + 2 * (c + GCM_TAG_LEN));
        enc.finish(&mut out).unwrap();
        assert_eq!(out, seal_a(Cipher::Aes256Gcm, &pt));

        // Nothing at all: finish emits the header and an empty final chunk.
        let enc = Encryptor::new(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, CHUNK, AAD).unwrap();
        let mut out = Vec::new();
        enc.finish(&mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + GCM_TAG_LEN);
        assert_eq!(open_a(&out).unwrap(), b"");
    }

    #[test]
    fn decryptor_releases_full_chunks_as_soon_as_complete() {
        let c = CHUNK as usize;
        let full = c + GCM_TAG_LEN;
        let pt = plaintext(2 * c + 10);
        let ct = seal_a(Cipher::Aes256Gcm, &pt);
        let mut dec = Decryptor::new(AAD);
        let mut out = Vec::new();
        let mut calls = 0;
        let mut resolve = |h: &Header| {
            calls += 1;
            assert_eq!(h.key_tag, TAG);
            Ok(Zeroizing::new(KEY_A))
        };
        dec.update(&ct[..HEADER_LEN - 1], &mut out, &mut resolve).unwrap();
        assert!(dec.header().is_none());
        dec.update(&ct[HEADER_LEN - 1..HEADER_LEN], &mut out, &mut resolve).unwrap();
        assert_eq!(dec.header().unwrap().chunk_size, CHUNK);
        dec.update(&ct[HEADER_LEN..HEADER_LEN + full - 1], &mut out, &mut resolve).unwrap();
        assert!(out.is_empty());
        dec.update(&ct[HEADER_LEN + full - 1..HEADER_LEN + full], &mut out, &mut resolve).unwrap();
        assert_eq!(out, &pt[..c], "a full chunk is opened once complete");
        dec.update(&ct[HEADER_LEN + full..], &mut out, &mut resolve).unwrap();
        assert_eq!(out, &pt[..2 * c], "the short final chunk waits for finish");
        dec.finish(&mut out).unwrap();
        assert_eq!(out, pt);
        assert_eq!(calls, 1, "resolve is called exactly once");
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let c = CHUNK as usize;
        for cipher in CIPHERS {
            // Chunks of 64, 64 and 22 plaintext bytes.
            let ct = seal_a(cipher, &plaintext(2 * c + 22));
            assert_eq!(ct.len(), HEADER_LEN + 2 * (c + 16) + 22 + 16);
            for i in 0..ct.len() {
                for mask in [0x01u8, 0x80, 0xff] {
                    let mut bad = ct.clone();
                    bad[i] ^= mask;
                    assert_integrity(open_a(&bad), &format!("{cipher:?} byte {i} ^ {mask:#x}"));
                }
            }
            // The other valid cipher code in the header.
            let mut bad = ct.clone();
            bad[5] = if cipher == Cipher::Aes256Gcm { 2 } else { 1 };
            assert_integrity(open_a(&bad), "cipher code swapped");
            // Another valid chunk size in the header.
            let mut bad = ct.clone();
            bad[8..12].copy_from_slice(&80u32.to_le_bytes());
            assert_integrity(open_a(&bad), "chunk size changed");
        }
    }

    #[test]
    fn truncation_at_every_length_is_detected() {
        let c = CHUNK as usize;
        let full = c + GCM_TAG_LEN;
        for len in [0, 10, c, 2 * c, 2 * c + 22] {
            let ct = seal_a(Cipher::Aes256Gcm, &plaintext(len));
            for cut in 0..ct.len() {
                assert_integrity(open_a(&ct[..cut]), &format!("len {len} cut at {cut}"));
                assert_integrity(decrypt_in_pieces(&ct[..cut], &mut || 7), &format!("streamed, cut at {cut}"));
            }
        }
        let ct = seal_a(Cipher::Aes256Gcm, &plaintext(2 * c + 22));
        for cut in [HEADER_LEN, HEADER_LEN + full, HEADER_LEN + 2 * full] {
            let err = open_a(&ct[..cut]).unwrap_err();
            assert!(matches!(&err, Error::Integrity(m) if m.contains("final chunk is missing")), "{err:?}");
        }
        let err = open_a(&ct[..HEADER_LEN - 1]).unwrap_err();
        assert!(matches!(&err, Error::Integrity(m) if m.contains("truncated")), "{err:?}");
        assert!(matches!(open_a(&[]), Err(Error::Integrity(_))));
    }

    #[test]
    fn dropped_swapped_appended_chunks_and_wrong_aad_are_detected() {
        let c = CHUNK as usize;
        let full = c + GCM_TAG_LEN;
        let ct = seal_a(Cipher::Aes256Gcm, &plaintext(3 * c + 22));
        let chunk = |i: usize| HEADER_LEN + i * full..(HEADER_LEN + (i + 1) * full).min(ct.len());
        let splice = |parts: &[core::ops::Range<usize>]| -> Vec<u8> {
            let mut v = ct[..HEADER_LEN].to_vec();
            for p in parts {
                v.extend_from_slice(&ct[p.clone()]);
            }
            v
        };
        assert_eq!(open_a(&splice(&[chunk(0), chunk(1), chunk(2), chunk(3)])).unwrap(), plaintext(3 * c + 22));
        assert_integrity(open_a(&splice(&[chunk(1), chunk(2), chunk(3)])), "first chunk dropped");
        assert_integrity(open_a(&splice(&[chunk(0), chunk(2), chunk(3)])), "middle chunk dropped");
        assert_integrity(open_a(&splice(&[chunk(0), chunk(1), chunk(2)])), "final chunk dropped");
        assert_integrity(open_a(&splice(&[chunk(1), chunk(0), chunk(2), chunk(3)])), "chunks 0 and 1 swapped");
        assert_integrity(open_a(&splice(&[chunk(0), chunk(2), chunk(1), chunk(3)])), "chunks 1 and 2 swapped");
        assert_integrity(open_a(&splice(&[chunk(0), chunk(0), chunk(1), chunk(2), chunk(3)])), "chunk repeated");
        assert_integrity(open_a(&splice(&[chunk(0), chunk(1), chunk(2), chunk(3), chunk(3)])), "final chunk repeated");

        for extra in [1usize, 15, 16, 17, full, 3 * full] {
            let mut bad = ct.clone();
            bad.extend(core::iter::repeat_n(0u8, extra));
            assert_integrity(open_a(&bad), &format!("{extra} bytes appended"));
        }
        // A message ending with an empty final chunk, then more data.
        let exact = seal_a(Cipher::Aes256Gcm, &plaintext(2 * c));
        let mut bad = exact.clone();
        bad.push(0);
        assert_integrity(open_a(&bad), "byte after empty final chunk");
        // Two messages concatenated.
        let mut bad = exact.clone();
        bad.extend_from_slice(&exact);
        assert_integrity(open_a(&bad), "two messages concatenated");

        assert_integrity(open(&ct, b"associatee", &mut key_of(KEY_A)), "wrong aad");
        assert_integrity(open(&ct, b"", &mut key_of(KEY_A)), "empty aad");
        let no_aad = seal(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, CHUNK, b"", b"x").unwrap();
        assert_integrity(open(&no_aad, b"\0", &mut key_of(KEY_A)), "aad added");
        assert_eq!(open(&no_aad, b"", &mut key_of(KEY_A)).unwrap(), b"x");
    }

    #[test]
    fn wrong_key_fails_and_resolve_errors_pass_through() {
        for cipher in CIPHERS {
            let ct = seal_a(cipher, &plaintext(100));
            let err = open(&ct, AAD, &mut key_of(KEY_B)).unwrap_err();
            assert!(matches!(&err, Error::Integrity(m) if m.contains("chunk 0 failed authentication")), "{err:?}");
            // AES-128 uses a 16-byte subkey; keys differing only in their
            // material's last byte still give a different subkey.
            let mut near = KEY_A;
            near[31] ^= 1;
            assert_integrity(open(&ct, AAD, &mut key_of(near)), "key A with last byte changed");
        }
        let ct = seal_a(Cipher::Aes256Gcm, b"secret");
        let not_found = Error::NotFound("no key with tag 7a7a...".into());
        let mut resolve = |h: &Header| {
            assert_eq!(h.key_tag, TAG);
            Err(not_found.clone())
        };
        assert_eq!(open(&ct, AAD, &mut resolve), Err(not_found.clone()));
        let mut unusable = |_: &Header| Err(Error::KeyUnusable("terminated".into()));
        assert_eq!(open(&ct, AAD, &mut unusable), Err(Error::KeyUnusable("terminated".into())));
    }

    #[test]
    fn malformed_headers_are_integrity_errors() {
        let ct = seal_a(Cipher::Aes256Gcm, &plaintext(10));
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut v = ct.clone();
            f(&mut v);
            v
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("bad magic", edit(&|v| v[0] = b'X'), "magic"),
            ("version 0", edit(&|v| v[4] = 0), "version 0"),
            ("version 2", edit(&|v| v[4] = 2), "version 2"),
            ("cipher 0", edit(&|v| v[5] = 0), "cipher code 0"),
            ("cipher 4", edit(&|v| v[5] = 4), "cipher code 4"),
            ("reserved byte 6", edit(&|v| v[6] = 1), "reserved"),
            ("reserved byte 7", edit(&|v| v[7] = 0x80), "reserved"),
            ("chunk size 0", edit(&|v| v[8..12].copy_from_slice(&0u32.to_le_bytes())), "chunk size 0"),
            ("chunk size 63", edit(&|v| v[8..12].copy_from_slice(&63u32.to_le_bytes())), "chunk size 63"),
            (
                "chunk size 16 MiB + 1",
                edit(&|v| v[8..12].copy_from_slice(&(MAX_CHUNK_SIZE + 1).to_le_bytes())),
                "chunk size 16777217",
            ),
        ];
        for (what, bytes, needle) in cases {
            let parsed = Header::parse(&bytes);
            assert!(matches!(&parsed, Err(Error::Integrity(m)) if m.contains(needle)), "{what}: {parsed:?}");
            // The key is never asked for.
            let mut resolve = |_: &Header| -> Result<Zeroizing<[u8; 32]>> { panic!("{what}: resolve called") };
            assert_integrity(open(&bytes, AAD, &mut resolve), what);
        }
        assert!(matches!(Header::parse(&ct[..59]), Err(Error::Integrity(m)) if m.contains("too short")));
        assert!(Header::parse(&ct[..60]).is_ok());
    }

    #[test]
    fn header_layout() {
        let header = Header {
            cipher: Cipher::Aes128Gcm,
            chunk_size: 0x000a_0b0c,
            key_tag: Tag(core::array::from_fn(|i| 0x10 + i as u8)),
            salt: core::array::from_fn(|i| 0x40 + i as u8),
        };
        let bytes = header.encode();
        assert_eq!(&bytes[0..4], b"KSTD");
        assert_eq!(bytes[4], 1);
        assert_eq!(bytes[5], 2);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(&bytes[8..12], &[0x0c, 0x0b, 0x0a, 0x00]);
        assert_eq!(&bytes[12..28], &header.key_tag.0);
        assert_eq!(&bytes[28..60], &header.salt);
        assert_eq!(Header::parse(&bytes).unwrap(), header);
    }

    #[test]
    fn encryptor_chunk_size_limits() {
        for bad in [1, 10, 63, MAX_CHUNK_SIZE + 1, u32::MAX] {
            let r = Encryptor::new(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, bad, AAD);
            assert!(matches!(r, Err(Error::InvalidArgument(_))), "chunk size {bad}");
            let r = seal(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, bad, AAD, b"x");
            assert!(matches!(r, Err(Error::InvalidArgument(_))), "seal, chunk size {bad}");
        }
        let enc = Encryptor::new(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, 0, AAD).unwrap();
        assert_eq!(enc.header().chunk_size, DEFAULT_CHUNK_SIZE);
        let pt = plaintext(3 * DEFAULT_CHUNK_SIZE as usize + 1);
        let ct = seal(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, 0, AAD, &pt).unwrap();
        assert_eq!(Header::parse(&ct).unwrap().chunk_size, DEFAULT_CHUNK_SIZE);
        assert_eq!(ct.len(), HEADER_LEN + pt.len() + 4 * GCM_TAG_LEN);
        assert_eq!(open_a(&ct).unwrap(), pt);
        for ok in [MIN_CHUNK_SIZE, MAX_CHUNK_SIZE] {
            let ct = seal(Cipher::Aes128Gcm, &KEY_A, TAG, SALT, ok, AAD, b"hello").unwrap();
            assert_eq!(open_a(&ct).unwrap(), b"hello");
        }
        assert_eq!(sealed_len(0, 0), Some(76));
        assert_eq!(sealed_len(64, 64), Some(60 + 64 + 32));
        assert_eq!(sealed_len(1, 10), None);
        assert_eq!(sealed_len(64 << 32, 64), None, "2^32 + 1 chunks");
        assert_eq!(sealed_len((64 << 32) - 1, 64), Some(60 + (64 << 32) - 1 + 16 * (1 << 32)));
    }

    #[test]
    fn chunk_counter_limit() {
        let c = CHUNK as usize;
        // Pretend 2^32 - 1 chunks were sealed: the next full chunk would need
        // counter 2^32 - 1 as a non-final chunk, which leaves none for the final one.
        let mut enc = Encryptor::new(Cipher::Aes256Gcm, &KEY_A, TAG, SALT, CHUNK, AAD).unwrap();
        enc.next_index = MAX_COUNTER;
        let mut out = vec![1, 2, 3];
        let r = enc.update(&plaintext(c), &mut out);
        assert!(matches!(r, Err(Error::InvalidArgument(m)) if m.contains("2^32")));
        assert_eq!(out, [1, 2, 3], "nothing appended on error");
        assert!(enc.update(b"", &mut out).is_err(), "a failed encryptor stays failed");

        let ct = seal_a(Cipher::Aes256Gcm, &plaintext(2 * c));
        let mut dec = Decryptor::new(AAD);
        let mut out = Vec::new();
        dec.update(&ct[..HEADER_LEN], &mut out, &mut key_of(KEY_A)).unwrap();
        dec.body.as_mut().unwrap().next_index = MAX_COUNTER;
        let r = dec.update(&ct[HEADER_LEN..], &mut out, &mut key_of(KEY_A));
        assert!(matches!(r, Err(Error::Integrity(m)) if m.contains("2^32")));
    }

    #[test]
    fn failed_decryptor_appends_nothing_and_stays_failed() {
        let c = CHUNK as usize;
        let mut ct = seal_a(Cipher::Aes256Gcm, &plaintext(3 * c));
        let second_chunk = HEADER_LEN + (c + GCM_TAG_LEN) + 3;
        ct[second_chunk] ^= 1;
        let mut dec = Decryptor::new(AAD);
        let mut out = b"prefix".to_vec();
        let err = dec.update(&ct, &mut out, &mut key_of(KEY_A)).unwrap_err();
        assert!(matches!(&err, Error::Integrity(m) if m.contains("chunk 1 failed")), "{err:?}");
        assert_eq!(out, b"prefix", "verified chunk 0 of the failed call is withdrawn too");
        assert!(matches!(dec.update(b"", &mut out, &mut key_of(KEY_A)), Err(Error::Integrity(_))));
        assert!(matches!(dec.finish(&mut out), Err(Error::Integrity(_))));
        assert_eq!(out, b"prefix");
    }

    // ---- Fixed test vector (docs/format.md, "Test vector") ----
    //
    // cipher AES-256-GCM, key material = bytes 0x00..=0x1f, key tag = bytes
    // 0x10..=0x1f, salt = bytes 0x40..=0x5f, chunk size 64, aad =
    // b"backup-42", plaintext = the 22 bytes b"keystate test vector: "
    // repeated and cut to 100 bytes (4 whole copies then "keystate tes").

    const VECTOR_SUBKEY: &str = "e40bce2153f1dec0c6b05ceba4a8d92b7bd4237817697b92ffc668f8e552c680";
    const VECTOR_CIPHERTEXT: &str = concat!(
        // header: magic, version 1, cipher 1, reserved, chunk size 64, key tag, salt
        "4b535444",
        "01",
        "01",
        "0000",
        "40000000",
        "101112131415161718191a1b1c1d1e1f",
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f",
        // chunk 0: 64 ciphertext bytes, then its tag
        "8f3901a428df244834b7c87d7a80b3fa5d5104046819a9db96fb41a693457674",
        "e55a192b0901e116d12dc0aeb24bb83eacb105e465636a555eb162a846ac7b57",
        "8367673d1182dbbe2e07a5d0db2d1c33",
        // chunk 1 (final): 36 ciphertext bytes, then its tag
        "d472edee9a20fb69c0ed70e77e8464b0094878c2dac8402caa0d845ed49797bc",
        "d38022ef",
        "a3c6d89441840337aa04fbfe1a0b05ea",
    );

    fn vector_inputs() -> ([u8; 32], Tag, [u8; 32], Vec<u8>) {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let tag = Tag(core::array::from_fn(|i| 0x10 + i as u8));
        let salt: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
        let pt: Vec<u8> = b"keystate test vector: ".iter().copied().cycle().take(100).collect();
        (key, tag, salt, pt)
    }

    #[test]
    fn fixed_test_vector() {
        use aes_gcm::aead::{Aead, Payload};
        let (key, tag, salt, pt) = vector_inputs();
        assert_eq!(&pt[88..], b"keystate tes");
        let ct = seal(Cipher::Aes256Gcm, &key, tag, salt, 64, b"backup-42", &pt).unwrap();
        let code_subkey = Subkey::derive(Cipher::Aes256Gcm, &key, ct[..60].try_into().unwrap());
        assert_eq!(hex(code_subkey.as_bytes()), VECTOR_SUBKEY);
        assert_eq!(ct.len(), 60 + (64 + 16) + (36 + 16));
        assert_eq!(hex(&ct), VECTOR_CIPHERTEXT);

        // Independently: HKDF subkey and AES-GCM of chunks 0 and 1 with explicit nonces.
        let header = &ct[..60];
        let mut info = b"keystate/data/v1".to_vec();
        info.extend_from_slice(header);
        let mut subkey = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&salt), &key).expand(&info, &mut subkey).unwrap();
        assert_eq!(hex(&subkey), VECTOR_SUBKEY);
        let aead = Aes256Gcm::new_from_slice(&subkey).unwrap();
        let nonce0 = [0, 0, 0, 0, 0, 0, 0, /* counter */ 0, 0, 0, 0, /* last */ 0];
        let chunk0 =
            aead.encrypt(aes_gcm::Nonce::from_slice(&nonce0), Payload { msg: &pt[..64], aad: b"backup-42" }).unwrap();
        assert_eq!(&ct[60..60 + 80], &chunk0[..]);
        let nonce1 = [0, 0, 0, 0, 0, 0, 0, /* counter */ 0, 0, 0, 1, /* last */ 1];
        let chunk1 =
            aead.encrypt(aes_gcm::Nonce::from_slice(&nonce1), Payload { msg: &pt[64..], aad: b"backup-42" }).unwrap();
        assert_eq!(&ct[140..], &chunk1[..]);

        let mut resolve = |h: &Header| {
            assert_eq!(h.key_tag, tag);
            Ok(Zeroizing::new(key))
        };
        assert_eq!(open(&ct, b"backup-42", &mut resolve).unwrap(), pt);
    }
}
