//! `credentials_env` / `credentials_file` of a vault: where its own S3 keys
//! are (an environment prefix or a private AWS shared-credentials file),
//! never the keys themselves.

use crate::diag::Sink;
use crate::model::Secret;
use crate::read::Table;

/// The vault's S3 credentials source, validated against its `location`.
pub(crate) fn credentials(sink: &mut Sink<'_>, t: Table<'_, '_>, location: &str) -> Option<Secret> {
    let env = sink.string(t, "credentials_env");
    let file = sink.string(t, "credentials_file");
    let (key, span, secret) = match (env, file) {
        (Some(_), Some((_, span))) => {
            sink.error(
                &span,
                &t.key("credentials_file"),
                "both `credentials_env` and `credentials_file` are set",
                Some("keep one of them".into()),
            );
            return None;
        }
        (Some((e, span)), None) => {
            if e.is_empty() || !e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                sink.error(
                    &span,
                    &t.key("credentials_env"),
                    format!("`{e}` is not an environment variable prefix"),
                    Some("name the prefix, e.g. `DR_S3` for DR_S3_ACCESS_KEY_ID and DR_S3_SECRET_ACCESS_KEY".into()),
                );
            }
            ("credentials_env", span, Secret::Env(e))
        }
        (None, Some((f, span))) => {
            if !f.starts_with('/') {
                sink.error(
                    &span,
                    &t.key("credentials_file"),
                    format!("`{f}` is not an absolute path"),
                    Some("write the credentials file's path from `/`".into()),
                );
            }
            ("credentials_file", span, Secret::File(f.into()))
        }
        (None, None) => return None,
    };
    if !location.is_empty() && !location.starts_with("s3://") {
        sink.error(
            &span,
            &t.key(key),
            format!("`{key}` is set, but the vault is not on S3 ({location})"),
            Some(format!("remove `{key}`: a directory vault has no S3 keys")),
        );
    }
    Some(secret)
}
