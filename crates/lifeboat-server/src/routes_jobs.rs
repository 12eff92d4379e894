//! Jobs: history, starting a plan's run or a restore (child processes that
//! record their own jobs), cancelling, and following a job as server-sent
//! events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use lifeboat_control::store::{Job, JobFilter, JobStore, SqliteStore, status};
use tokio::sync::broadcast;

use crate::error::{ErrorBody, blocking};
use crate::views::*;
use crate::{ApiError, AppState};

/// How long a start waits for the child to record its first job (it opens
/// the plan's vault first: a key derivation, slow on a loaded machine).
/// After that the answer is 202 with no job ids yet (`GET /jobs` shows them).
const REGISTER_WAIT: Duration = Duration::from_secs(30);
/// How often the store's watcher looks for commits (a cheap `PRAGMA
/// data_version`), for every event stream at once.
const WATCH_TICK: Duration = Duration::from_millis(250);

pub(crate) fn open_store(st: &AppState) -> Result<SqliteStore, ApiError> {
    st.0.state.create()?;
    Ok(SqliteStore::open(&st.0.state.jobs_db())?)
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    params(JobQuery),
    responses((status = 200, body = Vec<JobView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn jobs(
    State(st): State<AppState>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Vec<JobView>>, ApiError> {
    if let Some(s) = &q.status
        && !status::ALL.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "unknown status `{s}`: use one of {}",
            status::ALL.join(", ")
        )));
    }
    blocking(move || {
        let store = open_store(&st)?;
        let list = store.list(&JobFilter {
            resource: q.resource,
            status: q.status,
            plan: q.plan,
            limit: Some(q.limit.unwrap_or(100).min(1000) as usize),
        })?;
        Ok(Json(list.into_iter().map(JobView::from).collect()))
    })
    .await
}

async fn get_job(st: &AppState, id: i64) -> Result<JobView, ApiError> {
    let st = st.clone();
    blocking(move || {
        open_store(&st)?
            .get(id)?
            .map(JobView::from)
            .ok_or_else(|| ApiError::not_found(format!("there is no job {id}")))
    })
    .await
}

/// One job (with its live progress while it runs).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, description = "The job's number")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(get_job(&st, id).await?))
}

