//! The replication loop (see the module docs of `replicate`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Options;
use super::copy::{Action, DeletePolicy, dst_token, handle};
use super::feed::FeedEvent;
use super::state::{Entry, State, fingerprint};
use super::status::{LagWindow, RuleStatus, prometheus, serve_metrics, write_status};
use crate::error::{BucketError, Result};
use crate::store::Bucket;

mod caught;
mod changes;
use changes::{Listing, start_feed};

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Objects copied.
    pub copied: u64,
    /// Objects deleted at the destination.
    pub deleted: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Objects still waiting when the run stopped.
    pub backlog: u64,
    /// Objects that failed for good (parked until they change): not copied.
    pub parked: u64,
}

struct Pending {
    first_seen: Instant,
    not_before: Instant,
    seq: u64,
    size: u64,
    /// The version a listing showed (S3 sources: saves a HEAD).
    hint: Option<String>,
}

type TaskResult = (String, Option<u64>, Result<Action>);
/// A listed object: key, version fingerprint, size, version token.
type Listed = (String, u64, u64, String);

struct Engine {
    src: Bucket,
    dst: Bucket,
    opts: Options,
    state: State,
    queue: HashMap<String, Pending>,
    heap: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    in_flight: HashMap<String, bool>,
    tasks: JoinSet<TaskResult>,
    parked: HashMap<String, u64>,
    lag: LagWindow,
    status: RuleStatus,
    pause_until: Instant,
    consecutive_failures: u32,
    backfill_left: Option<HashSet<String>>,
    metrics: Arc<Mutex<String>>,
    /// When the destination's fence was last found absent.
    fence_checked: Option<Instant>,
    /// The mark last written into the replica (`caught.rs`).
    caught: caught::CaughtUp,
}

/// How long a check that the destination is not fenced holds for writes.
const FENCE_EVERY: Duration = Duration::from_secs(1);

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    let p = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| BucketError::State {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        BucketError::State {
            path: p.display().to_string(),
            reason:
                "another replicator runs this rule (its state directory is locked); stop it first"
                    .into(),
        }
    })?;
    Ok(f)
}

/// Runs a rule until `stop` turns true.
pub async fn run(opts: Options, mut stop: watch::Receiver<bool>) -> Result<Report> {
    let (engine, lock) = Engine::open(opts).await?;
    // The state directory stays locked until after the engine is dropped.
    let _lock = lock;
    let mut e = engine;
    e.publish()?;
    // Never a pass over a fenced destination (a recovery uses it in place);
    // one that cannot be asked now is asked again before the first write.
    match super::fence::check(&e.dst).await {
        Ok(()) => e.fence_checked = Some(Instant::now()),
        Err(err @ BucketError::Fenced { .. }) => return Err(e.fenced(err)),
        Err(err) => e.note_error(&err),
    }
    // The feed starts before the first listing, so no change falls between.
    let (_feed, mut feed_rx) = start_feed(&e)?;
    let first_listing = chrono::Utc::now();
    e.reconcile().await?;
    let mut list = Listing::new(&e);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_publish = Instant::now();
    let mut fenced = None;
    loop {
        // Before each batch of writes: the destination is still not fenced.
        if let Some(err) = e.check_fence().await {
            fenced = Some(err);
            break;
        }
        e.dispatch();
        if e.opts.once && e.queue.is_empty() && e.tasks.is_empty() {
            break;
        }
        tokio::select! {
            _ = stop.changed() => break,
            Some(ev) = feed_rx.recv() => match ev {
                FeedEvent::Keys(keys) => {
                    for k in keys {
                        e.enqueue(k, 0, Duration::from_millis(50));
                    }
                }
                FeedEvent::Rescan => list.next = Instant::now(),
            },
            Some(res) = e.tasks.join_next(), if !e.tasks.is_empty() => {
                let (key, seen, r) = res.expect("copy task panicked");
                e.finish(key, seen, r);
            }
            Some(res) = list.rx.recv() => list.done(&mut e, res),
            _ = tick.tick() => {
                list.start_if_due(&e);
                e.mark_caught_up(&list).await;
                if last_publish.elapsed() >= Duration::from_secs(1) {
                    last_publish = Instant::now();
                    if let Err(err) = e.state.checkpoint() {
                        e.note_error(&err);
                    }
                    if let Err(err) = e.publish() {
                        tracing::warn!("{err}");
                    }
                }
            }
        }
    }
    e.drain().await;
    if fenced.is_none() && e.opts.once {
        // One pass done: every change before its listing is in the replica.
        e.mark_once(first_listing).await;
    }
    e.dst.sync().await?;
    e.state.checkpoint()?;
    if let Some(err) = fenced {
        return Err(e.fenced(err));
    }
    e.status.phase = "stopped".into();
    e.publish()?;
    Ok(Report {
        copied: e.status.copied_objects,
        deleted: e.status.deleted_objects,
        failures: e.status.failures,
        backlog: e.queue.len() as u64,
        parked: e.parked.len() as u64,
    })
}

