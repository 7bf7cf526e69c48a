//! One large message spread over several sandboxes. The data format seals
//! chunk `i` with a nonce made from `i` alone, so runs of chunks can be sealed
//! or opened by different component instances at once (`seal-chunks`,
//! `open-chunks`) and joined in order: the bytes are those one instance would
//! write. All crypto stays inside the component; this module only cuts the
//! input at chunk boundaries, hands out runs and puts the results back in order.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::sandbox::Guest;

/// Plaintext bytes one call into a sandbox handles at most: bounds each
/// instance's memory and sets the grain of the work sharing.
pub(crate) const RUN_BYTES: usize = 1 << 20;

/// The data format's header (docs/format.md): its length, where it keeps the
/// chunk size, the bounds of that size, and the tag ending every chunk.
pub(crate) const HEADER_LEN: usize = 60;
const CHUNK_SIZE_AT: usize = 8;
const CHUNK_SIZES: std::ops::RangeInclusive<usize> = 64..=16 << 20;
const TAG_LEN: usize = 16;

/// A message being sealed or opened: its header, associated data, and chunk size.
pub(crate) struct Message<'a> {
    pub header: &'a [u8],
    pub aad: &'a [u8],
    chunk_size: usize,
}

impl<'a> Message<'a> {
    /// `None` when the header is too short or its chunk size out of range:
    /// the component then explains what is wrong with it.
    pub fn new(header: &'a [u8], aad: &'a [u8]) -> Option<Message<'a>> {
        let size = header.get(CHUNK_SIZE_AT..CHUNK_SIZE_AT + 4)?;
        let chunk_size = u32::from_le_bytes(size.try_into().ok()?) as usize;
        (header.len() == HEADER_LEN && CHUNK_SIZES.contains(&chunk_size)).then_some(Message { header, aad, chunk_size })
    }

    /// Chunks per run: as many whole chunks as fit in RUN_BYTES (at least one).
    fn run_chunks(&self) -> usize {
        (RUN_BYTES / self.chunk_size).max(1)
    }

    /// Plaintext bytes of the runs `seal` cuts.
    pub fn plain_run(&self) -> usize {
        self.run_chunks() * self.chunk_size
    }

    /// Sealed bytes of the runs `open` cuts.
    pub fn sealed_run(&self) -> usize {
        self.run_chunks() * (self.chunk_size + TAG_LEN)
    }

    /// Whole chunks in `len` bytes of plaintext.
    pub fn whole_plain_chunks(&self, len: usize) -> u64 {
        (len / self.chunk_size) as u64
    }

    /// Whole sealed chunks in `len` bytes of ciphertext.
    pub fn whole_sealed_chunks(&self, len: usize) -> u64 {
        (len / (self.chunk_size + TAG_LEN)) as u64
    }

    /// Seal `plaintext` as chunks `first, first + 1, ...`: whole chunks, and
    /// the final (shorter, maybe empty) chunk too when `last`.
    pub fn seal(&self, guests: &mut [&mut Guest], first: u64, plaintext: &[u8], last: bool) -> Result<Vec<u8>> {
        let capacity = plaintext.len() + (plaintext.len() / self.chunk_size + 1) * TAG_LEN;
        self.spread(guests, first, plaintext, self.plain_run(), last, capacity, &|g, first, run, last| {
            g.seal_chunks(self.header, self.aad, first, run, last)
        })
    }

    /// Open sealed chunks `first, first + 1, ...`: whole chunks, and the
    /// final chunk too when `last`.
    pub fn open(&self, guests: &mut [&mut Guest], first: u64, sealed: &[u8], last: bool) -> Result<Vec<u8>> {
        self.spread(guests, first, sealed, self.sealed_run(), last, sealed.len(), &|g, first, run, last| {
            g.open_chunks(self.header, self.aad, first, run, last)
        })
    }

    /// Cut `input` into runs of `run_len` bytes (the last run takes the rest,
    /// maybe nothing, and is the final one when `last`), give each guest a
    /// contiguous share of the runs, and join the outputs in order. On error,
    /// the error of the earliest failing run, as one instance would report it.
    #[allow(clippy::too_many_arguments)]
    fn spread(
        &self,
        guests: &mut [&mut Guest],
        first: u64,
        input: &[u8],
        run_len: usize,
        last: bool,
        capacity: usize,
        call: &(dyn Fn(&mut Guest, u64, &[u8], bool) -> Result<Vec<u8>> + Sync),
    ) -> Result<Vec<u8>> {
        let runs = if last { input.len() / run_len + 1 } else { input.len().div_ceil(run_len) };
        let run = |i: usize| {
            (
                first + (i * self.run_chunks()) as u64,
                &input[i * run_len..((i + 1) * run_len).min(input.len())],
                last && i + 1 == runs,
            )
        };
        let workers = guests.len().min(runs).max(1);
        // Runs after the earliest failure so far are skipped; earlier ones still run.
        let failed_at = AtomicUsize::new(usize::MAX);
        let work = |guest: &mut Guest, share: std::ops::Range<usize>| -> Vec<(usize, Result<Vec<u8>>)> {
            let mut done = Vec::with_capacity(share.len());
            for i in share {
                if i > failed_at.load(Ordering::Relaxed) {
                    break;
                }
                let (index, bytes, is_last) = run(i);
                let result = call(guest, index, bytes, is_last);
                if result.is_err() {
                    failed_at.fetch_min(i, Ordering::Relaxed);
                }
                done.push((i, result));
            }
            done
        };
        let share = |w: usize| w * runs / workers..(w + 1) * runs / workers;
        let mut results: Vec<(usize, Result<Vec<u8>>)> = std::thread::scope(|scope| {
            let (mine, others) = guests.split_first_mut().expect("at least one guest");
            let handles: Vec<_> = others[..workers - 1]
                .iter_mut()
                .enumerate()
                .map(|(w, guest)| {
                    let work = &work;
                    scope.spawn(move || work(guest, share(w + 1)))
                })
                .collect();
            let mut results = work(mine, share(0));
            for handle in handles {
                results.extend(handle.join().unwrap_or_else(|_| {
                    vec![(usize::MAX, Err(Error::new(ErrorKind::Internal, "a data worker thread panicked")))]
                }));
            }
            results
        });
        results.sort_by_key(|(i, _)| *i);
        let mut out = Vec::with_capacity(capacity);
        for (_, result) in results {
            out.extend_from_slice(&result?);
        }
        Ok(out)
    }
}
