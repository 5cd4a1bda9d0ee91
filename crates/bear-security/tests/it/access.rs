//! API keys: shown once, stored as hashes, checked in constant time, with roles.

use bear_security::{ApiKeyStore, Error, Permission, Role};

#[test]
fn keys_are_random_hashed_and_role_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-keys.json");
    let mut store = ApiKeyStore::open(&path).unwrap();
    let (admin, admin_rec) = store.create(Role::Admin, "ops").unwrap();
    let (reader, _) = store.create(Role::ReadOnly, "dashboard").unwrap();
    let admin = admin.reveal();
    let reader = reader.reveal();
    assert!(admin.starts_with("bear_") && admin.len() == 5 + 64);
    assert_ne!(admin, reader);
    // Only the hash is on disk.
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(!on_disk.contains(&admin[5..]));
    assert!(on_disk.contains(&admin_rec.hash));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let store = ApiKeyStore::open(&path).unwrap();
    assert_eq!(store.verify(&admin).unwrap().role, Role::Admin);
    assert!(store.authorize(&reader, Permission::Read).is_ok());
    assert!(matches!(
        store.authorize(&reader, Permission::Write),
        Err(Error::Denied(_))
    ));
    // The key with its last hex digit changed (to a different digit, whatever it was).
    let last = if admin.ends_with('0') { '1' } else { '0' };
    let altered = format!("{}{last}", &admin[..68]);
    for bad in ["", "bear_", "bear_zz", &admin[..40], &altered] {
        assert!(matches!(store.verify(bad), Err(Error::Denied(_))), "{bad}");
    }
    let mut store = ApiKeyStore::open(&path).unwrap();
    assert!(store.revoke(&admin_rec.id).unwrap());
    assert!(store.verify(&admin).is_err());
}

#[test]
fn roles_and_permissions() {
    use Permission::*;
    assert!(Role::Admin.allows(Admin) && Role::Admin.allows(Write) && Role::Admin.allows(Read));
    assert!(!Role::User.allows(Admin) && Role::User.allows(Write) && Role::User.allows(Read));
    assert!(!Role::ReadOnly.allows(Admin) && !Role::ReadOnly.allows(Write));
    assert!(Role::ReadOnly.allows(Read));
    assert_eq!("read-only".parse::<Role>().unwrap(), Role::ReadOnly);
    assert!("root".parse::<Role>().is_err());
}