impl Engine {
    /// Opens a rule's buckets and its state directory (locked: one
    /// replicator per rule, the lock returned with the engine) and serves its
    /// metrics when asked.
    async fn open(opts: Options) -> Result<(Engine, std::fs::File)> {
        if opts.from == opts.to {
            return Err(BucketError::BadAddress {
                address: opts.to.clone(),
                reason: "source and destination are the same bucket".into(),
            });
        }
        let src = Bucket::open_address(&opts.from, false)?;
        let dst = Bucket::open_address(&opts.to, true)?;
        std::fs::create_dir_all(&opts.state_dir).map_err(|e| BucketError::State {
            path: opts.state_dir.display().to_string(),
            reason: format!("cannot create it: {e}"),
        })?;
        let lock = lock_dir(&opts.state_dir)?;
        let header = format!(
            "lifeboat-replication-state 1 from={} to={} prefix={:?}",
            opts.from, opts.to, opts.prefix
        );
        let state = State::load(&opts.state_dir, &header)?;
        let metrics = Arc::new(Mutex::new(String::new()));
        if let Some(addr) = &opts.metrics_listen {
            serve_metrics(addr, metrics.clone()).await?;
        }
        let status = RuleStatus {
            rule: opts
                .state_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            from: opts.from.clone(),
            to: opts.to.clone(),
            prefix: opts.prefix.clone(),
            delete_markers: match opts.delete_markers {
                DeletePolicy::Replicate => "replicate",
                DeletePolicy::Ignore => "ignore",
            }
            .into(),
            phase: "starting".into(),
            pid: std::process::id(),
            started: rfc3339_now(),
            ..RuleStatus::default()
        };
        let e = Engine {
            src,
            dst,
            opts,
            state,
            queue: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
            parked: HashMap::new(),
            lag: LagWindow::default(),
            status,
            pause_until: Instant::now(),
            consecutive_failures: 0,
            backfill_left: None,
            metrics,
            fence_checked: None,
            caught: caught::CaughtUp::default(),
        };
        Ok((e, lock))
    }

    /// Before a batch of writes, asks again (at most once a second) whether
    /// the destination is fenced; returns the fence when it is. One that
    /// cannot be asked holds the writes for a second.
    async fn check_fence(&mut self) -> Option<BucketError> {
        if !self.writes_due()
            || self
                .fence_checked
                .is_some_and(|t| t.elapsed() < FENCE_EVERY)
        {
            return None;
        }
        match super::fence::check(&self.dst).await {
            Ok(()) => self.fence_checked = Some(Instant::now()),
            Err(err @ BucketError::Fenced { .. }) => return Some(err),
            // Unknown (the destination does not answer): no write until
            // it is asked again, a second later.
            Err(err) => {
                self.note_error(&err);
                self.pause_until = Instant::now() + FENCE_EVERY;
            }
        }
        None
    }

