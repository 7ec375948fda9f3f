//! What one usage flush costs the store: the counts of `ROWS` credentials' current minute
//! (an upsert each) and their last uses, written to a SQLite file as the flush writes
//! them, in batched statements.
//!
//! `cargo bench -p keyward-store --bench usage_writes` (release build).

use keyward_core::typeid::CredentialId;
use keyward_store::testing::TestDatabase;
use keyward_store::{CredentialUse, SqlStore, UsageCount, UsageStore};
use time::OffsetDateTime;

fn main() {
    divan::main();
}

/// Row counts: a whole number of statements, and one with a remainder.
const ROWS: [usize; 2] = [1_000, 1_337];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A store on a fresh SQLite file and `rows` credential ids.
fn store(
    runtime: &tokio::runtime::Runtime,
    rows: usize,
) -> (SqlStore, TestDatabase, Vec<CredentialId>) {
    let database = TestDatabase::sqlite();
    let store = runtime
        .block_on(SqlStore::open(database.url()))
        .expect("the store opens");
    let ids = (0..rows).map(|_| CredentialId::generate()).collect();
    (store, database, ids)
}

#[divan::bench(args = ROWS, sample_count = 20, sample_size = 1)]
fn record_usage(bencher: divan::Bencher, rows: usize) {
    let runtime = runtime();
    let (store, _database, ids) = store(&runtime, rows);
    let counts: Vec<UsageCount> = ids
        .iter()
        .map(|id| UsageCount {
            credential_id: id.clone(),
            minute: 29_000_000,
            outcome: "VALID".into(),
            count: 60,
            via_query: 0,
        })
        .collect();
    bencher.bench_local(|| {
        runtime
            .block_on(store.record_usage(&counts))
            .expect("written")
    });
}

#[divan::bench(args = ROWS, sample_count = 20, sample_size = 1)]
fn record_credential_uses(bencher: divan::Bencher, rows: usize) {
    let runtime = runtime();
    let (store, _database, ids) = store(&runtime, rows);
    let uses: Vec<CredentialUse> = ids
        .iter()
        .map(|id| CredentialUse {
            credential_id: id.clone(),
            at: OffsetDateTime::now_utc(),
            ip: Some([127, 0, 0, 2].into()),
        })
        .collect();
    bencher.bench_local(|| {
        runtime
            .block_on(store.record_credential_uses(&uses))
            .expect("written")
    });
}
