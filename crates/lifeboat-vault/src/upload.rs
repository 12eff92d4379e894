//! Storing finished packs in the background.
//!
//! A backup's threads hash, compress and seal; writing a 16 MiB pack and
//! syncing it (or sending it to an object store) is waiting, not work. The
//! uploader takes finished packs through a bounded queue and stores them on
//! its own threads, so the work goes on meanwhile; a full queue makes the
//! producers wait (memory stays bounded: [`QUEUE`] packs queued plus
//! [`THREADS`] being stored).
//!
//! The session learns of each stored pack through [`Uploader::collect`] and
//! only then lists it in an index file: the write order of the format spec
//! (§11: a pack before any index naming it) is kept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::pack::{PackEntry, pack_path};
use crate::storage::Storage;

/// Packs stored at once.
pub const THREADS: usize = 2;
/// Finished packs waiting for a thread.
pub const QUEUE: usize = 1;

type Job = (Id, Vec<u8>, Vec<PackEntry>);
/// A pack stored (or not): its id, its entries, and the outcome.
pub type Stored = (Id, Vec<PackEntry>, Result<()>);

/// The background pack writer of one session.
pub struct Uploader {
    tx: Mutex<Option<SyncSender<Job>>>,
    done: Mutex<Receiver<Stored>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    in_flight: AtomicUsize,
}

impl Uploader {
    /// Starts the threads.
    pub fn start(storage: &Storage) -> Uploader {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        // Unbounded: a thread never waits to report (reports are small).
        let (done_tx, done) = channel::<Stored>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..THREADS)
            .map(|i| {
                let rx = rx.clone();
                let done_tx = done_tx.clone();
                let storage = storage.clone();
                std::thread::Builder::new()
                    .name(format!("lifeboat-upload-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().expect("lock").recv();
                            let Ok((id, bytes, entries)) = job else {
                                return; // the session closed the queue
                            };
                            let r = storage.write(&pack_path(&id), bytes);
                            if done_tx.send((id, entries, r)).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn an upload thread")
            })
            .collect();
        Uploader {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(done),
            threads: Mutex::new(threads),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Queues a finished pack; waits while the queue is full.
    pub fn send(&self, id: Id, bytes: Vec<u8>, entries: Vec<PackEntry>) -> Result<()> {
        let tx = self.tx.lock().expect("lock").clone();
        let Some(tx) = tx else {
            return Err(closed());
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if tx.send((id, bytes, entries)).is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(closed());
        }
        Ok(())
    }

    /// Hands each pack stored since the last call to `record` (in the order
    /// they were stored); with `wait`, first waits until every queued pack is
    /// stored. The first failed store is returned after the packs stored
    /// before it were recorded.
    pub fn collect(
        &self,
        wait: bool,
        mut record: impl FnMut(Id, Vec<PackEntry>) -> Result<()>,
    ) -> Result<()> {
        let done = self.done.lock().expect("lock");
        let mut first_err = None;
        loop {
            let item = if wait && self.in_flight.load(Ordering::SeqCst) > 0 {
                match done.recv() {
                    Ok(i) => i,
                    Err(_) => break,
                }
            } else {
                match done.try_recv() {
                    Ok(i) => i,
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let (id, entries, r) = item;
            match r {
                Ok(()) => {
                    if let Err(e) = record(id, entries) {
                        first_err.get_or_insert(e);
                    }
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Closes the queue and waits for the threads: after this, no pack of
    /// this session is being written.
    pub fn close(&self) {
        self.tx.lock().expect("lock").take();
        for t in self.threads.lock().expect("lock").drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.close();
    }
}

fn closed() -> VaultError {
    VaultError::Storage {
        op: "write",
        path: "packs/".into(),
        message: "the pack writer of this backup stopped".into(),
        retryable: false,
        no_space: false,
    }
}
