//! One behaviour suite, run against both backends.

use std::sync::Arc;
use std::time::Duration;

use crate::{Error, EventKind, SqliteBackend, Store};

async fn suite(store: Store) {
    let base = store.current_revision().await.unwrap();
    let mut watch = store.watch("/registry/t/", base).await.unwrap();
    let a = store.create("/registry/t/a", b"1".to_vec()).await.unwrap();
    assert!(a.mod_revision > base);
    assert_eq!(a.create_revision, a.mod_revision);
    assert!(matches!(
        store.create("/registry/t/a", b"x".to_vec()).await,
        Err(Error::AlreadyExists(_))
    ));
    let a2 = store
        .update("/registry/t/a", b"2".to_vec(), a.mod_revision)
        .await
        .unwrap();
    assert!(a2.mod_revision > a.mod_revision);
    assert_eq!(a2.create_revision, a.create_revision);
    assert!(matches!(
        store
            .update("/registry/t/a", b"3".to_vec(), a.mod_revision)
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.update("/registry/t/none", b"3".to_vec(), 0).await,
        Err(Error::NotFound(_))
    ));
    store.create("/registry/t/b", b"b".to_vec()).await.unwrap();
    store.create("/registry/u/c", b"c".to_vec()).await.unwrap();
    let (items, rev) = store.list("/registry/t/").await.unwrap();
    assert_eq!(
        items.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["/registry/t/a", "/registry/t/b"]
    );
    assert!(rev >= a2.mod_revision);
    // The watch cache serves the same list once it has caught up (a consistent read), and
    // shares one value per key version with the watchers.
    let (cached, cached_rev) = store.list_cached("/registry/t/", None).await.unwrap();
    assert_eq!(
        cached
            .iter()
            .map(|e| (e.kv().key.as_str(), e.kv().value.as_slice()))
            .collect::<Vec<_>>(),
        [("/registry/t/a", &b"2"[..]), ("/registry/t/b", &b"b"[..])]
    );
    assert_eq!(cached_rev, rev);
    let (again, _) = store.list_cached("/registry/t/", Some(0)).await.unwrap();
    assert!(Arc::ptr_eq(&cached[0], &again[0]));
    assert_eq!(cached[0].memo(|| 7u8), Some(&7));
    assert_eq!(again[0].memo(|| 9u8), Some(&7));
    assert_eq!(
        store.get("/registry/t/a").await.unwrap().unwrap().value,
        b"2"
    );
    assert!(matches!(
        store.delete("/registry/t/a", a.mod_revision).await,
        Err(Error::Conflict(_))
    ));
    let gone = store.delete("/registry/t/a", 0).await.unwrap();
    assert_eq!(gone.value, b"2");
    assert!(store.get("/registry/t/a").await.unwrap().is_none());

    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push((ev.kind, ev.kv.key.clone(), ev.kv.value.clone()));
    }
    assert_eq!(
        seen,
        vec![
            (EventKind::Created, "/registry/t/a".into(), b"1".to_vec()),
            (EventKind::Updated, "/registry/t/a".into(), b"2".to_vec()),
            (EventKind::Created, "/registry/t/b".into(), b"b".to_vec()),
            (EventKind::Deleted, "/registry/t/a".into(), b"2".to_vec()),
        ]
    );
    // A watcher that resumes mid-way gets exactly the later events.
    let mut resumed = store.watch("/registry/t/", a2.mod_revision).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ev.kv.key, "/registry/t/b");

    // Compaction: history at or below the revision is gone, current values stay.
    let now = store.current_revision().await.unwrap();
    store.backend().compact(now).await.unwrap();
    assert_eq!(
        store.get("/registry/t/b").await.unwrap().unwrap().value,
        b"b"
    );
    match store.backend().watch(base).await {
        Err(Error::Expired { .. }) => {}
        Ok(mut rx) => {
            let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(first, Err(Error::Expired { .. })),
                "expected expiry, got {first:?}"
            );
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test]
async fn embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).await.unwrap();
    suite(store).await;
}

#[tokio::test]
async fn embedded_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let rev = {
        let b = SqliteBackend::open(&path).unwrap();
        let store = Store::new(Arc::new(b)).await.unwrap();
        store
            .create("/registry/x/1", b"one".to_vec())
            .await
            .unwrap();
        let kv = store
            .create("/registry/x/2", b"two".to_vec())
            .await
            .unwrap();
        store.delete("/registry/x/1", 0).await.unwrap();
        kv.mod_revision
    };
    let store = Store::new(Arc::new(SqliteBackend::open(&path).unwrap()))
        .await
        .unwrap();
    let (items, now) = store.list("/registry/x/").await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].mod_revision, rev);
    assert_eq!(now, rev + 1);
    // The watch cache starts from the reopened state.
    let (cached, at) = store.list_cached("/registry/x/", Some(0)).await.unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].kv().value, b"two");
    assert_eq!(at, now);
}

#[tokio::test]
#[ignore = "needs etcd"]
async fn etcd_backend() {
    let etcd = crate::local_etcd::LocalEtcd::start().expect("etcd (apt install etcd-server)");
    let store = Store::open(&etcd.store_url(), std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    suite(store).await;
}
