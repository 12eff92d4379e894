//! Unishop: the sample web shop that Lifeboat's demos and recovery drills run
//! against — a real little application, independent of Lifeboat.
//!
//! - a product catalogue, checkout and order history in MySQL/MariaDB
//!   ([`shop`], schema in [`schema`], pool and migrations in [`db`]);
//! - a Bootstrap frontend that lives in an object bucket and is served from
//!   it on every request ([`bucket`], [`publish`]);
//! - a JSON API under `/api/` and `/health` ([`api`], [`server`]);
//! - a seeder, a load generator whose log of acknowledged orders measures a
//!   recovery's RPO, and the verifier that compares that log with a
//!   (recovered) database ([`seed`], [`load`], [`verify`]).

pub mod api;
pub mod bucket;
pub mod catalogue;
pub mod db;
pub mod error;
pub mod load;
pub mod publish;
pub mod schema;
pub mod seed;
pub mod server;
pub mod shop;
pub mod util;
pub mod verify;

pub use error::{Error, Result};