    /// On stop: lets the copies in flight finish (30 s at most; the others
    /// are redone at the next start).
    async fn drain(&mut self) {
        let deadline = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(deadline);
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(res) = self.tasks.join_next() => {
                    if let Ok((key, seen, r)) = res {
                        self.finish(key, seen, r);
                    }
                }
                _ = &mut deadline => {
                    tracing::warn!("{} copies did not finish in 30 s; they are redone at the next start", self.tasks.len());
                    self.tasks.abort_all();
                    break;
                }
            }
        }
    }

    fn enqueue(&mut self, key: String, size: u64, debounce: Duration) {
        self.enqueue_hinted(key, size, debounce, None);
    }

    fn enqueue_hinted(&mut self, key: String, size: u64, debounce: Duration, hint: Option<String>) {
        // A replicator's fence and mark are no objects of the content, not
        // even when a watch reports them (a replica that is a source too).
        if key == super::fence::FENCE_KEY || key == super::caught_up::CAUGHT_UP_KEY {
            return;
        }
        let now = Instant::now();
        if let Some(dirty) = self.in_flight.get_mut(&key) {
            *dirty = true;
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        let p = self.queue.entry(key.clone()).or_insert(Pending {
            first_seen: now,
            not_before: now,
            seq,
            size,
            hint: None,
        });
        p.size = p.size.max(size);
        p.hint = hint;
        // Debounce a burst of events, but never past a second after the first.
        p.not_before = (now + debounce)
            .min(p.first_seen + Duration::from_secs(1))
            .max(p.not_before);
        p.seq = seq;
        self.heap.push(Reverse((p.not_before, seq, key)));
    }

    /// Whether a copy or delete would start now.
    fn writes_due(&self) -> bool {
        let now = Instant::now();
        now >= self.pause_until
            && self.tasks.len() < self.opts.concurrency.max(1)
            && self
                .heap
                .peek()
                .is_some_and(|Reverse((at, _, _))| *at <= now)
    }

    /// Records the fence that stops this run (status `fenced`) and returns it.
    fn fenced(&mut self, err: BucketError) -> BucketError {
        tracing::error!("{err}");
        self.note_error(&err);
        self.status.phase = "fenced".into();
        if let Err(e) = self.state.checkpoint().and_then(|_| self.publish()) {
            tracing::warn!("{e}");
        }
        err
    }

    fn dispatch(&mut self) {
        let now = Instant::now();
        if now < self.pause_until {
            return;
        }
        while self.tasks.len() < self.opts.concurrency.max(1) {
            let Some(Reverse((at, seq, _))) = self.heap.peek() else {
                break;
            };
            if *at > now {
                break;
            }
            let _ = seq;
            let Reverse((_, seq, key)) = self.heap.pop().expect("peeked");
            match self.queue.get(&key) {
                Some(p) if p.seq == seq => {}
                _ => continue, // superseded entry
            }
            if self.in_flight.contains_key(&key) {
                continue;
            }
            self.in_flight.insert(key.clone(), false);
            let (src, dst) = (self.src.clone(), self.dst.clone());
            let entry = self.state.map.get(&key).copied();
            let parked = self.parked.get(&key).copied();
            let policy = self.opts.delete_markers;
            let hint = self.queue.get_mut(&key).and_then(|p| p.hint.take());
            self.tasks.spawn(async move {
                let (seen, r) = handle(&src, &dst, &key, entry, policy, parked, hint).await;
                (key, seen, r)
            });
        }
    }

    fn finish(&mut self, key: String, seen: Option<u64>, r: Result<Action>) {
        let dirty = self.in_flight.remove(&key).unwrap_or(false);
        let mut retry_at = None;
        match r {
            Ok(action) => {
                self.consecutive_failures = 0;
                if !matches!(action, Action::StillParked) {
                    self.parked.remove(&key);
                }
                match action {
                    Action::Copied {
                        src,
                        dst,
                        bytes,
                        modified_ns,
                    } => {
                        self.state.set(
                            &key,
                            Some(Entry {
                                src,
                                dst,
                                copied: true,
                            }),
                        );
                        self.status.copied_objects += 1;
                        self.status.copied_bytes += bytes;
                        if modified_ns >= self.state.created_ns {
                            self.lag.add((now_ns() - modified_ns) as f64 / 1e9);
                        }
                    }
                    Action::Deleted => {
                        self.state.set(&key, None);
                        self.status.deleted_objects += 1;
                    }
                    Action::Forget => self.state.set(&key, None),
                    Action::Nothing | Action::StillParked => {}
                }
            }
            Err(err) => {
                self.note_error(&err);
                if err.is_retryable() {
                    self.consecutive_failures += 1;
                    let backoff = Duration::from_millis(100u64 << self.consecutive_failures.min(6))
                        .min(Duration::from_secs(5));
                    self.pause_until = Instant::now() + backoff;
                    retry_at = Some(self.pause_until);
                } else {
                    tracing::warn!("{err} (parked until the object changes)");
                    if let Some(fp) = seen {
                        self.parked.insert(key.clone(), fp);
                    }
                }
            }
        }
        match retry_at {
            Some(at) => {
                // Keep its place (and its age, for the backlog) in the queue.
                if let Some(p) = self.queue.get_mut(&key) {
                    p.not_before = at;
                    self.seq += 1;
                    p.seq = self.seq;
                    self.heap.push(Reverse((at, self.seq, key.clone())));
                }
            }
            None => {
                self.queue.remove(&key);
                if let Some(b) = &mut self.backfill_left {
                    b.remove(&key);
                }
                if dirty {
                    self.enqueue(key, 0, Duration::ZERO);
                }
            }
        }
    }

    fn note_error(&mut self, err: &BucketError) {
        tracing::debug!("{err}");
        self.status.failures += 1;
        self.status.last_error = Some(err.to_string());
        self.status.last_error_time = Some(rfc3339_now());
    }

    /// First listing of a run: what changed while no replicator ran.
    async fn reconcile(&mut self) -> Result<()> {
        let mut dst_fp: HashMap<String, u64> = HashMap::new();
        if self.state.resumed {
            self.dst
                .list(&self.opts.prefix, &mut |o| {
                    dst_fp.insert(o.key.clone(), fingerprint(&dst_token(&o)));
                })
                .await?;
        }
        let mut listed = Vec::new();
        self.src
            .list(&self.opts.prefix, &mut |o| {
                listed.push((o.key, fingerprint(&o.version), o.size, o.version))
            })
            .await?;
        let fresh = !self.state.resumed;
        let mut seen = HashSet::with_capacity(listed.len());
        let mut todo = Vec::new();
        for (key, fp, size, version) in listed {
            match self.state.map.get(&key) {
                None if fresh && !self.opts.existing => {
                    self.state.set(
                        &key,
                        Some(Entry {
                            src: fp,
                            dst: 0,
                            copied: false,
                        }),
                    );
                }
                None => todo.push((key.clone(), size, Some(version))),
                Some(e) if e.src != fp => todo.push((key.clone(), size, Some(version))),
                Some(e) if e.copied && dst_fp.get(&key) != Some(&e.dst) => {
                    todo.push((key.clone(), size, None))
                }
                Some(_) => {}
            }
            seen.insert(key);
        }
        let gone: Vec<String> = self
            .state
            .map
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        drop(seen);
        todo.extend(gone.into_iter().map(|k| (k, 0, None)));
        tracing::info!(
            "{} objects to replicate or delete after the first listing",
            todo.len()
        );
        self.backfill_left = Some(todo.iter().map(|(k, _, _)| k.clone()).collect());
        for (k, size, hint) in todo {
            self.enqueue_hinted(k, size, Duration::ZERO, hint);
        }
        self.state.checkpoint()?;
        Ok(())
    }

    /// A later listing: queue what differs from the state. Returns whether anything did.
    fn apply_listing(&mut self, list: Vec<Listed>) -> bool {
        let mut seen = HashSet::with_capacity(list.len());
        let mut changed = false;
        for (key, fp, size, version) in list {
            let differs = match self.state.map.get(&key) {
                None => true,
                Some(e) => e.src != fp,
            };
            if differs && self.parked.get(&key) != Some(&fp) && !self.queue.contains_key(&key) {
                changed = true;
                self.enqueue_hinted(key.clone(), size, Duration::ZERO, Some(version));
            }
            seen.insert(key);
        }
        let gone: Vec<String> = self
            .state
            .map
            .keys()
            .filter(|k| !seen.contains(*k) && !self.queue.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            changed = true;
            self.enqueue(k, 0, Duration::ZERO);
        }
        changed
    }

    fn publish(&mut self) -> Result<()> {
        let now = Instant::now();
        let s = &mut self.status;
        s.updated = rfc3339_now();
        s.backlog_objects = self.queue.len() as u64;
        s.backlog_bytes = self.queue.values().map(|p| p.size).sum();
        s.oldest_pending_s = self
            .queue
            .values()
            .map(|p| (now - p.first_seen).as_secs_f64())
            .fold(0.0, f64::max);
        s.in_flight = self.tasks.len() as u64;
        s.failed_objects = self.parked.len() as u64;
        s.objects_tracked = self.state.map.len() as u64;
        (s.lag_p50_s, s.lag_p99_s, s.lag_max_s, s.lag_samples) = self.lag.quantiles();
        let ended = s.phase == "stopped" || s.phase == "fenced";
        if !ended {
            s.phase = match &self.backfill_left {
                None => "starting",
                Some(b) if !b.is_empty() => "backfilling",
                Some(_) => "replicating",
            }
            .into();
        }
        let mut running = s.clone();
        running.running = !ended;
        *self.metrics.lock().expect("metrics lock") = prometheus(&[running]);
        write_status(&self.opts.state_dir, s)
    }
}
