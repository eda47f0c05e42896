//! The throttle's tables in PostgreSQL stay bounded: the places of an instance that died come
//! back when their lease runs out, and old or surplus counts are purged.

use std::time::Duration;

use crate::backends::Backend;

#[tokio::test]
async fn places_of_an_attempt_whose_instance_died_come_back_after_its_lease() {
    let Some(test_store) = Backend::Postgres.seeded().await else { return };
    let counters = test_store.store.shared_counters().expect("PostgreSQL shares its counters");
    let keys = vec!["i:198.51.100.1".to_owned()];

    // An attempt takes a place, then its instance dies before settling it.
    let mut tx = counters.lock(&keys, "pair", None).await.unwrap();
    tx.rows[0].pending += 1;
    let id = tx.commit(false, Some((&keys, Duration::from_millis(50)))).await.unwrap().unwrap();
    assert_eq!(counters.lock(&keys, "pair", None).await.unwrap().rows[0].pending, 1, "the place is held");

    tokio::time::sleep(Duration::from_millis(100)).await;
    counters.purge(Duration::from_secs(900), Duration::from_secs(3600), 1000).await.unwrap();

    let tx = counters.lock(&keys, "pair", Some(id)).await.unwrap();
    assert_eq!(tx.rows[0].pending, 0, "the place came back");
    assert!(!tx.held, "the late settle finds its attempt gone and gives nothing back twice");
}

#[tokio::test]
async fn old_and_surplus_counts_are_purged() {
    let Some(test_store) = Backend::Postgres.seeded().await else { return };
    let counters = test_store.store.shared_counters().unwrap();
    for i in 0..300 {
        let keys = vec![format!("i:203.0.113.{i}")];
        let mut tx = counters.lock(&keys, &format!("pair{i}"), None).await.unwrap();
        tx.rows[0].failures = 1;
        tx.commit(i % 2 == 0, None).await.unwrap();
    }
    assert_eq!(counters.sizes().await.unwrap(), (300, 150));

    counters.purge(Duration::from_secs(900), Duration::from_secs(3600), 100).await.unwrap();
    assert_eq!(counters.sizes().await.unwrap(), (100, 100), "at most the bound, the stalest gone");

    tokio::time::sleep(Duration::from_millis(20)).await;
    counters.purge(Duration::from_millis(10), Duration::from_millis(10), 100).await.unwrap();
    assert_eq!(counters.sizes().await.unwrap(), (0, 0), "counts and pairs older than their window go");
}
