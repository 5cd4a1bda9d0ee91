//! Fuzz target: the sealed-file reader on arbitrary bytes. It must return a typed error or
//! the records, never panic or allocate without bound; mutations of a valid file must fail.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use bear_security::crypto::{self, KeySource, Keyring, MasterKey};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    ring: Mutex<Keyring>,
    valid: Vec<u8>,
    path: PathBuf,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let kf = dir.path().join("k");
    MasterKey::generate_key_file(&kf).expect("key file");
    let mut ring =
        Keyring::create(&dir.path().join("ring.json"), KeySource::KeyFile(kf)).expect("keyring");
    let path = dir.path().join("f.bseal");
    crypto::write_sealed(
        &path,
        &mut ring,
        "fuzz",
        [("a", b"one".as_slice()), ("b", b"two".as_slice())],
    )
    .expect("seal");
    let valid = std::fs::read(&path).expect("read");
    Fixture {
        _dir: dir,
        ring: Mutex::new(ring),
        valid,
        path,
    }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let ring = f.ring.lock().expect("lock");
    let path: &Path = &f.path;
    let _ = crypto::parse_sealed(data, path, &ring, "fuzz");
    // The same bytes spliced into a valid file: only the unmodified file may open.
    if !data.is_empty() {
        let mut m = f.valid.clone();
        let at = usize::from(data[0]) * m.len() / 256;
        m.splice(
            at..(at + data.len() - 1).min(m.len()),
            data[1..].iter().copied(),
        );
        if m != f.valid {
            assert!(crypto::parse_sealed(&m, path, &ring, "fuzz").is_err());
        }
    }
});
