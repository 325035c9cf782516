//! [`Bytes`]: a received message's data, shared with the burst it arrived in rather than copied.

use std::fmt;
use std::ops::{Deref, Range};
use std::rc::Rc;

/// How many bytes may follow a view in its list for [`Bytes::into_vec`] to move the list out
/// rather than copy the view: the header of a burst of one message, and its count, fit; the
/// other messages of a burst, which the moved-out vector would keep allocated, do not.
const MOVE_SLACK: usize = 64;

/// The bytes of a received message: a view of the burst of messages they arrived in.
///
/// The host delivers the messages queued for a worker together, their bytes back to back in
/// one list (see `message-burst` in the WIT). A `Bytes` keeps that list alive and names its
/// own range, so receiving a message copies nothing; cloning one is a reference count. It
/// reads as a `&[u8]` ([`Deref`]); [`into_vec`](Self::into_vec) gives an owned `Vec<u8>`,
/// without copying when this is the only view of a whole list (a message that arrived alone).
///
/// Keeping a `Bytes` keeps its whole burst's list alive (at most the few hundred messages
/// delivered with it); [`to_vec`](<[u8]>::to_vec) the bytes to keep only those.
#[derive(Clone, Default)]
pub struct Bytes {
    list: Rc<Vec<u8>>,
    range: Range<usize>,
}

impl Bytes {
    /// The bytes `range` of `list`, sharing it. Out-of-bounds ranges are cut to the list.
    pub(crate) fn shared(list: &Rc<Vec<u8>>, range: Range<usize>) -> Self {
        Bytes::within(list.clone(), range)
    }

    /// The bytes `range` of `list`, taking this reference to it.
    pub(crate) fn within(list: Rc<Vec<u8>>, range: Range<usize>) -> Self {
        let end = range.end.min(list.len());
        let start = range.start.min(end);
        Bytes { list, range: start..end }
    }

    /// The bytes as an owned vector: moved out when this is the only view of its list and
    /// starts it (a message that arrived alone: what follows it in its list, the burst's
    /// few header bytes, is cut off), copied otherwise.
    pub fn into_vec(self) -> Vec<u8> {
        let prefix = self.range.start == 0 && self.list.len() - self.range.end <= MOVE_SLACK;
        match Rc::try_unwrap(self.list) {
            Ok(mut list) if prefix => {
                list.truncate(self.range.end);
                list
            }
            Ok(list) => list[self.range].to_vec(),
            Err(list) => list[self.range].to_vec(),
        }
    }
}

impl Deref for Bytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.list[self.range.clone()]
    }
}

impl AsRef<[u8]> for Bytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(list: Vec<u8>) -> Self {
        let range = 0..list.len();
        Bytes { list: Rc::new(list), range }
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Self {
        bytes.into_vec()
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Bytes {}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_share_one_list() {
        let list = Rc::new(vec![1, 2, 3, 4, 5]);
        let first = Bytes::shared(&list, 0..2);
        let rest = Bytes::shared(&list, 2..5);
        assert_eq!(&*first, &[1, 2]);
        assert_eq!(&*rest, &[3, 4, 5]);
        assert_eq!(Rc::strong_count(&list), 3);
        assert_eq!(first.into_vec(), vec![1, 2], "copied: the list is shared");
        assert_eq!(Bytes::within(list, 9..12).len(), 0, "cut to the list");
    }

    #[test]
    fn the_only_view_of_a_whole_list_moves_out() {
        let list = vec![7u8; 1024];
        let at = list.as_ptr();
        let bytes = Bytes::from(list);
        assert_eq!(bytes.clone(), bytes);
        let list = bytes.into_vec();
        assert_eq!(list.as_ptr(), at, "moved, not copied");
    }

    #[test]
    fn the_only_view_of_a_lists_start_moves_out_unless_much_follows_it() {
        let list = vec![7u8; 1024 + 24];
        let at = list.as_ptr();
        let bytes = Bytes::within(Rc::new(list), 0..1024);
        let moved = bytes.into_vec();
        assert_eq!((moved.as_ptr(), moved.len()), (at, 1024), "moved, and cut to the view");
        let list = vec![7u8; 4096];
        let at = list.as_ptr();
        let copied = Bytes::within(Rc::new(list), 0..1024).into_vec();
        assert_ne!(copied.as_ptr(), at, "copied: the rest of the list is not kept for it");
        assert_eq!(copied, vec![7u8; 1024]);
        let list = vec![7u8; 1024];
        let at = list.as_ptr();
        let copied = Bytes::within(Rc::new(list), 1..1024).into_vec();
        assert_ne!(copied.as_ptr(), at, "not the list's start: copied");
    }
}
