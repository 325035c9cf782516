//! Transferable buffers (the chapter's transferable `ArrayBuffer`).

#[allow(unused_imports)]
use crate::*;

/// A byte buffer owned by the host, transferable without copying (a transferable
/// `ArrayBuffer`).
///
/// Reading and writing copy bytes between the host and this worker's memory; passing a
/// buffer on in a [`Transfer`] copies nothing — the zero-copy path for data that only passes
/// through. Clones are the same buffer; a transferred buffer is detached here: its length is 0
/// and reads and writes fail.
#[derive(Clone)]
pub struct Buffer(pub(crate) Rc<RefCell<Option<types::Buffer>>>);

impl Buffer {
    /// A zero-filled buffer of `len` bytes (`new ArrayBuffer(len)`).
    ///
    /// # Errors
    ///
    /// If `len` is over the host's limit or the memory cannot be had.
    pub fn new(len: u64) -> Result<Buffer, String> {
        types::Buffer::create(len).map(Buffer::from_handle)
    }

    /// A buffer holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Buffer {
        Buffer::from_handle(types::Buffer::from_bytes(bytes))
    }

    pub(crate) fn from_handle(handle: types::Buffer) -> Buffer {
        Buffer(Rc::new(RefCell::new(Some(handle))))
    }

    /// The length in bytes; 0 once transferred away (`byteLength` of a detached buffer).
    pub fn len(&self) -> u64 {
        self.0.borrow().as_ref().map_or(0, |b| b.len())
    }

    /// Whether the length is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the buffer was transferred away.
    pub fn is_detached(&self) -> bool {
        self.0.borrow().is_none()
    }

    /// Copies `len` bytes from `offset` out of the buffer.
    ///
    /// # Errors
    ///
    /// If the range is outside the buffer, or the buffer was transferred away.
    pub fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        match &*self.0.borrow() {
            Some(buffer) => buffer.read(offset, len),
            None => Err(PostError::Detached.to_string()),
        }
    }

    /// Copies the whole buffer out.
    ///
    /// # Errors
    ///
    /// If the buffer was transferred away.
    pub fn read_all(&self) -> Result<Vec<u8>, String> {
        self.read(0, self.len())
    }

    /// Copies `bytes` into the buffer at `offset`.
    ///
    /// # Errors
    ///
    /// If the range is outside the buffer, or the buffer was transferred away.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<(), String> {
        match &*self.0.borrow() {
            Some(buffer) => buffer.write(offset, bytes),
            None => Err(PostError::Detached.to_string()),
        }
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer").field("len", &self.len()).field("detached", &self.is_detached()).finish()
    }
}
