//! The metastore contract, run against both backends: the file of the embedded mode and
//! a real PostgreSQL started here.

use triad_metastore::testing::Postgres;
use triad_metastore::{
    AlertKind, AlertRecord, ListQuery, Metastore, MetastoreError, OperationRow, Publish, Signal,
    SplitRow, SplitState,
};

/// Leases: registrations count up, a superseded process is fenced off from renewing and
/// publishing, liveness follows the lease.
async fn leases(m: &Metastore) {
    let first = m.register("col-a", "http://a:4318", 60_000).await.unwrap();
    let second = m.register("col-a", "http://a2:4318", 60_000).await.unwrap();
    assert_eq!(second.generation, first.generation + 1);
    assert!(matches!(
        m.renew(&first, "http://a:4318", 60_000).await,
        Err(MetastoreError::Fenced(n)) if n == "col-a"
    ));
    m.renew(&second, "http://a2:4318", 60_000).await.unwrap();
    let mut staged = split("fenced-1", Signal::Logs, 1, 2, &["default"]);
    staged.node_id = "col-a".into();
    m.stage(&staged).await.unwrap();
    let publish = |lease| Publish {
        split_ids: vec!["fenced-1".into()],
        checkpoint: Some(("col-a".into(), Signal::Logs, 77)),
        fence: Some(lease),
        ..Publish::default()
    };
    assert!(matches!(
        m.publish(&publish(first.clone())).await,
        Err(MetastoreError::Fenced(_))
    ));
    assert_eq!(
        m.checkpoint("col-a", Signal::Logs).await.unwrap(),
        None,
        "nothing of a fenced publication"
    );
    m.publish(&publish(second.clone())).await.unwrap();
    assert_eq!(m.checkpoint("col-a", Signal::Logs).await.unwrap(), Some(77));
    let short = m.register("col-b", "http://b:4318", 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let live = live_nodes(m).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (live[0].node_id.as_str(), live[0].address.as_str()),
        ("col-a", "http://a2:4318")
    );
    m.renew(&short, "http://b:4318", 60_000).await.unwrap();
    assert_eq!(live_nodes(m).await.len(), 2, "renewed");
    m.leave(&second).await.unwrap();
    let live = live_nodes(m).await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].node_id, "col-b");
    m.leave(&short).await.unwrap();
    let all = m.nodes().await.unwrap();
    assert_eq!(all.len(), 2, "left, still registered");
    assert!(
        all.iter().all(|n| !n.live && n.lease_until_ms == 0),
        "{all:?}"
    );
}

/// The alert notifier's records: written, replaced by key, kept apart by kind, forgotten
/// by retention.
async fn alert_state(m: &Metastore) {
    let rec = |key: &str, until_ms: i64, body: &str| AlertRecord {
        key: key.into(),
        until_ms,
        body: body.into(),
    };
    assert!(
        m.alert_records(AlertKind::Silence)
            .await
            .unwrap()
            .is_empty()
    );
    m.put_alert_record(AlertKind::Silence, &rec("s1", 100, "{\"a\":1}"))
        .await
        .unwrap();
    m.put_alert_record(AlertKind::Silence, &rec("s2", 300, "{}"))
        .await
        .unwrap();
    m.put_alert_record(AlertKind::Silence, &rec("s1", 200, "{\"a\":2}"))
        .await
        .unwrap();
    m.put_alert_record(AlertKind::Notification, &rec("[\"hook\",\"g\"]", 50, "[1]"))
        .await
        .unwrap();
    assert_eq!(
        m.alert_records(AlertKind::Silence).await.unwrap(),
        [rec("s1", 200, "{\"a\":2}"), rec("s2", 300, "{}")]
    );
    assert_eq!(
        m.alert_records(AlertKind::Notification).await.unwrap(),
        [rec("[\"hook\",\"g\"]", 50, "[1]")]
    );
    assert_eq!(
        m.forget_alert_records(AlertKind::Silence, 250)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        m.alert_records(AlertKind::Silence).await.unwrap(),
        [rec("s2", 300, "{}")]
    );
    assert_eq!(
        m.alert_records(AlertKind::Notification)
            .await
            .unwrap()
            .len(),
        1,
        "another kind is left alone"
    );
}

async fn live_nodes(m: &Metastore) -> Vec<triad_metastore::NodeRow> {
    m.nodes()
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.live)
        .collect()
}
use triad_model::config::MetastoreConfig;

