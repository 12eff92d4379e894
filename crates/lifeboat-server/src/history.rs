//! Replication lag over time, for the console's chart: a small ring of
//! samples per rule kept in the server's memory (not persisted: a restarted
//! server starts a new history). A task of `serve` takes a sample every
//! [`INTERVAL`]; a request takes one too when the newest is older than
//! [`ON_REQUEST`], so a page opened just after a change shows it. The ring
//! keeps [`KEEP_FOR`] (2 hours, at most [`KEEP`] samples). The replicators'
//! own status files hold only the current lag; Prometheus (`/metrics`,
//! `lifeboat_replication_lag_seconds`) is the place for a long history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use crate::error::{ErrorBody, blocking};
use crate::views_stacks::{LagHistory, LagSample};
use crate::{ApiError, AppState};

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A request takes a sample when the newest is older than this.
pub const ON_REQUEST: Duration = Duration::from_secs(2);
/// How long samples are kept.
pub const KEEP_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(2);
/// At most this many samples per rule.
pub const KEEP: usize = 3600;

/// Samples per rule.
#[derive(Default)]
pub struct Ring(Mutex<BTreeMap<String, VecDeque<LagSample>>>);

impl Ring {
    /// Takes a sample of every rule unless the newest is younger than
    /// `min_age` (blocking: reads the status files).
    pub(crate) fn sample(&self, st: &AppState, min_age: Duration) {
        let now = Utc::now();
        {
            let m = self.0.lock().expect("lag ring");
            let newest = m.values().filter_map(|q| q.back()).map(|s| s.t).max();
            if newest.is_some_and(|t| (now - t).to_std().unwrap_or_default() < min_age) {
                return;
            }
        }
        let views = crate::routes_read::replication_views(st);
        let mut m = self.0.lock().expect("lag ring");
        m.retain(|name, _| views.iter().any(|v| &v.name == name));
        for v in views {
            let q = m.entry(v.name).or_default();
            q.push_back(LagSample {
                t: now,
                running: v.running,
                lag_p50_s: v.lag_p50_s,
                lag_p99_s: v.lag_p99_s,
                backlog_objects: v.backlog_objects,
                backlog_bytes: v.backlog_bytes,
            });
            while q.len() > KEEP || q.front().is_some_and(|s| now - s.t > KEEP_FOR) {
                q.pop_front();
            }
        }
    }

    fn all(&self) -> Vec<LagHistory> {
        self.0
            .lock()
            .expect("lag ring")
            .iter()
            .map(|(name, q)| LagHistory {
                name: name.clone(),
                samples: q.iter().cloned().collect(),
            })
            .collect()
    }
}

/// Samples every [`INTERVAL`] until the server stops.
pub(crate) async fn sampler(st: AppState) {
    let mut stop = st.0.shutdown.clone();
    loop {
        let s = st.clone();
        let _ = blocking(move || {
            s.0.lag.sample(&s, INTERVAL / 2);
            Ok(())
        })
        .await;
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Each replication rule's lag and backlog over time (samples kept in the server's memory: every 10 s, and on a request, for the last 2 hours).
#[utoipa::path(get, path = "/api/v1/replication/history", tag = "replication",
    responses((status = 200, body = Vec<LagHistory>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn history(State(st): State<AppState>) -> Result<Json<Vec<LagHistory>>, ApiError> {
    blocking(move || {
        st.0.lag.sample(&st, ON_REQUEST);
        Ok(Json(st.0.lag.all()))
    })
    .await
}
