//! Transferable buffers (the chapter's transferable `ArrayBuffer`): host-owned bytes that move
//! between workers by ownership, never by copy.
//!
//! A buffer lives in the host. A worker holds it as a `buffer` resource; putting it in a
//! message moves the [`Buffer`] value (a pointer, a length and a capacity) from the sender's
//! resource table into the message and then into the receiver's table. Its bytes are copied
//! only when a guest calls `read`, `write` or `from-bytes`; the host counts those copies
//! ([`Host::buffer_bytes_copied`](crate::Host::buffer_bytes_copied)).

use std::fmt;

use crate::budget::Charge;

/// A transferable byte buffer.
pub struct Buffer {
    bytes: Vec<u8>,
    /// Its share of its holder's budget (nobody's while the host program holds it).
    pub(crate) charge: Charge,
}

/// A buffer operation that cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The length is over the host's limit, or the memory cannot be had.
    #[error("cannot allocate a buffer of {len} bytes: {why}")]
    Allocation {
        /// The length asked for.
        len: u64,
        /// Why not.
        why: &'static str,
    },
    /// A range outside the buffer.
    #[error("range {offset}..{end} is outside a buffer of {len} bytes")]
    OutOfRange {
        /// Start of the range.
        offset: u64,
        /// End of the range (saturating).
        end: u64,
        /// The buffer's length.
        len: u64,
    },
}

impl Buffer {
    /// A zero-filled buffer of `len` bytes, at most `max_len`. The memory is zeroed lazily by
    /// the operating system, so a large buffer costs nothing until it is touched.
    ///
    /// # Errors
    ///
    /// [`BufferError::Allocation`] if `len` is over `max_len` or the allocation fails.
    pub fn zeroed(len: u64, max_len: u64) -> Result<Buffer, BufferError> {
        if len > max_len {
            return Err(BufferError::Allocation { len, why: "over the host's limit" });
        }
        let size = usize::try_from(len).map_err(|_| BufferError::Allocation { len, why: "over the address space" })?;
        if size == 0 {
            return Ok(Buffer::from_vec(Vec::new()));
        }
        let layout = std::alloc::Layout::array::<u8>(size)
            .map_err(|_| BufferError::Allocation { len, why: "over the address space" })?;
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(BufferError::Allocation { len, why: "out of memory" });
        }
        // SAFETY: `ptr` was allocated by the global allocator with the layout of `size` bytes
        // (`u8` has size and alignment 1), and all `size` bytes are initialised (zeroed).
        let bytes = unsafe { Vec::from_raw_parts(ptr, size, size) };
        Ok(Buffer::from_vec(bytes))
    }

    /// A buffer that takes `bytes` as they are, without copying.
    pub fn from_vec(bytes: Vec<u8>) -> Buffer {
        let charge = Charge::unplaced(bytes.len() as u64);
        Buffer { bytes, charge }
    }

    /// The length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, to change them in place.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The bytes, taken out of the buffer.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// The range `offset..offset + len`, checked.
    pub(crate) fn range(&self, offset: u64, len: u64) -> Result<std::ops::Range<usize>, BufferError> {
        let end = offset.saturating_add(len);
        if end > self.len() {
            return Err(BufferError::OutOfRange { offset, end, len: self.len() });
        }
        Ok(offset as usize..end as usize)
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer").field("len", &self.bytes.len()).field("at", &self.bytes.as_ptr()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_respects_the_limit() {
        assert!(Buffer::zeroed(10, 5).is_err());
        let buffer = Buffer::zeroed(5, 5).unwrap();
        assert_eq!(buffer.as_slice(), &[0; 5]);
    }

    #[test]
    fn ranges_are_checked() {
        let buffer = Buffer::from_vec(vec![1, 2, 3]);
        assert_eq!(buffer.range(1, 2).unwrap(), 1..3);
        assert!(buffer.range(2, 2).is_err());
        assert!(buffer.range(u64::MAX, 2).is_err());
    }
}