/// Forks `cmd` and waits until the child has recorded its first job.
pub(crate) async fn start(
    st: &AppState,
    cmd: std::process::Command,
    what: &str,
) -> Result<Started, ApiError> {
    let child =
        st.0.spawner
            .spawn(cmd)
            .await
            .map_err(|e| ApiError::internal(format!("cannot start the {what}: {e}")))?;
    let pid = child.pid;
    let t = tokio::time::Instant::now();
    loop {
        let (s, start) = (st.clone(), child.start.clone());
        let jobs = blocking(move || Ok(open_store(&s)?.jobs_of_process(pid, &start)?)).await?;
        if let Some(j) = jobs.first()
            && j.status == status::SKIPPED
        {
            return Err(skipped(st, j).await);
        }
        if !jobs.is_empty() {
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            return Ok(Started {
                pid,
                events: Some(format!("/api/v1/jobs/{}/events", ids[0])),
                jobs: ids,
            });
        }
        if let Some(exit) = st.0.spawner.exit(pid) {
            return Err(ApiError::internal(format!(
                "the {what} (process {pid}) exited with {} before it recorded a job: {}",
                exit.code.map_or("a signal".into(), |c| format!("code {c}")),
                if exit.stderr.is_empty() {
                    "it said nothing"
                } else {
                    &exit.stderr
                }
            )));
        }
        if t.elapsed() > REGISTER_WAIT {
            return Ok(Started {
                pid,
                jobs: Vec::new(),
                events: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The 409 for a child that found its plan's run going on and recorded
/// itself `skipped`: its reason, and the running job's id when there is one.
async fn skipped(st: &AppState, j: &lifeboat_control::store::Job) -> ApiError {
    let (s, plan) = (st.clone(), j.plan.clone());
    let running = blocking(move || {
        Ok(open_store(&s)?.list(&JobFilter {
            plan,
            status: Some(status::RUNNING.into()),
            limit: Some(1),
            ..JobFilter::default()
        })?)
    })
    .await
    .ok()
    .and_then(|l| l.first().map(|r| r.id));
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "{} (recorded as skipped job {})",
            j.error.as_deref().unwrap_or("the plan's run is going on"),
            j.id
        ),
    );
    e.running_job = running;
    e
}

/// Runs a plan now (all its resources, or one) in a child process; answers
/// once the child has recorded its first job.
#[utoipa::path(post, path = "/api/v1/plans/{plan}/run", tag = "jobs",
    params(("plan" = String, Path, description = "The plan's name in the file")),
    request_body(content = Option<RunBody>, description = "Only one resource of the plan"),
    responses((status = 202, body = Started), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "The plan's run is going on (from the daemon, the API or the command line): this start is recorded as a skipped job; `running_job` is the running one's id", body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run_plan(
    State(st): State<AppState>,
    Path(plan): Path<String>,
    body: Option<Json<RunBody>>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let cfg = st.cfg();
    let p = cfg.plans.get(&plan).ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no plan `{plan}` in the file (plans: {})",
            cfg.plans.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    if let Some(r) = &body.resource
        && !p.resources.contains(r)
    {
        return Err(ApiError::bad_request(format!(
            "plan `{plan}` does not hold resource `{r}` (it holds: {})",
            p.resources.join(", ")
        )));
    }
    let cmd = st.0.launcher.plan_command(
        &plan,
        body.resource.as_deref(),
        lifeboat_control::launch::trigger::API,
    );
    let started = start(&st, cmd, &format!("run of plan `{plan}`")).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// Asks a running job's process to stop (as `lifeboat jobs cancel`).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, description = "The job's number")),
    responses((status = 202, body = CancelView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<CancelView>), ApiError> {
    use lifeboat_control::cancel::Cancel;
    blocking(
        move || match lifeboat_control::cancel::cancel(&open_store(&st)?, id)? {
            Cancel::Requested { pid } => Ok((StatusCode::ACCEPTED, Json(CancelView { id, pid }))),
            Cancel::NotFound => Err(ApiError::not_found(format!("there is no job {id}"))),
            Cancel::NotRunning { status } => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("job {id} is not running (it is {status})"),
            )),
        },
    )
    .await
}

/// Restores a files point (or one path of it) into a directory, as a job of
/// kind `restore` in a child process. The directory, by its real path, must
/// be below one of `[server] restore_roots` (default: `restores/` in the
/// state directory and the sites' roots), and never in `/proc`, `/sys` or
/// `/dev`: else 403.
#[utoipa::path(post, path = "/api/v1/restores", tag = "jobs",
    request_body = RestoreBody,
    responses((status = 202, body = Started), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "The target is outside `[server] restore_roots`, or in a kernel file system", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(
    State(st): State<AppState>,
    Json(b): Json<RestoreBody>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    use std::path::{Component, PathBuf};
    let to = PathBuf::from(&b.to);
    if !to.is_absolute()
        || to.components().any(|c| matches!(c, Component::ParentDir))
        || to.parent().is_none()
        || b.to.contains('\0')
    {
        return Err(ApiError::bad_request(format!(
            "`to` must be an absolute directory other than `/`, without `..` (got {:?})",
            b.to
        )));
    }
    if b.path
        .as_ref()
        .is_some_and(|p| p.contains('\0') || p.is_empty())
    {
        return Err(ApiError::bad_request(
            "`path` must be a non-empty path of the point",
        ));
    }
    // Judged by its real path, against `[server] restore_roots` (403).
    let s = st.clone();
    let to = blocking(move || crate::restore_roots::check(&s.cfg(), &s.0.state.root, &to)).await?;
    let overwrite = match b.overwrite.as_deref() {
        None => None,
        Some("always") => Some(lifeboat_files::Overwrite::Always),
        Some("if-changed") => Some(lifeboat_files::Overwrite::IfChanged),
        Some("never") => Some(lifeboat_files::Overwrite::Never),
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "unknown overwrite `{o}`: use always, if-changed or never"
            )));
        }
    };
    // The point is resolved here (404 at once), and passed on by its full id.
    let point = crate::routes_restores::resolve_point(
        &st,
        &b.vault,
        &b.point,
        &["files"],
        b.resource.clone(),
        |_, _, _, _| Ok(()),
    )
    .await?;
    let req = lifeboat_control::restore::RestoreRequest {
        vault: b.vault,
        point,
        resource: None,
        path: b.path.map(PathBuf::from),
        to,
        overwrite,
    };
    let cmd =
        st.0.launcher
            .restore_command(&req, lifeboat_control::launch::trigger::API)?;
    let started = start(&st, cmd, "restore").await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// One subscriber's following of one job: what it has sent so far.
struct Follow {
    st: AppState,
    id: i64,
    /// The store's published job changes (subscribed before the first read).
    changes: broadcast::Receiver<Arc<Job>>,
    first: bool,
    status: Option<String>,
    progress: Option<String>,
    done: bool,
}

fn event(name: &str, v: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(v)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// What a follower waits for next.
enum Next {
    /// The job as it is now.
    Job(Box<Result<JobView, ApiError>>),
    /// The server is stopping.
    Shutdown,
}

/// The followed job's next change: published by the store's watcher, or
/// read from the store when this follower fell behind the channel.
async fn next_change(f: &mut Follow) -> Next {
    let mut stop = f.st.0.shutdown.clone();
    let read_again = loop {
        let r = tokio::select! {
            r = f.changes.recv() => r,
            _ = stop.wait_for(|s| *s) => return Next::Shutdown,
        };
        match r {
            Ok(j) if j.id == f.id => return Next::Job(Box::new(Ok(JobView::from((*j).clone())))),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => break Duration::ZERO,
            // No watcher (it lives as long as the server): read the store.
            Err(broadcast::error::RecvError::Closed) => break WATCH_TICK,
        }
    };
    tokio::time::sleep(read_again).await;
    Next::Job(Box::new(get_job(&f.st, f.id).await))
}

/// The events of one change of the followed job (none when nothing it
/// shows changed).
async fn step(mut f: Follow) -> Option<(Vec<Result<Event, Infallible>>, Follow)> {
    if f.done {
        return None;
    }
    let next = if f.first {
        f.first = false;
        Next::Job(Box::new(get_job(&f.st, f.id).await))
    } else {
        next_change(&mut f).await
    };
    let j = match next {
        Next::Job(j) => match *j {
            Ok(j) => j,
            Err(e) => {
                f.done = true;
                return Some((
                    vec![Ok(event(
                        "error",
                        &ErrorBody {
                            error: e.message,
                            running_job: None,
                        },
                    ))],
                    f,
                ));
            }
        },
        Next::Shutdown => {
            f.done = true;
            return Some((
                vec![Ok(Event::default()
                    .event("shutdown")
                    .data("the server is stopping"))],
                f,
            ));
        }
    };
    let mut out = Vec::new();
    let progress = j.progress.as_ref().map(|p| p.to_string());
    if progress.is_some() && progress != f.progress {
        out.push(Ok(event("progress", j.progress.as_ref().expect("some"))));
        f.progress = progress;
    }
    if f.status.as_deref() != Some(j.status.as_str()) {
        f.status = Some(j.status.clone());
        out.push(Ok(event("status", &j)));
    }
    if j.status != status::RUNNING {
        for l in j.log.lines() {
            out.push(Ok(Event::default().event("log").data(l)));
        }
        out.push(Ok(event("end", &j)));
        f.done = true;
    }
    Some((out, f))
}

/// A receiver of the store's job changes, from the server's one watcher
/// (started by the first follower).
fn job_changes(st: &AppState) -> Result<broadcast::Receiver<Arc<Job>>, ApiError> {
    let mut watch = st.0.job_watch.lock().expect("job watch lock");
    if watch.is_none() {
        *watch = Some(open_store(st)?.watch(WATCH_TICK)?);
    }
    Ok(watch.as_ref().expect("just started").subscribe())
}

/// Follows a job as server-sent events until it ends: `status` (the job,
/// on each change), `progress` (bytes and items done, about once a second),
/// `log` (its log lines, at the end), `end` (the job as it ended).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = i64, Path, description = "The job's number")),
    responses((status = 200, description = "text/event-stream of status, progress, log and end events", content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let st2 = st.clone();
    let changes = blocking(move || job_changes(&st2)).await?;
    get_job(&st, id).await?;
    let f = Follow {
        st,
        id,
        changes,
        first: true,
        status: None,
        progress: None,
        done: false,
    };
    let s = stream::unfold(f, step).flat_map(stream::iter);
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}