fn split(id: &str, signal: Signal, min_ts: i64, max_ts: i64, tenants: &[&str]) -> SplitRow {
    SplitRow {
        split_id: id.into(),
        signal,
        node_id: "node-a".into(),
        state: SplitState::Staged,
        object_key: format!("{}/{id}.split", signal.as_str()),
        bytes: 1000,
        docs: 10,
        min_ts,
        max_ts,
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        created_ms: 0,
        updated_ms: 0,
    }
}

fn ids(rows: &[SplitRow]) -> Vec<&str> {
    rows.iter().map(|r| r.split_id.as_str()).collect()
}

async fn contract(m: &Metastore) {
    let logs = |s, e| ListQuery::published(Signal::Logs, s, e);
    // Staged rows are invisible to readers; staging twice changes nothing.
    m.stage(&split("s1", Signal::Logs, 100, 200, &["a"]))
        .await
        .unwrap();
    m.stage(&split("s1", Signal::Logs, 0, 0, &["zzz"]))
        .await
        .unwrap();
    m.stage(&split("s2", Signal::Logs, 150, 300, &["a", "b"]))
        .await
        .unwrap();
    m.stage(&split("t1", Signal::Traces, 100, 200, &["a"]))
        .await
        .unwrap();
    assert!(m.list(&logs(i64::MIN, i64::MAX)).await.unwrap().is_empty());
    let staged = m
        .list(&ListQuery::in_state(Signal::Logs, SplitState::Staged))
        .await
        .unwrap();
    assert_eq!(ids(&staged), ["s1", "s2"]);
    assert_eq!(staged[0].tenants, ["a"], "the first staging stays");
    assert!(staged[0].created_ms > 0 && staged[0].updated_ms == staged[0].created_ms);

    // Publishing is atomic with the checkpoint, and idempotent.
    let publish = Publish {
        split_ids: vec!["s1".into(), "s2".into()],
        replaces: vec![],
        checkpoint: Some(("node-a".into(), Signal::Logs, 42)),
        ..Publish::default()
    };
    m.publish(&publish).await.unwrap();
    m.publish(&publish).await.unwrap();
    assert_eq!(
        m.checkpoint("node-a", Signal::Logs).await.unwrap(),
        Some(42)
    );
    assert_eq!(m.checkpoint("node-a", Signal::Traces).await.unwrap(), None);
    assert_eq!(m.checkpoint("node-b", Signal::Logs).await.unwrap(), None);

    // Listing prunes by time range (end exclusive), tenant and node.
    assert_eq!(
        ids(&m.list(&logs(0, 100)).await.unwrap()),
        Vec::<&str>::new()
    );
    assert_eq!(ids(&m.list(&logs(0, 101)).await.unwrap()), ["s1"]);
    assert_eq!(ids(&m.list(&logs(201, 250)).await.unwrap()), ["s2"]);
    assert_eq!(ids(&m.list(&logs(300, 301)).await.unwrap()), ["s2"]);
    assert_eq!(
        ids(&m.list(&logs(301, 400)).await.unwrap()),
        Vec::<&str>::new()
    );
    let tenant_b = ListQuery {
        tenant: Some("b".into()),
        ..logs(i64::MIN, i64::MAX)
    };
    assert_eq!(ids(&m.list(&tenant_b).await.unwrap()), ["s2"]);
    let other_node = ListQuery {
        node_id: Some("node-b".into()),
        ..logs(i64::MIN, i64::MAX)
    };
    assert!(m.list(&other_node).await.unwrap().is_empty());
    let traces = ListQuery::published(Signal::Traces, i64::MIN, i64::MAX);
    assert!(
        m.list(&traces).await.unwrap().is_empty(),
        "t1 is still staged"
    );

    // A merge: the merged split is published and its inputs marked in one step; a
    // publication naming a split in the wrong state applies nothing.
    m.stage(&split("m1", Signal::Logs, 100, 300, &["a", "b"]))
        .await
        .unwrap();
    m.stage(&split("m2", Signal::Logs, 100, 300, &["a"]))
        .await
        .unwrap();
    let bad = Publish {
        split_ids: vec!["m2".into()],
        replaces: vec!["s1".into(), "nope".into()],
        checkpoint: Some(("node-a".into(), Signal::Logs, 99)),
        operations: vec![OperationRow {
            tenant: "default".into(),
            service: "lost".into(),
            span_kind: String::new(),
            name: "never".into(),
        }],
        fence: None,
    };
    assert!(matches!(m.publish(&bad).await, Err(MetastoreError::Conflict(id)) if id == "nope"));
    assert_eq!(
        m.checkpoint("node-a", Signal::Logs).await.unwrap(),
        Some(42),
        "rolled back"
    );
    assert_eq!(
        ids(&m.list(&logs(i64::MIN, i64::MAX)).await.unwrap()),
        ["s1", "s2"]
    );
    let merge = Publish {
        split_ids: vec!["m1".into()],
        replaces: vec!["s1".into(), "s2".into()],
        checkpoint: Some(("node-a".into(), Signal::Logs, 7)),
        ..Publish::default()
    };
    m.publish(&merge).await.unwrap();
    assert_eq!(
        ids(&m.list(&logs(i64::MIN, i64::MAX)).await.unwrap()),
        ["m1"]
    );
    assert_eq!(
        m.checkpoint("node-a", Signal::Logs).await.unwrap(),
        Some(42),
        "a checkpoint never moves back"
    );
    let marked = ListQuery::in_state(Signal::Logs, SplitState::Marked);
    assert_eq!(ids(&m.list(&marked).await.unwrap()), ["s1", "s2"]);
    assert!(matches!(
        m.publish(&merge).await,
        Err(MetastoreError::Conflict(_))
    ));

    // Retention marks; the janitor removes rows only once they are not published.
    assert_eq!(m.mark(&["m1".into(), "s1".into()]).await.unwrap(), 1);
    assert_eq!(
        m.remove(&["t1".into(), "m2".into(), "s1".into()])
            .await
            .unwrap(),
        3
    );
    let grace = ListQuery {
        updated_before_ms: Some(0),
        ..marked.clone()
    };
    assert!(
        m.list(&grace).await.unwrap().is_empty(),
        "nothing marked before 1970"
    );
    assert_eq!(ids(&m.list(&marked).await.unwrap()), ["m1", "s2"]);
    m.publish(&Publish {
        split_ids: vec![],
        replaces: vec![],
        checkpoint: Some(("node-a".into(), Signal::Traces, 5)),
        ..Publish::default()
    })
    .await
    .unwrap();
    assert_eq!(
        m.checkpoint("node-a", Signal::Traces).await.unwrap(),
        Some(5)
    );

    // The services catalog: entered with publications, each entry once, forgotten
    // when no publication held it since.
    let op = |service: &str, kind: &str, name: &str| OperationRow {
        tenant: "default".into(),
        service: service.into(),
        span_kind: kind.into(),
        name: name.into(),
    };
    assert!(
        m.operations().await.unwrap().is_empty(),
        "nothing of a refused publication"
    );
    let ops = vec![
        op("cart", "server", "GET /cart"),
        op("api", "client", "call"),
    ];
    for _ in 0..2 {
        m.publish(&Publish {
            operations: ops.clone(),
            ..Publish::default()
        })
        .await
        .unwrap();
    }
    assert_eq!(
        m.operations().await.unwrap(),
        [
            op("api", "client", "call"),
            op("cart", "server", "GET /cart")
        ]
    );
    assert_eq!(m.forget_operations(0).await.unwrap(), 0, "seen since 1970");
    assert_eq!(m.forget_operations(i64::MAX).await.unwrap(), 2);
    assert!(m.operations().await.unwrap().is_empty());
}

