//! A small mutation fuzzer on stable Rust, for the parsers of untrusted bytes.
//!
//! ```text
//! corpus = seeds (valid encodings, so mutations reach deep into the parser)
//! until the time budget is spent:
//!     pick an input from the corpus, apply 1–6 mutations (bit flips, bytes,
//!     interesting integers at any offset, dictionary tokens, insert, delete,
//!     duplicate, splice with another input, truncate), run the target
//!     a panic is a crash: counted, its input kept (hex in the report, and
//!     written to $LIFEBOAT_FUZZ_CRASHES/<name>-<n>.bin when that is set)
//!     now and then the input joins the corpus (bounded), for deeper mutations
//! ```
//! The budget is `LIFEBOAT_FUZZ_SECS` seconds per target (default 30: the
//! CI run; `scripts/fuzz` gives 600 and more). `LIFEBOAT_FUZZ_SEED` replays a
//! run (the seed is printed). No instrumentation: this is a black-box fuzzer,
//! made effective by seeding it with real encodings and the format's tokens.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// What a fuzz run did.
#[derive(Debug, Clone)]
pub struct FuzzStats {
    /// Target name.
    pub name: String,
    /// Inputs tried.
    pub execs: u64,
    /// Time spent.
    pub elapsed: Duration,
    /// Inputs that made the target panic (at most 5 kept).
    pub crashes: Vec<Vec<u8>>,
    /// Number of panicking inputs.
    pub crash_count: u64,
    /// The seed of the run.
    pub seed: u64,
}

/// xorshift64*: fast and good enough for choosing mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    4,
    8,
    16,
    19,
    32,
    42,
    64,
    127,
    128,
    255,
    256,
    1024,
    4096,
    65535,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    u64::MAX,
    i64::MAX as u64,
];

/// Applies 1–6 random mutations to `data`, keeping it at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    corpus: &[Vec<u8>],
    dict: &[&[u8]],
    max_len: usize,
) {
    let n = 1 + rng.below(6);
    for _ in 0..n {
        let len = data.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let bytes = if rng.below(2) == 0 {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                let at = rng.below(len);
                for k in 0..w.min(len - at) {
                    data[at + k] = bytes[if rng.below(2) == 0 { k } else { 8 - w + k }];
                }
            }
            3 if !dict.is_empty() => {
                let tok = dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                if rng.below(2) == 0 {
                    data.splice(at..at, tok.iter().copied());
                } else {
                    let end = (at + tok.len()).min(len);
                    data.splice(at..end, tok.iter().copied());
                }
            }
            4 => {
                let at = rng.below(len + 1);
                let k = 1 + rng.below(16);
                let fill: Vec<u8> = (0..k).map(|_| rng.next_u64() as u8).collect();
                data.splice(at..at, fill);
            }
            5 if len > 0 => {
                let at = rng.below(len);
                let k = 1 + rng.below((len - at).min(64));
                data.drain(at..at + k);
            }
            6 if len > 0 => {
                let at = rng.below(len);
                let k = 1 + rng.below((len - at).min(64));
                let part: Vec<u8> = data[at..at + k].to_vec();
                let to = rng.below(len + 1);
                data.splice(to..to, part);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let k = 1 + rng.below(other.len() - from);
                    let at = rng.below(len + 1);
                    let end = (at + k).min(len);
                    data.splice(at..end, other[from..from + k].iter().copied());
                }
            }
            8 if len > 0 => data.truncate(rng.below(len)),
            9 if len > 0 => {
                // A run of one byte (lengths, counts).
                let at = rng.below(len);
                let k = 1 + rng.below((len - at).min(8));
                let b = [0u8, 0xff, 0x7f, 0x80][rng.below(4)];
                data[at..at + k].fill(b);
            }
            _ => {
                if len > 0 {
                    let i = rng.below(len);
                    data[i] = data[i].wrapping_add(1 + rng.below(3) as u8);
                }
            }
        }
    }
    data.truncate(max_len);
}

/// The time budget per target: `LIFEBOAT_FUZZ_SECS`, default 30 s.
pub fn budget() -> Duration {
    let secs = std::env::var("LIFEBOAT_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(30.0);
    Duration::from_secs_f64(secs)
}

/// Fuzzes `target` for [`budget`], starting from `seeds`; panics (failing the
/// test) when any input made it panic, printing those inputs in hex.
pub fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    dict: &[&[u8]],
    max_len: usize,
    target: impl Fn(&[u8]),
) -> FuzzStats {
    let stats = fuzz_for(name, seeds, dict, max_len, budget(), target);
    eprintln!(
        "fuzz {name}: {} execs in {:.1} s, {} crashes (seed {})",
        stats.execs,
        stats.elapsed.as_secs_f64(),
        stats.crash_count,
        stats.seed
    );
    if stats.crash_count > 0 {
        let shown: Vec<String> = stats
            .crashes
            .iter()
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        panic!(
            "fuzz {name}: {} inputs panicked the parser (seed {}); first ones in hex:\n{}",
            stats.crash_count,
            stats.seed,
            shown.join("\n")
        );
    }
    stats
}

/// Like [`fuzz`] with an explicit duration, returning the stats without
/// judging them.
pub fn fuzz_for(
    name: &str,
    seeds: &[Vec<u8>],
    dict: &[&[u8]],
    max_len: usize,
    time: Duration,
    target: impl Fn(&[u8]),
) -> FuzzStats {
    let seed = std::env::var("LIFEBOAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> = seeds.to_vec();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let crash_dir = std::env::var_os("LIFEBOAT_FUZZ_CRASHES").map(std::path::PathBuf::from);
    let start = Instant::now();
    let mut stats = FuzzStats {
        name: name.to_string(),
        execs: 0,
        elapsed: Duration::ZERO,
        crashes: Vec::new(),
        crash_count: 0,
        seed,
    };
    // The seeds themselves first.
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    while start.elapsed() < time {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                let mut d = corpus[rng.below(corpus.len())].clone();
                mutate(&mut rng, &mut d, &corpus, dict, max_len);
                d
            }
        };
        let ok = catch_unwind(AssertUnwindSafe(|| target(&input))).is_ok();
        stats.execs += 1;
        if !ok {
            stats.crash_count += 1;
            if let Some(dir) = &crash_dir {
                let _ = std::fs::create_dir_all(dir);
                let _ = std::fs::write(
                    dir.join(format!("{name}-{}.bin", stats.crash_count)),
                    &input,
                );
            }
            if stats.crashes.len() < 5 {
                stats.crashes.push(input);
            }
        } else if rng.below(64) == 0 {
            if corpus.len() < 512 {
                corpus.push(input);
            } else {
                let keep = seeds.len().min(corpus.len() - 1);
                let i = keep + rng.below(corpus.len() - keep);
                corpus[i] = input;
            }
        }
    }
    stats.elapsed = start.elapsed();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_planted_crash_and_counts_execs() {
        let s = fuzz_for(
            "planted",
            &[b"ab".to_vec()],
            &[b"XY"],
            64,
            Duration::from_millis(300),
            |b| {
                if b.windows(2).any(|w| w == b"XY") {
                    panic!("planted");
                }
            },
        );
        // Counted, not timed: how many runs fit in 300 ms depends on the
        // machine's load (each planted panic prints a backtrace).
        assert!(s.execs >= s.crash_count && s.execs > 1, "{s:?}");
        assert!(s.crash_count > 0, "the dictionary token is found");
    }
}
