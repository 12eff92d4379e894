//! `[daemon]`: settings of `lifeboat serve` itself (one table, not named
//! entries): when retention (forget + prune) runs.

use toml::de::DeValue;

use crate::diag::Sink;
use crate::model::DaemonSpec;
use crate::read::{Table, type_name};
use crate::schedule::Schedule;

/// Reads the `[daemon]` table (`v` is its value, `span` its key's span).
pub(crate) fn load_daemon(
    sink: &mut Sink<'_>,
    v: &toml::Spanned<DeValue<'_>>,
    out: &mut DaemonSpec,
) {
    let DeValue::Table(t) = v.get_ref() else {
        sink.error(
            &v.span(),
            "daemon",
            format!("`daemon` is a table, found {}", type_name(v.get_ref())),
            Some("write it as `[daemon]` followed by its keys".into()),
        );
        return;
    };
    let span = v.span();
    let t = Table {
        t,
        path: "daemon",
        span: &span,
    };
    sink.unknown_keys(t, "the daemon table", &["retention_schedule", "timezone"]);
    let expr = sink.string(t, "retention_schedule");
    let tz = sink.string(t, "timezone");
    if expr.is_none() && tz.is_none() {
        return;
    }
    let (e, espan) = expr.unwrap_or_else(|| (DaemonSpec::DEFAULT_RETENTION.into(), span.clone()));
    let (z, zspan) = tz.unwrap_or_else(|| ("UTC".into(), span.clone()));
    match Schedule::parse(&e, &z) {
        Ok(s) => out.retention_schedule = s,
        Err(crate::schedule::ScheduleError::TimeZone(_)) => sink.error(
            &zspan,
            "daemon.timezone",
            format!("unknown time zone `{z}`"),
            Some("write an IANA name such as `UTC` or `Europe/Berlin`".into()),
        ),
        Err(err) => sink.error(
            &espan,
            "daemon.retention_schedule",
            format!("`{e}` is not a cron expression: {err}"),
            Some(format!(
                "write five fields (minute hour day-of-month month day-of-week), e.g. `{}` (daily at 03:30)",
                DaemonSpec::DEFAULT_RETENTION
            )),
        ),
    }
}