/// Tokens in PostgreSQL: added once by name and hash, listed, removed.
async fn tokens(m: &Metastore) {
    use triad_model::auth::{Role, TokenHash};
    use triad_model::config::TokenConfig;
    let token = |name: &str, secret: &str| TokenConfig {
        name: name.into(),
        hash: TokenHash::of(secret).to_string(),
        tenant: "team-a".into(),
        role: Role::Write,
        trusted: false,
    };
    assert!(m.tokens().await.unwrap().is_empty());
    assert!(m.add_token(&token("agents", "s1")).await.unwrap());
    assert!(
        !m.add_token(&token("agents", "s2")).await.unwrap(),
        "name taken"
    );
    assert!(
        !m.add_token(&token("other", "s1")).await.unwrap(),
        "hash taken"
    );
    let gateway = TokenConfig {
        role: Role::Read,
        trusted: true,
        ..token("gateway", "s3")
    };
    assert!(m.add_token(&gateway).await.unwrap());
    assert_eq!(m.tokens().await.unwrap(), [token("agents", "s1"), gateway]);
    assert!(m.remove_token("agents").await.unwrap());
    assert!(!m.remove_token("agents").await.unwrap());
    assert_eq!(m.tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_file_metastore_keeps_the_contract_and_its_state_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = MetastoreConfig::default();
    let m = Metastore::open(&cfg, dir.path()).await.unwrap();
    contract(&m).await;
    leases(&m).await;
    alert_state(&m).await;
    // Its one process takes tokens from its configuration.
    assert!(m.tokens().await.unwrap().is_empty());
    assert!(matches!(
        m.remove_token("x").await,
        Err(MetastoreError::Config(_))
    ));
    drop(m);
    let m = Metastore::open(&cfg, dir.path()).await.unwrap();
    let marked = ListQuery::in_state(Signal::Logs, SplitState::Marked);
    assert_eq!(ids(&m.list(&marked).await.unwrap()), ["m1", "s2"]);
    assert_eq!(
        m.checkpoint("node-a", Signal::Logs).await.unwrap(),
        Some(42)
    );
    std::fs::write(dir.path().join("metastore.json"), b"{broken").unwrap();
    assert!(matches!(
        Metastore::open(&cfg, dir.path()).await,
        Err(MetastoreError::Corrupt(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_same_contract_and_survives_a_restart() {
    let pg = Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two processes starting together apply the migrations once.
    let cfg = pg.config();
    let (a, b) = tokio::join!(
        Metastore::open(&cfg, dir.path()),
        Metastore::open(&cfg, dir.path())
    );
    let (m, _other) = (a.unwrap(), b.unwrap());
    contract(&m).await;
    leases(&m).await;
    alert_state(&m).await;
    tokens(&m).await;

    // Unreachable: an error, not an empty answer; back: the pool reconnects.
    pg.stop().unwrap();
    let marked = ListQuery::in_state(Signal::Logs, SplitState::Marked);
    assert!(matches!(
        m.list(&marked).await,
        Err(MetastoreError::Postgres(_))
    ));
    pg.start_server().unwrap();
    let mut rows = Err(MetastoreError::Postgres("not tried".into()));
    for _ in 0..50 {
        rows = m.list(&marked).await;
        if rows.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ids(&rows.unwrap()), ["m1", "s2"]);

    let wrong = MetastoreConfig {
        url: "postgres://triad@127.0.0.1:1/postgres".into(),
        timeout_secs: 2,
        ..MetastoreConfig::default()
    };
    assert!(Metastore::open(&wrong, dir.path()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exclusive_worker_at_a_time_across_processes() {
    let pg = Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let b = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = tokio::spawn(async move {
        a.exclusively("janitor", async move {
            entered_tx.send(()).unwrap();
            release_rx.await.unwrap();
            "a"
        })
        .await
        .unwrap()
    });
    entered_rx.await.unwrap();
    assert_eq!(
        b.exclusively("janitor", async { "b" }).await.unwrap(),
        None,
        "held by a"
    );
    assert_eq!(
        b.exclusively("other", async { "b" }).await.unwrap(),
        Some("b"),
        "another lock is free"
    );
    release_tx.send(()).unwrap();
    assert_eq!(holder.await.unwrap(), Some("a"));
    assert_eq!(
        b.exclusively("janitor", async { "b" }).await.unwrap(),
        Some("b"),
        "released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_until_it_lets_go_or_its_server_goes() {
    let pg = Postgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let b = Metastore::open(&pg.config(), dir.path()).await.unwrap();
    let lead = a
        .lead("triad-alerting")
        .await
        .unwrap()
        .expect("free at first");
    assert!(lead.holds().await);
    assert!(
        b.lead("triad-alerting").await.unwrap().is_none(),
        "held by a"
    );
    assert!(
        b.lead("other").await.unwrap().is_some(),
        "another name is free"
    );
    drop(lead);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let taken = loop {
        if let Some(l) = b.lead("triad-alerting").await.unwrap() {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(taken.holds().await);
    // The server goes away: the lock with it, and the holder can tell.
    pg.stop().unwrap();
    assert!(!taken.holds().await);
    // The file metastore has one process: it always leads.
    let file = Metastore::open(
        &MetastoreConfig {
            url: "file://".into(),
            ..MetastoreConfig::default()
        },
        dir.path(),
    )
    .await
    .unwrap();
    assert!(file.lead("triad-alerting").await.unwrap().is_some());
}
