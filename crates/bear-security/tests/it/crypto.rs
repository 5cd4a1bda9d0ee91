//! Keyring and sealed files: passphrase and key-file master keys, wrong keys, tampering,
//! truncation, rotation, counters and crypto-shredding.

use std::path::Path;

use bear_security::crypto::{self, PBKDF2_ITERATIONS};
use bear_security::{Error, KeySource, Keyring, MasterKey, SecretBytes, Vault};

fn pass(s: &str) -> KeySource {
    KeySource::Passphrase(SecretBytes::from_slice(s.as_bytes()))
}

pub(crate) fn key_file_ring(dir: &Path) -> Keyring {
    let kf = dir.join("master.key");
    MasterKey::generate_key_file(&kf).unwrap();
    Keyring::create(&dir.join("keyring.json"), KeySource::KeyFile(kf)).unwrap()
}

#[test]
fn passphrase_keyring_opens_only_with_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyring.json");
    let mut ring = Keyring::create(&path, pass("correct horse battery staple")).unwrap();
    let status = ring.status();
    assert_eq!(status.master_key_source, "passphrase");
    assert!(status.pbkdf2_iterations.unwrap() >= 600_000);
    assert_eq!(PBKDF2_ITERATIONS, 600_000);
    let sealed = dir.path().join("notes.bseal");
    crypto::write_sealed(
        &sealed,
        &mut ring,
        "matters",
        [("doc-1", b"privileged".as_slice())],
    )
    .unwrap();
    // The keyring file holds no key in clear: only wrapped keys, salt and a check value.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("pbkdf2-hmac-sha256") && !text.contains("correct horse"));

    let e = Keyring::open(&path, pass("wrong")).err().unwrap();
    assert!(matches!(e, Error::WrongKey { .. }), "{e}");
    assert!(!e.to_string().contains("wrong\""));
    let ring = Keyring::open(&path, pass("correct horse battery staple")).unwrap();
    let records = crypto::read_sealed(&sealed, &ring, "matters").unwrap();
    assert_eq!(records[0].0, "doc-1");
    assert_eq!(records[0].1.expose(), b"privileged");
    // Creating over an existing keyring is refused.
    assert!(Keyring::create(&path, pass("x")).is_err());
}

#[test]
fn key_files_must_be_private_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("master.key");
    MasterKey::generate_key_file(&kf).unwrap();
    assert!(
        MasterKey::generate_key_file(&kf).is_err(),
        "never overwrites"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = MasterKey::from_key_file(&kf).err().unwrap();
        assert!(
            matches!(e, Error::KeyFilePermissions { mode: 0o644, .. }),
            "{e}"
        );
        std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"too short").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    assert!(matches!(
        MasterKey::from_key_file(&short),
        Err(Error::Format { .. })
    ));
    // A keyring made with one key file does not open with another.
    let ring_path = dir.path().join("keyring.json");
    Keyring::create(&ring_path, KeySource::KeyFile(kf.clone())).unwrap();
    let other = dir.path().join("other.key");
    MasterKey::generate_key_file(&other).unwrap();
    assert!(matches!(
        Keyring::open(&ring_path, KeySource::KeyFile(other)),
        Err(Error::WrongKey { .. })
    ));
    assert!(matches!(
        Keyring::open(&dir.path().join("absent.json"), KeySource::KeyFile(kf)),
        Err(Error::NoKeyring { .. })
    ));
}

#[test]
fn sealed_files_detect_every_kind_of_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = key_file_ring(dir.path());
    let path = dir.path().join("c.bseal");
    let recs: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("rec-{i}"),
                format!("secret number {i}").into_bytes(),
            )
        })
        .collect();
    crypto::write_sealed(
        &path,
        &mut ring,
        "c",
        recs.iter().map(|(a, b)| (a.as_str(), b.as_slice())),
    )
    .unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(!good.windows(6).any(|w| w == b"secret"), "ciphertext only");
    let back = crypto::parse_sealed(&good, &path, &ring, "c").unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(back[3].1.expose(), b"secret number 3");

    // Every flipped byte and every truncation gives a typed error, never data.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let e = crypto::parse_sealed(&bad, &path, &ring, "c").err();
        assert!(
            matches!(
                e,
                Some(Error::Integrity { .. } | Error::Format { .. } | Error::NoDataKey { .. })
            ),
            "flip at {i}: {e:?}"
        );
    }
    for n in 0..good.len() {
        assert!(
            crypto::parse_sealed(&good[..n], &path, &ring, "c").is_err(),
            "cut at {n}"
        );
    }
    // Another collection's name, or trailing bytes, are refused.
    assert!(crypto::parse_sealed(&good, &path, &ring, "d").is_err());
    let mut longer = good.clone();
    longer.push(0);
    assert!(crypto::parse_sealed(&longer, &path, &ring, "c").is_err());
}

