//! The sealing layer under LanceDB: an [`ObjectStore`] that seals every file a collection's
//! tables write and opens every file they read, in 64 KiB segments
//! (`bear_security::crypto::segment`), and the [`WrappingObjectStore`] that puts it under Lance.
//!
//! All of Lance's reads and writes pass through it (data, manifests, transactions, deletion
//! files, every index), so nothing of a sealed collection reaches the disk or an object store
//! in the clear. It reports plaintext sizes (in `head`, listings and gets), maps a range read
//! to the segments it touches, keeps conditional puts (Lance's commit protocol) by passing put
//! modes through, and streams multipart uploads segment by segment. Files are named in the AAD
//! by their path below the collection's directory, so a collection can be moved or backed up
//! but a file cannot be swapped for another.

use std::fmt;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bear_security::FileKeys;
use bear_security::crypto::segment::{self, FileCipher, HEADER_LEN, SEGMENT};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use lance_io::object_store::WrappingObjectStore;
use lru::LruCache;
use object_store::list::PaginatedListStore;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, UploadPart,
};

use super::segments;

/// Sealed bytes a multipart upload gathers before it passes a part on (S3's smallest part).
const MIN_PART: usize = 5 * 1024 * 1024;
/// Files whose header and sizes are remembered.
const KNOWN_FILES: usize = 4096;
const STORE: &str = "BearSealed";

/// Puts [`SealedStore`] under Lance for one collection.
#[derive(Debug)]
pub struct Sealing {
    keys: FileKeys,
    root: Path,
}

impl Sealing {
    /// Seals with `keys`; files are named relative to `root` (the collection's directory as
    /// the wrapped store addresses it).
    pub fn new(keys: FileKeys, root: Path) -> Self {
        Self { keys, root }
    }

    /// The keys it seals with.
    pub fn keys(&self) -> &FileKeys {
        &self.keys
    }
}

impl WrappingObjectStore for Sealing {
    fn wrap(&self, _prefix: &str, original: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(SealedStore::new(
            original,
            self.keys.clone(),
            self.root.clone(),
        ))
    }

    // A pushed-down listing would report sealed sizes: listings go through `wrap` instead.
    fn wrap_paginated(
        &self,
        _prefix: &str,
        _original: Arc<dyn PaginatedListStore>,
    ) -> Option<Arc<dyn PaginatedListStore>> {
        None
    }
}

/// What is known of one sealed file: its identity, sizes and cipher.
struct Known {
    /// The sealed file's metadata, as the wrapped store reports it.
    meta: ObjectMeta,
    plain: u64,
    cipher: Arc<FileCipher>,
    /// This opened version's key in the segment cache.
    version: u64,
}

impl Known {
    fn new(meta: ObjectMeta, plain: u64, cipher: FileCipher) -> Self {
        Self {
            meta,
            plain,
            cipher: Arc::new(cipher),
            version: segments::new_version(),
        }
    }

    /// The file's metadata with its plaintext size.
    fn plain_meta(&self) -> ObjectMeta {
        ObjectMeta {
            size: self.plain,
            ..self.meta.clone()
        }
    }
}

/// An object store whose every object is a segmented sealed file.
pub struct SealedStore {
    inner: Arc<dyn ObjectStore>,
    keys: FileKeys,
    root: Path,
    known: Mutex<LruCache<Path, Arc<Known>>>,
}

impl fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedStore({:?})", self.inner)
    }
}

impl fmt::Display for SealedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({})", self.inner)
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// A sealing failure, naming the file by its full location.
fn sealed_err(location: &Path, e: bear_security::Error) -> object_store::Error {
    match e {
        bear_security::Error::Integrity { reason, .. } => integrity(location.as_ref(), &reason),
        other => generic(other),
    }
}

/// The plaintext size of the sealed file at `location`, `sealed` bytes long.
fn plain_size(location: &Path, sealed: u64) -> object_store::Result<u64> {
    segment::plain_len(sealed).ok_or_else(|| {
        integrity(
            location.as_ref(),
            "its length is not a sealed file's (truncated or not sealed)",
        )
    })
}

fn integrity(name: &str, reason: &str) -> object_store::Error {
    generic(bear_security::Error::Integrity {
        what: name.into(),
        reason: reason.into(),
    })
}

impl SealedStore {
    /// Seals the objects of `inner` below `root` with `keys`.
    pub fn new(inner: Arc<dyn ObjectStore>, keys: FileKeys, root: Path) -> Self {
        let cap = NonZeroUsize::new(KNOWN_FILES).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner,
            keys,
            root,
            known: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The name a file is sealed under: its path below the root.
    fn name(&self, location: &Path) -> object_store::Result<String> {
        match location.prefix_match(&self.root) {
            Some(parts) => Ok(parts
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")),
            None => Err(integrity(
                location.as_ref(),
                "the file lies outside the sealed collection",
            )),
        }
    }

    fn remembered(&self, location: &Path) -> Option<Arc<Known>> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(location)
            .cloned()
    }

    fn remember(&self, location: &Path, known: Arc<Known>) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(location.clone(), known);
    }

