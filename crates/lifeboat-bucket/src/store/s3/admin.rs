//! Bucket-level requests: whether the bucket exists, whether it holds an
//! object, making it and removing it. A stack provisions its buckets on a
//! site's endpoint with these (`stack up`, `recover`, a drill's scratch
//! bucket and its teardown); nothing else creates or deletes a bucket.

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::S3Bucket;
use crate::error::{BucketError, Result};

impl S3Bucket {
    fn bucket_url(&self) -> String {
        format!("{}/{}", self.core.endpoint, self.core.bucket)
    }

    /// The bucket's name on the store.
    pub fn name(&self) -> &str {
        &self.core.bucket
    }

    /// The endpoint the requests go to.
    pub fn endpoint(&self) -> &str {
        &self.core.endpoint
    }

    /// Whether the bucket exists (HEAD on the bucket).
    pub async fn exists(&self) -> Result<bool> {
        let url = self.bucket_url();
        match self
            .core
            .send(
                "head-bucket",
                "",
                Method::HEAD,
                &url,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(BucketError::NotFound { .. } | BucketError::NoBucket { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether any object is stored under the bucket's prefix (one listed key).
    pub async fn is_empty(&self) -> Result<bool> {
        let c = &self.core;
        let url = format!(
            "{}?list-type=2&max-keys=1&prefix={}",
            self.bucket_url(),
            percent_encoding::utf8_percent_encode(&c.root, super::QUERY_SET)
        );
        let resp = c
            .send(
                "list",
                "",
                Method::GET,
                &url,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        let body = c.body_text("list", "", resp).await?;
        Ok(!body.contains("<Contents>"))
    }

    /// Creates the bucket (outside `us-east-1` with its location constraint).
    /// One that exists already and is the caller's is not an error.
    pub async fn create(&self, region: &str) -> Result<()> {
        let body = if region == "us-east-1" {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            ))
        };
        match self
            .core
            .send(
                "create-bucket",
                "",
                Method::PUT,
                &self.bucket_url(),
                HeaderMap::new(),
                body,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(BucketError::Store { message, .. })
                if message.contains("BucketAlreadyOwnedByYou") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes the (empty) bucket; a missing one is not an error.
    pub async fn remove(&self) -> Result<()> {
        match self
            .core
            .send(
                "delete-bucket",
                "",
                Method::DELETE,
                &self.bucket_url(),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
        {
            Ok(_) | Err(BucketError::NotFound { .. } | BucketError::NoBucket { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