#[test]
fn rotation_keeps_old_data_readable_and_counts_messages() {
    let dir = tempfile::tempdir().unwrap();
    let ring = key_file_ring(dir.path()).with_rotation_limit(3);
    let mut ring = ring;
    let a = dir.path().join("a.bseal");
    crypto::write_sealed(&a, &mut ring, "c", [("x", b"one".as_slice())]).unwrap();
    // Two messages (record + end) used key 1; the next file crosses the limit of 3.
    let b = dir.path().join("b.bseal");
    crypto::write_sealed(
        &b,
        &mut ring,
        "c",
        [("y", b"two".as_slice()), ("z", b"three".as_slice())],
    )
    .unwrap();
    let status = ring.status();
    assert_eq!(status.collections[0].current_key, 2);
    assert_eq!(status.collections[0].retired_keys, 1);
    ring.rotate("c").unwrap();
    assert_eq!(ring.status().collections[0].current_key, 3);
    // Reopen: every file still decrypts with the retired keys.
    let kf = dir.path().join("master.key");
    let ring = Keyring::open(&dir.path().join("keyring.json"), KeySource::KeyFile(kf)).unwrap();
    assert_eq!(
        crypto::read_sealed(&a, &ring, "c").unwrap()[0].1.expose(),
        b"one"
    );
    assert_eq!(
        crypto::read_sealed(&b, &ring, "c").unwrap()[1].1.expose(),
        b"three"
    );
    // The reserved counter on disk is never below the messages sealed.
    assert!(ring.status().collections[0].messages <= 3);
}

#[test]
fn master_rotation_rewraps_and_deleting_a_collection_shreds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = key_file_ring(dir.path());
    let file = dir.path().join("m.bseal");
    crypto::write_sealed(&file, &mut ring, "matter-7", [("d", b"brief".as_slice())]).unwrap();
    let hk_before = ring.hmac_key("p");
    let new_kf = dir.path().join("new.key");
    MasterKey::generate_key_file(&new_kf).unwrap();
    ring.rotate_master(KeySource::KeyFile(new_kf.clone()))
        .unwrap();
    let ring_path = dir.path().join("keyring.json");
    assert!(
        Keyring::open(
            &ring_path,
            KeySource::KeyFile(dir.path().join("master.key"))
        )
        .is_err()
    );
    let mut ring = Keyring::open(&ring_path, KeySource::KeyFile(new_kf.clone())).unwrap();
    assert_eq!(
        crypto::read_sealed(&file, &ring, "matter-7").unwrap()[0]
            .1
            .expose(),
        b"brief"
    );
    // Keyed hashes survive master rotation.
    assert_eq!(
        ring::hmac::sign(&hk_before, b"v").as_ref(),
        ring::hmac::sign(&ring.hmac_key("p"), b"v").as_ref()
    );
    assert!(ring.delete_collection("matter-7").unwrap());
    let e = crypto::read_sealed(&file, &ring, "matter-7").err().unwrap();
    assert!(matches!(e, Error::NoDataKey { .. }), "{e}");
    // Also after reopening: the key is gone from disk.
    let ring = Keyring::open(&ring_path, KeySource::KeyFile(new_kf)).unwrap();
    assert!(matches!(
        crypto::read_sealed(&file, &ring, "matter-7"),
        Err(Error::NoDataKey { .. })
    ));
}

#[test]
fn vault_persists_encrypted_and_corrupt_vaults_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = key_file_ring(dir.path());
    let path = dir.path().join("vault.bseal");
    let mut v = Vault::load(&path, &ring).unwrap();
    let t = v.tokenize(&bear_core::PiiEntity::Person, "Jane Roe");
    assert_eq!(v.tokenize(&bear_core::PiiEntity::Person, "Jane Roe"), t);
    v.save(&path, &mut ring).unwrap();
    let raw = std::fs::read(&path).unwrap();
    assert!(!raw.windows(8).any(|w| w == b"Jane Roe"));
    let v2 = Vault::load(&path, &ring).unwrap();
    assert_eq!(v2.restore(&format!("hello {t}")), "hello Jane Roe");
    let mut bad = raw.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    assert!(matches!(
        Vault::load(&path, &ring),
        Err(Error::Integrity { .. })
    ));
    std::fs::write(&path, b"garbage").unwrap();
    assert!(matches!(
        Vault::load(&path, &ring),
        Err(Error::Format { .. })
    ));
}

