//! Where writes run. On PostgreSQL each write is its own transaction. On SQLite, which has
//! one writer at a time, writes queue for a single connection that commits them in groups:
//! every write waiting when a transaction starts joins it, so one `fsync` makes a whole
//! group durable. A write is acknowledged only after the commit that holds it returns.
//!
//! If any write of a group fails, the group is rolled back and each of its writes is run
//! again in a transaction of its own, so one write's failure never affects another's.

use std::sync::Arc;

use futures_core::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::errors::map_error;
use crate::error::StoreError;

/// One write: statements run on the connection inside a transaction. It may run more than
/// once (after its group failed), so it must not consume what it writes.
pub(super) type WriteJob = Arc<
    dyn for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, Result<(), StoreError>> + Send + Sync,
>;

/// The statements of a write, given the connection and the write's data.
pub(super) type WriteFn<T> =
    for<'c> fn(&'c mut AnyConnection, Arc<T>) -> BoxFuture<'c, Result<(), StoreError>>;

/// Most writes committed together.
const MAX_GROUP: usize = 64;
/// Writes waiting for the SQLite writer before callers wait to enqueue.
const QUEUE_DEPTH: usize = 1024;

pub(super) struct Pending {
    job: WriteJob,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Runs write transactions.
#[derive(Debug, Clone)]
pub(super) enum Writer {
    /// Each write in its own transaction on the shared pool.
    Direct { pool: AnyPool, begin: &'static str },
    /// Writes queue for one task that group-commits them.
    Queued(mpsc::Sender<Pending>),
}

impl Writer {
    /// A writer running each write directly on `pool`.
    pub(super) fn direct(pool: AnyPool, begin: &'static str) -> Self {
        Writer::Direct { pool, begin }
    }

    /// A writer whose task group-commits on `pool` (one connection).
    pub(super) fn queued(pool: AnyPool, begin: &'static str) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run_queue(pool, begin, receiver));
        Writer::Queued(sender)
    }

    /// Runs `job` in a transaction and returns once it is committed.
    pub(super) async fn write(&self, job: WriteJob) -> Result<(), StoreError> {
        match self {
            Writer::Direct { pool, begin } => {
                run_group(pool, begin, std::slice::from_ref(&job)).await
            }
            Writer::Queued(sender) => {
                let (reply, answer) = oneshot::channel();
                sender
                    .send(Pending { job, reply })
                    .await
                    .map_err(|_| StoreError::Internal("the store's writer has stopped".into()))?;
                answer
                    .await
                    .map_err(|_| StoreError::Internal("the store's writer has stopped".into()))?
            }
        }
    }
}

async fn run_queue(pool: AnyPool, begin: &'static str, mut receiver: mpsc::Receiver<Pending>) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let jobs: Vec<WriteJob> = group.iter().map(|p| p.job.clone()).collect();
        match run_group(&pool, begin, &jobs).await {
            Ok(()) => group.into_iter().for_each(|p| drop(p.reply.send(Ok(())))),
            Err(error) if group.len() == 1 => {
                if let Some(pending) = group.pop() {
                    let _ = pending.reply.send(Err(error));
                }
            }
            Err(_) => {
                for pending in group {
                    let result = run_group(&pool, begin, std::slice::from_ref(&pending.job)).await;
                    let _ = pending.reply.send(result);
                }
            }
        }
    }
    pool.close().await;
}

/// Makes a write job of owned data and a function of it; the data is shared, not copied,
/// when the job runs again.
pub(super) fn job<T: Send + Sync + 'static>(data: T, run: WriteFn<T>) -> WriteJob {
    let data = Arc::new(data);
    Arc::new(move |conn| run(conn, data.clone()))
}

/// Runs `jobs` in one transaction; commits only if every one succeeded.
async fn run_group(
    pool: &AnyPool,
    begin: &'static str,
    jobs: &[WriteJob],
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with(begin).await.map_err(map_error)?;
    for job in jobs {
        job(&mut tx).await?;
    }
    tx.commit().await.map_err(map_error)
}
