//! A sealed split read from its bundle in object storage: a read-only tantivy
//! [`Directory`] whose files are byte ranges of one object.
//!
//! tantivy asks for ranges of its files (a term dictionary block, a posting list, a
//! doc store block); each becomes a ranged read of the bundle through the storage's
//! block cache, so a query fetches only what it touches and a warm query reads local
//! disk. tantivy's reads are synchronous and run on the query's blocking thread; each
//! waits there for its read on the Tokio runtime, as the remote-read client does.
//!
//! Nothing is ever written: a sealed split does not change, so writes, deletes and
//! watches are refused or inert, and the lock tantivy takes while loading the index
//! metadata has nothing to exclude.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{
    DirectoryLock, FileHandle, Lock, OwnedBytes, WatchCallback, WatchHandle, WritePtr,
};
use tantivy::{Directory, HasLen};
use triad_storage::bundle::Bundle;

/// A bundle as a read-only tantivy directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BundleDirectory {
    bundle: Arc<Bundle>,
    handle: tokio::runtime::Handle,
}

/// Runs `f` to completion from synchronous code: on a runtime worker it first moves the
/// worker's other tasks away (`block_in_place`), elsewhere (a blocking-pool thread, a
/// plain thread) it simply waits.
fn wait<T>(handle: &tokio::runtime::Handle, f: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| handle.block_on(f))
        }
        _ => handle.block_on(f),
    }
}

impl BundleDirectory {
    /// A directory over `bundle`, reading on `handle`'s runtime.
    pub fn new(bundle: Bundle, handle: tokio::runtime::Handle) -> Self {
        BundleDirectory {
            bundle: Arc::new(bundle),
            handle,
        }
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    fn read(&self, name: &str, range: Range<u64>) -> io::Result<bytes::Bytes> {
        wait(&self.handle, self.bundle.read(name, range)).map_err(io::Error::from)
    }
}

fn name_of(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn read_only(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: a sealed split is read-only", path.display()),
    )
}

/// Bytes read from the bundle as tantivy's `OwnedBytes`, without a copy: a cached
/// block's slice is handed over as it is.
struct Shared(bytes::Bytes);

impl std::ops::Deref for Shared {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

// SAFETY: `Bytes` derefs to a heap (or static) buffer that does not move when the
// `Bytes` value moves and is never mutated while shared, which is what `StableDeref`
// requires.
unsafe impl stable_deref_trait::StableDeref for Shared {}

/// One file of the bundle.
#[derive(Debug)]
struct BundleFile {
    dir: BundleDirectory,
    name: String,
    len: usize,
}

impl HasLen for BundleFile {
    fn len(&self) -> usize {
        self.len
    }
}

impl FileHandle for BundleFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        let bytes = self
            .dir
            .read(&self.name, range.start as u64..range.end as u64)?;
        Ok(OwnedBytes::new(Shared(bytes)))
    }
}

impl Directory for BundleDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        let name = name_of(path);
        let range = self
            .bundle
            .file(name)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))?;
        Ok(Arc::new(BundleFile {
            dir: self.clone(),
            name: name.to_string(),
            len: (range.end - range.start) as usize,
        }))
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: Arc::new(read_only(path)),
            filepath: path.to_path_buf(),
        })
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        Ok(self.bundle.file(name_of(path)).is_some())
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        Err(OpenWriteError::IoError {
            io_error: Arc::new(read_only(path)),
            filepath: path.to_path_buf(),
        })
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        let name = name_of(path);
        let range = self
            .bundle
            .file(name)
            .ok_or_else(|| OpenReadError::FileDoesNotExist(path.to_path_buf()))?;
        self.read(name, 0..range.end - range.start)
            .map(|b| b.to_vec())
            .map_err(|e| OpenReadError::wrap_io_error(e, PathBuf::from(path)))
    }

    fn atomic_write(&self, path: &Path, _data: &[u8]) -> io::Result<()> {
        Err(read_only(path))
    }

    fn sync_directory(&self) -> io::Result<()> {
        Ok(())
    }

    fn acquire_lock(&self, _lock: &Lock) -> Result<DirectoryLock, LockError> {
        Ok(DirectoryLock::from(Box::new(())))
    }

    fn watch(&self, _callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        Ok(WatchHandle::empty())
    }
}
