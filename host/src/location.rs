//! Worker locations (10.2.6.3 "the worker's URL"), resolved as capabilities.
//!
//! A guest names the components it spawns, and the shared workers it connects to, by
//! locations relative to its own component's directory. That directory is held as an open
//! file descriptor ([`ComponentDir`]), and a location is opened beneath it with `openat2`
//! and `RESOLVE_BENEATH`: the kernel refuses every way out — `..`, an absolute path, a
//! symbolic link that points outside (one the guest made itself in a directory it was granted,
//! say), a `/proc` magic link — even if the tree changes while the path is walked. Only a
//! regular file of at most the host's largest component is read, and errors never quote what
//! a file holds.
//!
//! Components the host program loads by path ([`crate::Host::load`]) are the program's own
//! choice: their path is followed as given, but they too must be regular files of bounded
//! size (`wasm-workers run /dev/zero` is refused, not read without end).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component as Part, Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::LoadError;

/// The default of [`HostConfig::max_component_size`](crate::HostConfig::max_component_size):
/// 256 MiB (a JavaScript or Python component is 12–20 MB).
pub const DEFAULT_MAX_COMPONENT_SIZE: u64 = 256 << 20;

/// The directory a component was loaded from, open: the root of what its workers may name.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ComponentDir(Arc<OwnedFd>);

/// A file's identity, for the host's map of loaded components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileId(u64, u64, u64, i64, i64);

/// A component file, opened and checked, not yet read.
pub(crate) struct Opened {
    file: File,
    /// The canonical path of the file actually opened (from its descriptor, so that no
    /// rename or link swapped after the open can change it).
    pub(crate) key: PathBuf,
    /// What the file is, whatever its name: device, inode, size and modification time (a
    /// hard link is the same file; a rewritten one is not).
    pub(crate) id: FileId,
    len: u64,
    /// The location as given, for errors.
    location: String,
}

impl ComponentDir {
    /// Opens the directory at `path` (the host's own choice: a loaded component's directory).
    pub(crate) fn open(path: &Path) -> std::io::Result<ComponentDir> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(ComponentDir(Arc::new(fd)))
    }

    /// Opens the component at `relative` beneath this directory.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] if `relative` is not a plain relative path, leads outside this
    /// directory (through `..` or any link), cannot be opened, or is not a regular file;
    /// [`LoadError::TooLarge`] if it is larger than `max_len`.
    pub(crate) fn open_component(&self, relative: &str, location: &str, max_len: u64) -> Result<Opened, LoadError> {
        let read_error = |source| LoadError::Read { location: location.to_string(), source };
        let path = plain_relative(relative).map_err(read_error)?;
        let fd = rustix::fs::openat2(
            self.0.as_fd(),
            path,
            // Non-blocking, so that a FIFO cannot hold the opening thread; refused below anyway.
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|errno| read_error(beneath_error(errno)))?;
        Opened::check(File::from(fd), location, max_len)
    }

    /// Opens the directory that really holds the component whose canonical path is `key`
    /// (found beneath this directory, perhaps through links), beneath this directory: the
    /// directory of that component's workers, whoever loads it first.
    pub(crate) fn open_parent_of(&self, key: &Path) -> std::io::Result<ComponentDir> {
        let outside =
            || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "it is not beneath the worker's directory");
        let this = std::fs::read_link(format!("/proc/self/fd/{}", self.0.as_raw_fd()))?;
        let parent = key.parent().ok_or_else(outside)?.strip_prefix(&this).map_err(|_| outside())?;
        let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
        let fd = rustix::fs::openat2(
            self.0.as_fd(),
            parent,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(beneath_error)?;
        Ok(ComponentDir(Arc::new(fd)))
    }
}

/// Opens a component the host program names by path.
///
/// # Errors
///
/// [`LoadError::Read`] if it cannot be opened or is not a regular file;
/// [`LoadError::TooLarge`] if it is larger than `max_len`.
pub(crate) fn open_host_path(path: &Path, max_len: u64) -> Result<Opened, LoadError> {
    let location = path.display().to_string();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| LoadError::Read { location: location.clone(), source })?;
    Opened::check(file, &location, max_len)
}

