//! # lifeboat-bucket — the bucket protector and the replication engine
//!
//! Buckets are directories (`file:///dir`, the embedded default) or S3
//! buckets (`s3://BUCKET[/PREFIX]?endpoint=…&region=…`), both behind
//! [`store::Bucket`]. On top of it:
//!
//! - [`snapshot`]: a bucket (or a key prefix of it) into a recovery point of
//!   kind `bucket`, incrementally, and back ([`restore`]);
//! - [`replicate`]: a long-running job that keeps a destination bucket equal
//!   to a source bucket as objects appear, change and disappear.

pub mod error;
pub mod restore;
pub mod snapshot;
pub mod store;

pub use error::{BucketError, Result};
pub use store::{Bucket, ObjectInfo, ObjectMeta};
pub mod protector;
pub mod replicate;
