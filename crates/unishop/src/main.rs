//! The `unishop` command: serve the shop, seed it, load it, verify a load log
//! against a database, publish the frontend to a bucket.
//!
//! Exit codes: 0 success, 1 failure, 2 usage, 3 finished but incomplete
//! (`load`: some orders failed; `verify`: some logged orders are missing).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use unishop::bucket::Bucket;
use unishop::db::Db;
use unishop::{load, publish, seed, server, verify};

#[derive(Parser, Debug)]
#[command(
    name = "unishop",
    version,
    about = "Unishop, the sample web shop Lifeboat protects"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct DbArgs {
    /// The database: mysql://USER[:PASSWORD]@HOST[:PORT][/DATABASE] (database `unishop` when none).
    #[arg(long, env = "UNISHOP_DATABASE_URL", value_name = "URL")]
    database_url: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the shop: the JSON API, /health and the frontend from the bucket.
    Serve {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, env = "UNISHOP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[command(flatten)]
        db: DbArgs,
        /// The frontend's bucket: file:///DIR or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
        #[arg(long, env = "UNISHOP_BUCKET", value_name = "URL")]
        bucket: String,
        /// Most database connections.
        #[arg(long, default_value_t = 32)]
        max_connections: usize,
    },
    /// Apply the schema migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fill the catalogue with sample products 1..=N (idempotent).
    Seed {
        #[command(flatten)]
        db: DbArgs,
        /// How many products.
        #[arg(long, default_value_t = 50)]
        products: u32,
        /// Stock of each new product.
        #[arg(long, default_value_t = 100_000)]
        stock: u32,
        /// Also set the stock of existing products to --stock.
        #[arg(long)]
        restock: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Place orders through the HTTP API at a steady rate; log each committed order.
    Load {
        /// Base URL of the shop.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Orders per second.
        #[arg(long)]
        rate: f64,
        /// How long (500ms, 30s, 5m, 2h).
        #[arg(long, value_parser = unishop::util::parse_duration)]
        duration: Duration,
        /// Log of committed orders (one JSON line each, appended).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// Most requests in flight; beyond it a due order counts as failed.
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
        /// Time limit of one request.
        #[arg(long, default_value = "10s", value_parser = unishop::util::parse_duration)]
        timeout: Duration,
        /// Seed of the random product choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare a load log with a database: which committed orders are present, which are lost.
    Verify {
        /// The load log.
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        #[command(flatten)]
        db: DbArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload the frontend (HTML/CSS/JS, Bootstrap, product images) to a bucket.
    PublishFrontend {
        /// The bucket: file:///DIR or s3://BUCKET[/PREFIX]?endpoint=URL&region=R.
        #[arg(long, env = "UNISHOP_BUCKET", value_name = "URL")]
        bucket: String,
        /// A frontend directory (with node_modules from `npm ci`) instead of the one embedded in this binary.
        #[arg(long, env = "UNISHOP_FRONTEND", value_name = "DIR")]
        frontend: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UNISHOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serializable"));
}

/// `serve`: the shop's API and frontend until a signal.
async fn serve(
    listen: SocketAddr,
    database_url: String,
    bucket: String,
    max_connections: usize,
) -> anyhow::Result<()> {
    let opts = server::ServeOptions {
        listen,
        database_url,
        bucket_url: bucket,
        max_connections,
    };
    let (listener, state) = server::prepare(&opts).await?;
    let addr = listener.local_addr()?;
    println!("unishop listening on http://{addr}");
    tracing::info!(%addr, database = %state.db.shown_url(), bucket = %state.bucket.url(), "serving");
    server::serve(listener, state).await?;
    Ok(())
}

/// `load`: orders at a rate for a while, each committed one logged; exit 3
/// when some failed.
async fn load_orders(opts: &load::LoadOptions, json: bool) -> anyhow::Result<ExitCode> {
    let r = load::run(opts, server::shutdown_signal()).await?;
    if json {
        print_json(&r);
    } else {
        println!(
            "attempted {}, committed {}, failed {} in {:.1} s ({:.1} orders/s); latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; log: {}",
            r.attempted,
            r.committed,
            r.failed,
            r.seconds,
            r.committed_per_second,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.log
        );
        for (kind, n) in &r.failures {
            println!("  failed: {n} × {kind}");
        }
    }
    if r.failed > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// `publish-frontend`: the frontend (a directory, else the embedded one)
/// into the bucket.
async fn publish_frontend(
    bucket: &str,
    frontend: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let b = Bucket::open(bucket)?;
    let done = publish::publish(frontend.as_deref(), &b).await?;
    if json {
        print_json(&serde_json::json!({ "bucket": bucket, "objects": done }));
    } else {
        let bytes: u64 = done.iter().map(|p| p.bytes).sum();
        println!(
            "published {} objects ({bytes} bytes) from {} to {bucket}",
            done.len(),
            frontend
                .as_ref()
                .map_or("the frontend embedded in this binary".into(), |d| d
                    .display()
                    .to_string())
        );
    }
    Ok(())
}

/// Runs one command.
async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve {
            listen,
            db,
            bucket,
            max_connections,
        } => {
            serve(listen, db.database_url, bucket, max_connections).await?;
        }
        Command::Migrate { db, json } => {
            let db = Db::new(&db.database_url, 2)?;
            let applied = db.migrate().await?;
            if json {
                print_json(&serde_json::json!({ "database": db.name(), "applied": applied }));
            } else if applied.is_empty() {
                println!("schema of {} is current", db.name());
            } else {
                println!("applied migrations {applied:?} to {}", db.name());
            }
        }
        Command::Seed {
            db,
            products,
            stock,
            restock,
            json,
        } => {
            let db = Db::new(&db.database_url, 2)?;
            let n = seed::seed(&db, products, stock, restock).await?;
            if json {
                print_json(
                    &serde_json::json!({ "database": db.name(), "seeded": products, "products": n }),
                );
            } else {
                println!(
                    "seeded products 1..={products} into {}; the catalogue has {n} products",
                    db.name()
                );
            }
        }
        Command::Load {
            url,
            rate,
            duration,
            log,
            max_in_flight,
            timeout,
            seed,
            json,
        } => {
            let opts = load::LoadOptions {
                url,
                rate,
                duration,
                log,
                max_in_flight,
                timeout,
                seed,
            };
            return load_orders(&opts, json).await;
        }
        Command::Verify { log, db, json } => {
            let db = Db::new(&db.database_url, 2)?;
            let r = verify::verify(&db, &log).await?;
            if json {
                print_json(&r);
            } else {
                print!("{}", r.text());
            }
            if r.missing > 0 {
                return Ok(ExitCode::from(3));
            }
        }
        Command::PublishFrontend {
            bucket,
            frontend,
            json,
        } => {
            publish_frontend(&bucket, frontend, json).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2
    init_logging(if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A URL that cannot be understood is a usage error.
            match e.downcast_ref::<unishop::Error>() {
                Some(
                    unishop::Error::BadBucketUrl { .. } | unishop::Error::BadDatabaseUrl { .. },
                ) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