impl Opened {
    fn check(file: File, location: &str, max_len: u64) -> Result<Opened, LoadError> {
        let read_error = |source| LoadError::Read { location: location.to_string(), source };
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() {
            return Err(LoadError::NotAFile { location: location.to_string() });
        }
        if metadata.len() > max_len {
            return Err(LoadError::TooLarge { location: location.to_string(), len: metadata.len(), limit: max_len });
        }
        let key = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(read_error)?;
        use std::os::unix::fs::MetadataExt;
        let id = FileId(metadata.dev(), metadata.ino(), metadata.len(), metadata.mtime(), metadata.mtime_nsec());
        Ok(Opened { file, key, id, len: metadata.len(), location: location.to_string() })
    }

    /// Reads the file, at most the length it had when it was checked (a file that grows
    /// meanwhile is refused rather than read on).
    pub(crate) fn read(mut self) -> Result<Vec<u8>, LoadError> {
        let mut bytes = Vec::new();
        let read_error = |source| LoadError::Read { location: self.location.clone(), source };
        bytes.try_reserve_exact(self.len as usize).map_err(|_| read_error(std::io::ErrorKind::OutOfMemory.into()))?;
        (&mut self.file).take(self.len + 1).read_to_end(&mut bytes).map_err(read_error)?;
        if bytes.len() as u64 > self.len {
            return Err(LoadError::TooLarge { location: self.location, len: bytes.len() as u64, limit: self.len });
        }
        Ok(bytes)
    }
}

/// `location` as a path that names something beneath a directory: relative, without `..`.
/// (The kernel refuses the others too; this says why in words.)
fn plain_relative(location: &str) -> std::io::Result<&Path> {
    let path = Path::new(location);
    if location.is_empty() || path.components().any(|part| !matches!(part, Part::Normal(_) | Part::CurDir)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a location must be relative to the worker's directory, without `..`",
        ));
    }
    Ok(path)
}

/// The error of an `openat2` beneath a directory, in words.
fn beneath_error(errno: rustix::io::Errno) -> std::io::Error {
    match errno {
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "it leads outside the worker's directory (through `..`, an absolute path or a link)",
        ),
        rustix::io::Errno::NOSYS => std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel cannot open a path beneath a directory (openat2, Linux 5.6): locations are refused",
        ),
        errno => errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_out_of_the_directory_is_refused_and_one_inside_is_followed() {
        let root = tempfile::tempdir().unwrap();
        let inner = root.path().join("inner");
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(root.path().join("secret.wasm"), b"SECRET-BYTES").unwrap();
        std::fs::write(inner.join("a.wasm"), b"inside").unwrap();
        std::os::unix::fs::symlink("..", inner.join("up")).unwrap();
        std::os::unix::fs::symlink("/", inner.join("root")).unwrap();
        std::os::unix::fs::symlink("a.wasm", inner.join("alias.wasm")).unwrap();
        let dir = ComponentDir::open(&inner).unwrap();
        for escape in ["up/secret.wasm", "root/etc/passwd", "../secret.wasm", "/etc/passwd", ""] {
            let error = dir.open_component(escape, escape, 1 << 20).err().unwrap_or_else(|| panic!("{escape} opened"));
            assert!(!error.to_string().contains("SECRET"), "{escape}: {error}");
            assert!(matches!(error, LoadError::Read { .. }), "{escape}: {error}");
        }
        let alias = dir.open_component("alias.wasm", "alias.wasm", 1 << 20).unwrap();
        assert_eq!(alias.key, inner.join("a.wasm").canonicalize().unwrap());
        assert!(dir.open_parent_of(&alias.key).is_ok());
        assert!(dir.open_parent_of(&root.path().canonicalize().unwrap().join("secret.wasm")).is_err());
        assert_eq!(alias.read().unwrap(), b"inside");
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        std::fs::write(root.path().join("big.wasm"), vec![0; 100]).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.path().join("zero.wasm")).unwrap();
        let dir = ComponentDir::open(root.path()).unwrap();
        assert!(matches!(dir.open_component("sub", "sub", 1000), Err(LoadError::NotAFile { .. })));
        assert!(matches!(dir.open_component("big.wasm", "big.wasm", 99), Err(LoadError::TooLarge { .. })));
        assert!(matches!(dir.open_component("zero.wasm", "zero.wasm", 99), Err(LoadError::Read { .. })));
        assert!(matches!(open_host_path(Path::new("/dev/zero"), 1 << 20), Err(LoadError::NotAFile { .. })));
    }
}
