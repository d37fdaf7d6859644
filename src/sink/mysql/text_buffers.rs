//! Reused buffers for the `LOAD DATA` text of a lane's batches.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers kept for reuse: a streamed load has at most this many pieces alive at once
/// (the infile channel's 4, the one being written, the one being encoded).
const KEEP: usize = 6;
/// A buffer larger than this (a spec's batch of tens of thousands of rows) is freed
/// rather than kept, so an idle lane never holds more than `KEEP` times this.
const KEEP_BYTES: usize = 4 << 20;

/// A lane's text buffers. A batch's text (~330 KB for 1,000 rows of 33 columns) used to
/// be a fresh allocation each time, on pages the allocator had handed back to the OS:
/// the kernel zeroing them again was a seventh of the insert writer's CPU.
#[derive(Clone, Default)]
pub(super) struct TextBuffers(Arc<Mutex<Vec<Vec<u8>>>>);

impl TextBuffers {
    /// An empty buffer with room for `capacity` bytes, reused when one came back.
    pub(super) fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = match self.0.lock() {
            Ok(mut kept) => kept.pop(),
            // A panic while holding this lock loses nothing but reuse.
            Err(_) => None,
        };
        let mut buffer = reused.unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }

    /// `text` as bytes whose buffer comes back here once the last copy is dropped (when
    /// the connection has written it, or a retained chunk committed).
    pub(super) fn share(&self, text: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returning {
            text,
            home: self.clone(),
        })
    }

    fn give_back(&self, mut text: Vec<u8>) {
        if text.capacity() > KEEP_BYTES {
            return;
        }
        text.clear();
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() < KEEP {
                kept.push(text);
            }
        }
    }
}

/// The owner behind a shared piece of text: hands its buffer back when dropped.
struct Returning {
    text: Vec<u8>,
    home: TextBuffers,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.text
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_copy_is_dropped() {
        let buffers = TextBuffers::default();
        let mut text = buffers.take(1000);
        text.extend_from_slice(b"a\tb\n");
        let address = text.as_ptr();
        let piece = buffers.share(text);
        let copy = piece.clone();
        assert_eq!(&piece[..], b"a\tb\n");
        drop(piece);
        // Still referenced: a new buffer.
        let other = buffers.take(10);
        assert_ne!(other.as_ptr(), address);
        drop(copy);
        let again = buffers.take(10);
        assert_eq!(again.as_ptr(), address, "the same allocation, reused");
        assert!(again.is_empty());
        assert!(again.capacity() >= 1000);
    }

    #[test]
    fn only_a_few_modest_buffers_are_kept() {
        let buffers = TextBuffers::default();
        let pieces: Vec<Bytes> = (0..KEEP + 3)
            .map(|_| buffers.share(buffers.take(100)))
            .collect();
        drop(pieces);
        assert_eq!(buffers.0.lock().map(|kept| kept.len()).unwrap_or(0), KEEP);
        drop(buffers.share(Vec::with_capacity(KEEP_BYTES + 1)));
        assert_eq!(buffers.0.lock().map(|kept| kept.len()).unwrap_or(0), KEEP);
    }
}