    fn forget(&self, location: &Path) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop(location);
    }

    /// Reads a file's header and size (under `options`' preconditions).
    async fn learn(
        &self,
        location: &Path,
        options: &GetOptions,
    ) -> object_store::Result<Arc<Known>> {
        let name = self.name(location)?;
        let head = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER_LEN)),
            head: false,
            ..options.clone()
        };
        let got = self.inner.get_opts(location, head).await?;
        let meta = got.meta.clone();
        let header = got.bytes().await?;
        let plain = plain_size(location, meta.size)?;
        let cipher = self
            .keys
            .open_file(&header, &name)
            .map_err(|e| sealed_err(location, e))?;
        let known = Arc::new(Known::new(meta, plain, cipher));
        self.remember(location, known.clone());
        Ok(known)
    }

    /// A plaintext range of a file, decrypting only the segments it touches.
    async fn get_range_plain(
        &self,
        location: &Path,
        range: GetRange,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let name = self.name(location)?;
        let mut known = match self.remembered(location) {
            Some(k) => k,
            None => self.learn(location, &options).await?,
        };
        let keep = segments::write_once(&name) && unconditional(&options);
        for attempt in 0..2 {
            let plain = range.as_range(known.plain).map_err(generic)?;
            let (segs, sealed) = segment::sealed_range(&plain, known.plain);
            let small = keep && segs.end - segs.start <= segments::SMALL_READ;
            if small && let Some(bytes) = segments::get(known.version, &segs, &plain) {
                let meta = known.plain_meta();
                return Ok(result(meta, plain, Default::default(), bytes));
            }
            let opts = GetOptions {
                range: Some(GetRange::Bounded(sealed)),
                head: false,
                ..options.clone()
            };
            let got = self.inner.get_opts(location, opts).await?;
            // The file changed since its header was read (an overwritten version hint):
            // learn it again, once.
            if got.meta.size != known.meta.size || got.meta.e_tag != known.meta.e_tag {
                self.forget(location);
                if attempt == 0 {
                    known = self.learn(location, &options).await?;
                    continue;
                }
                return Err(integrity(
                    location.as_ref(),
                    "the file changed while it was read",
                ));
            }
            let meta = got.meta.clone();
            let attributes = got.attributes.clone();
            let body = got.bytes().await?;
            let opened = known
                .cipher
                .open_segments(&name, segs.start, &body, known.plain)
                .map_err(|e| sealed_err(location, e))?;
            let opened = Bytes::from(opened);
            if small {
                segments::put(known.version, segs.start, &opened);
            }
            let skip = (plain.start - segs.start * SEGMENT) as usize;
            let len = (plain.end - plain.start) as usize;
            let bytes = opened.slice(skip..skip + len);
            return Ok(result(
                ObjectMeta {
                    size: known.plain,
                    ..meta
                },
                plain,
                attributes,
                bytes,
            ));
        }
        Err(integrity(
            location.as_ref(),
            "the file changed while it was read",
        ))
    }

    /// A whole file, opened.
    async fn get_whole(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let name = self.name(location)?;
        let got = self.inner.get_opts(location, options).await?;
        let meta = got.meta.clone();
        let attributes = got.attributes.clone();
        let sealed = got.bytes().await?;
        let plain_len = plain_size(location, sealed.len() as u64)?;
        let cipher = self
            .keys
            .open_file(&sealed, &name)
            .map_err(|e| sealed_err(location, e))?;
        let plain = cipher
            .open_segments(&name, 0, &sealed[HEADER_LEN as usize..], plain_len)
            .map_err(|e| sealed_err(location, e))?;
        self.remember(
            location,
            Arc::new(Known::new(meta.clone(), plain_len, cipher)),
        );
        Ok(result(
            ObjectMeta {
                size: plain_len,
                ..meta
            },
            0..plain_len,
            attributes,
            Bytes::from(plain),
        ))
    }

    /// Copies by opening and sealing again under the new name (the name is in the AAD).
    async fn reseal(&self, from: &Path, to: &Path, mode: PutMode) -> object_store::Result<()> {
        let plain = self
            .get_whole(from, GetOptions::default())
            .await?
            .bytes()
            .await?;
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.put_opts(to, PutPayload::from(plain), opts)
            .await
            .map(|_| ())
    }
}