/// The same keyring open in two processes (bear-server and a CLI command): keys either makes
/// are kept by the other's saves, a collection one shreds stays shredded, and the two seal
/// under one key from separate reserved blocks.
#[test]
fn two_handles_on_one_keyring_keep_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = key_file_ring(dir.path());
    let ring_path = dir.path().join("keyring.json");
    let kf = || KeySource::KeyFile(dir.path().join("master.key"));
    let mut cli = Keyring::open(&ring_path, kf()).unwrap();
    let (x, y, z) = (
        dir.path().join("x.bseal"),
        dir.path().join("y.bseal"),
        dir.path().join("z.bseal"),
    );
    crypto::write_sealed(&x, &mut server, "matter-x", [("a", b"server".as_slice())]).unwrap();
    // The CLI's keyring was read before matter-x had a key; its save must keep that key.
    crypto::write_sealed(&y, &mut cli, "matter-y", [("b", b"cli".as_slice())]).unwrap();
    crypto::write_sealed(&z, &mut server, "matter-y", [("c", b"both".as_slice())]).unwrap();
    let fresh = Keyring::open(&ring_path, kf()).unwrap();
    assert_eq!(
        crypto::read_sealed(&x, &fresh, "matter-x").unwrap()[0]
            .1
            .expose(),
        b"server"
    );
    assert_eq!(
        crypto::read_sealed(&y, &fresh, "matter-y").unwrap()[0]
            .1
            .expose(),
        b"cli"
    );
    assert_eq!(
        crypto::read_sealed(&z, &fresh, "matter-y").unwrap()[0]
            .1
            .expose(),
        b"both"
    );
    // One key for matter-y, and a reserved block per process on it.
    let y_status = |r: &Keyring| {
        r.status()
            .collections
            .into_iter()
            .find(|c| c.name == "matter-y")
            .unwrap()
    };
    assert_eq!(y_status(&fresh).current_key, 1);
    assert!(y_status(&fresh).messages >= 2 * 4096);
    // The CLI shreds matter-x; the server's next change must not bring its key back.
    assert!(cli.delete_collection("matter-x").unwrap());
    server.rotate("matter-y").unwrap();
    let fresh = Keyring::open(&ring_path, kf()).unwrap();
    assert!(matches!(
        crypto::read_sealed(&x, &fresh, "matter-x"),
        Err(Error::NoDataKey { .. })
    ));
    assert_eq!(y_status(&fresh).current_key, 2);
    assert_eq!(
        crypto::read_sealed(&y, &fresh, "matter-y").unwrap()[0]
            .1
            .expose(),
        b"cli"
    );
}

/// Two vaults loaded from one file (bear-server and a CLI command tokenizing at once): each
/// save keeps the other's tokens, so every token restores.
#[test]
fn two_vaults_saving_one_file_keep_every_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut server_ring = key_file_ring(dir.path());
    let mut cli_ring = Keyring::open(
        &dir.path().join("keyring.json"),
        KeySource::KeyFile(dir.path().join("master.key")),
    )
    .unwrap();
    let path = dir.path().join("vault.bseal");
    let mut server = Vault::load(&path, &server_ring).unwrap();
    let mut cli = Vault::load(&path, &cli_ring).unwrap();
    let person = bear_core::PiiEntity::Person;
    let a = server.tokenize(&person, "Jane Roe");
    server.save(&path, &mut server_ring).unwrap();
    let b = cli.tokenize(&person, "John Doe");
    cli.save(&path, &mut cli_ring).unwrap();
    let c = server.tokenize(&person, "Mary Major");
    server.save(&path, &mut server_ring).unwrap();
    let v = Vault::load(&path, &cli_ring).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(
        v.restore(&format!("{a}, {b} and {c}")),
        "Jane Roe, John Doe and Mary Major"
    );
    // The server's own vault now knows the CLI's token too.
    assert_eq!(server.restore(&b), "John Doe");
}

/// Shredding rewrites the keyring and overwrites the old copy in place: a second name for
/// the old file (a hard link, standing in for its blocks on disk) no longer holds the
/// destroyed key, nor anything else of the keyring.
#[test]
fn the_old_keyring_copy_is_overwritten_when_a_key_is_shredded() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = key_file_ring(dir.path());
    ring.file_keys("matter").unwrap();
    let path = dir.path().join("keyring.json");
    let before = std::fs::read_to_string(&path).unwrap();
    assert!(before.contains("\"matter\""));
    let old = dir.path().join("old-blocks");
    std::fs::hard_link(&path, &old).unwrap();

    assert!(ring.delete_collection("matter").unwrap());
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(!after.contains("\"matter\""));
    let old_bytes = std::fs::read(&old).unwrap();
    assert_eq!(
        old_bytes.len(),
        before.len(),
        "overwritten in place, not truncated"
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&old_bytes).is_err());
    assert!(!old_bytes.windows(8).any(|w| w == b"\"matter\""));
}
