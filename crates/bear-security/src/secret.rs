//! Locked, zeroized buffers for key material and vault contents.
//!
//! A [`SecretBytes`] owns a page-aligned allocation that memsec `mlock`s (which on Linux also
//! marks it `MADV_DONTDUMP`, keeping it out of core dumps). Where `RLIMIT_MEMLOCK` refuses the
//! lock, one warning is logged for the process and the buffer still works, unlocked. On drop the
//! bytes are zeroed (memsec's `munlock` zeroes before unlocking; an unlocked buffer is zeroized)
//! and freed. The type has no `Debug` or `Display`, and its bytes are reachable only through
//! [`SecretBytes::expose`].
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use zeroize::Zeroize;

const PAGE: usize = 4096;

static MLOCK_WARNED: AtomicBool = AtomicBool::new(false);
static MLOCK_FAILED: AtomicBool = AtomicBool::new(false);

/// Whether any secret buffer in this process could not be locked into RAM.
pub fn mlock_refused() -> bool {
    MLOCK_FAILED.load(Ordering::Relaxed)
}

/// A fixed-capacity secret buffer; `len` bytes of it are in use.
pub struct SecretBytes {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    locked: bool,
}

// SAFETY: the buffer is uniquely owned; shared access is read-only through `&self`.
unsafe impl Send for SecretBytes {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for SecretBytes {}

impl SecretBytes {
    /// A zeroed secret buffer able to hold `cap` bytes, with length 0.
    pub fn with_capacity(cap: usize) -> Self {
        let size = cap.max(1).div_ceil(PAGE) * PAGE;
        let layout = Layout::from_size_align(size, PAGE).expect("page-rounded layout is valid");
        // SAFETY: `layout` has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout);
        };
        // SAFETY: `ptr..ptr+size` is the allocation just made; page-aligned as madvise needs.
        let locked = unsafe { memsec::mlock(ptr.as_ptr(), size) };
        if !locked {
            MLOCK_FAILED.store(true, Ordering::Relaxed);
            if !MLOCK_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "could not mlock secret memory (RLIMIT_MEMLOCK too low?); keys stay in RAM \
                     unlocked and may be swapped. Raise the limit (ulimit -l) to lock them."
                );
            }
        }
        Self {
            ptr,
            cap: size,
            len: 0,
            locked,
        }
    }

    /// A secret buffer holding a copy of `bytes`. The caller should zeroize its own copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut s = Self::with_capacity(bytes.len());
        s.extend_from_slice(bytes);
        s
    }

    /// A secret buffer of `n` random bytes from the system generator.
    pub fn random(n: usize) -> crate::Result<Self> {
        let mut s = Self::with_capacity(n);
        s.len = n;
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), s.expose_mut())
            .map_err(|_| crate::Error::Crypto("system random generator"))?;
        Ok(s)
    }

    /// Appends bytes, moving to a larger locked buffer when full (the old one is zeroed).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.cap {
            let mut bigger = Self::with_capacity((self.len + bytes.len()).max(self.cap * 2));
            bigger.len = self.len;
            bigger.expose_mut().copy_from_slice(self.expose());
            std::mem::swap(self, &mut bigger);
        }
        let start = self.len;
        self.len += bytes.len();
        self.expose_mut()[start..].copy_from_slice(bytes);
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        // SAFETY: `len <= cap` bytes from `ptr` are initialised (zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The secret bytes, mutable.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `expose`, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer is locked into RAM.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.expose().ct_eq(other.expose()).into()
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+cap` is our allocation; nothing else refers to it after drop.
        unsafe {
            let whole = std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap);
            whole.zeroize();
            if self.locked {
                memsec::munlock(self.ptr.as_ptr(), self.cap);
            }
            dealloc(
                self.ptr.as_ptr(),
                Layout::from_size_align_unchecked(self.cap, PAGE),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeps_contents_and_compares() {
        let mut s = SecretBytes::from_slice(b"abc");
        for _ in 0..2000 {
            s.extend_from_slice(b"0123456789");
        }
        assert_eq!(s.len(), 3 + 20_000);
        assert_eq!(&s.expose()[..3], b"abc");
        assert_eq!(&s.expose()[s.len() - 10..], b"0123456789");
        assert!(s == s.clone());
        assert!(s != SecretBytes::from_slice(b"abd"));
        let r = SecretBytes::random(32).unwrap();
        assert_eq!(r.len(), 32);
        assert!(r.expose().iter().any(|&b| b != 0));
    }
}
