//! Snapshot files against the embedded store: restore keeps revisions and expires old
//! watches; corrupt files, bad names and pruning.

use crate::snapshot::{self, EXTENSION};
use crate::{Error, Store};

#[tokio::test]
async fn restore_keeps_revisions_and_expires_older_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).await.unwrap();
    let a = store.create("/registry/t/a", b"1".to_vec()).await.unwrap();
    let a = store
        .update("/registry/t/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    let b = store.create("/registry/t/b", b"b".to_vec()).await.unwrap();
    store.delete("/registry/t/b", b.mod_revision).await.unwrap();
    let c = store.create("/registry/t/c", b"c".to_vec()).await.unwrap();
    let snaps = dir.path().join("snapshots");
    let info = store.snapshot(&snaps, Some("one")).await.unwrap();
    assert_eq!(info.revision, c.mod_revision);
    assert_eq!(info.backend, "embedded");
    // Written after the snapshot: not in it.
    store.create("/registry/t/d", b"d".to_vec()).await.unwrap();

    let new = tempfile::tempdir().unwrap();
    let restored = snapshot::restore(&info.path, new.path(), 100).unwrap();
    assert_eq!(restored.revision, info.revision + 100);
    let back = Store::open_embedded(new.path()).await.unwrap();
    let (items, rev) = back.list("/registry/t/").await.unwrap();
    assert_eq!(rev, info.revision + 100);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], a, "same value and revisions");
    assert_eq!(items[1], c);
    assert!(matches!(
        back.watch("/registry/t/", info.revision).await,
        Err(Error::Expired { .. })
    ));
    let mut w = back.watch("/registry/t/", rev).await.unwrap();
    let e = back.create("/registry/t/e", b"e".to_vec()).await.unwrap();
    assert_eq!(e.mod_revision, rev + 1);
    assert_eq!(w.next().await.unwrap().unwrap().kv, e);
    // A second restore into the same data dir is refused.
    assert!(matches!(
        snapshot::restore(&info.path, new.path(), 100),
        Err(Error::Snapshot { .. })
    ));
}

#[tokio::test]
async fn corrupt_files_names_and_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).await.unwrap();
    store.create("/registry/t/a", b"1".to_vec()).await.unwrap();
    let snaps = dir.path().join("snapshots");
    for name in ["s1", "s2", "scheduled-1", "scheduled-2", "scheduled-3"] {
        store.snapshot(&snaps, Some(name)).await.unwrap();
    }
    assert!(store.snapshot(&snaps, Some("../evil")).await.is_err());
    assert!(store.snapshot(&snaps, Some("s1")).await.is_err(), "exists");
    let gone = snapshot::prune(&snaps, 1, Some("scheduled-")).unwrap();
    assert_eq!(gone.len(), 2);
    let left: Vec<String> = snapshot::list(&snaps)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(left.len(), 3);
    assert!(left.contains(&"s1".to_string()) && left.contains(&"s2".to_string()));

    let good = snaps.join(format!("s1.{EXTENSION}"));
    let mut bytes = std::fs::read(&good).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let bad = snaps.join(format!("bad.{EXTENSION}"));
    std::fs::write(&bad, &bytes).unwrap();
    let err = snapshot::verify(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.ksnap") && err.contains("checksum"),
        "{err}"
    );
    std::fs::write(&bad, &bytes[..20]).unwrap();
    let err = snapshot::verify(&bad).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    assert!(snapshot::verify(&good).is_ok());

    // Offline, from the data dir (the store is still open here: the backup is consistent).
    let offline = snapshot::save_embedded(dir.path(), Some("offline")).unwrap();
    assert_eq!(offline.revision, store.current_revision().await.unwrap());
    assert!(snapshot::verify(&offline.path).is_ok());
}