/// Whether a read asks for the file whatever its version (no precondition to check).
fn unconditional(o: &GetOptions) -> bool {
    o.if_match.is_none()
        && o.if_none_match.is_none()
        && o.if_modified_since.is_none()
        && o.if_unmodified_since.is_none()
        && o.version.is_none()
}

fn result(
    meta: ObjectMeta,
    range: Range<u64>,
    attributes: object_store::Attributes,
    bytes: Bytes,
) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
        meta,
        range,
        attributes,
        extensions: Default::default(),
    }
}

#[async_trait]
impl ObjectStore for SealedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let name = self.name(location)?;
        let mut plain = Vec::with_capacity(payload.content_length());
        for chunk in payload.iter() {
            plain.extend_from_slice(chunk);
        }
        let sealed = segment::seal_file(&self.keys, &name, &plain).map_err(generic)?;
        self.forget(location);
        self.inner
            .put_opts(location, PutPayload::from(sealed), opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let name = self.name(location)?;
        let cipher = self.keys.new_file().map_err(generic)?;
        self.forget(location);
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(SealedUpload {
            inner,
            cipher,
            name,
            plain: Vec::new(),
            sealed: Vec::new(),
            next: 0,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            let got = self.inner.get_opts(location, options).await?;
            let meta = PlainSizes.apply(got.meta.clone())?;
            let size = meta.size;
            return Ok(result(meta, 0..size, got.attributes.clone(), Bytes::new()));
        }
        match options.range.clone() {
            Some(range) => self.get_range_plain(location, range, options).await,
            None => self.get_whole(location, options).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        // Remembered files are checked by size and e-tag before use, so a deleted one is
        // never read from memory; dropping them here only frees the entries sooner.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = PlainSizes;
        self.inner
            .list(prefix)
            .map(move |m| m.and_then(|m| this.apply(m)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let this = PlainSizes;
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |m| m.and_then(|m| this.apply(m)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects = listed
            .objects
            .into_iter()
            .map(|m| PlainSizes.apply(m))
            .collect::<object_store::Result<_>>()?;
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let mode = match options.mode {
            CopyMode::Overwrite => PutMode::Overwrite,
            CopyMode::Create => PutMode::Create,
        };
        self.reseal(from, to, mode).await
    }
}

/// Turns a listed sealed size into the plaintext size.
#[derive(Clone, Copy)]
struct PlainSizes;

impl PlainSizes {
    fn apply(self, mut meta: ObjectMeta) -> object_store::Result<ObjectMeta> {
        meta.size = plain_size(&meta.location, meta.size)?;
        Ok(meta)
    }
}

/// A multipart upload sealed on the fly: whole segments are sealed as plaintext arrives
/// (one is always held back, as it may be the last), and passed on in parts of at least
/// [`MIN_PART`] bytes.
struct SealedUpload {
    inner: Box<dyn MultipartUpload>,
    cipher: FileCipher,
    name: String,
    /// Plaintext not yet sealed.
    plain: Vec<u8>,
    /// Sealed bytes not yet passed on (the header first).
    sealed: Vec<u8>,
    /// The next segment's number.
    next: u64,
}

impl fmt::Debug for SealedUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedUpload")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SealedUpload {
    /// Seals the whole segments of `plain` that cannot be the last one.
    fn seal_ready(&mut self) -> object_store::Result<()> {
        if self.next == 0 && self.sealed.is_empty() {
            self.sealed.extend_from_slice(self.cipher.header());
        }
        let seg = SEGMENT as usize;
        let mut done = 0;
        while self.plain.len() - done > seg {
            self.cipher
                .seal_segment(
                    &self.name,
                    self.next,
                    false,
                    &self.plain[done..done + seg],
                    &mut self.sealed,
                )
                .map_err(generic)?;
            done += seg;
            self.next += 1;
        }
        self.plain.drain(..done);
        Ok(())
    }

    fn pass_on(&mut self) -> UploadPart {
        let part = std::mem::take(&mut self.sealed);
        self.inner.put_part(PutPayload::from(part))
    }
}

#[async_trait]
impl MultipartUpload for SealedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        for chunk in data.iter() {
            self.plain.extend_from_slice(chunk);
        }
        if let Err(e) = self.seal_ready() {
            return Box::pin(futures::future::ready(Err(e)));
        }
        if self.sealed.len() >= MIN_PART {
            self.pass_on()
        } else {
            Box::pin(futures::future::ready(Ok(())))
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.seal_ready()?;
        let last = std::mem::take(&mut self.plain);
        self.cipher
            .seal_segment(&self.name, self.next, true, &last, &mut self.sealed)
            .map_err(generic)?;
        self.next += 1;
        self.pass_on().await?;
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}
