//! Fixed-size blocks against content-defined chunks on two states of a disk
//! image (`bench/instance-chunking.sh` makes them): how many bytes the
//! second state adds to a vault holding the first (dedup), and how fast one
//! core chunks and hashes (speed). Only data extents are fed (holes are
//! skipped by both methods); all-zero blocks are skipped by the fixed grid.
//!
//! `cargo run --release -p lifeboat-instance --example chunking -- BEFORE AFTER`

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use lifeboat_vault::chunker::Chunker;
use lifeboat_vault::vault::ChunkerParams;

fn data_extents(f: &File, size: u64) -> Vec<(u64, u64)> {
    use rustix::fs::SeekFrom;
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(_) => break,
        };
        if start >= size {
            break;
        }
        let end = rustix::fs::seek(f, SeekFrom::Hole(start))
            .unwrap()
            .min(size);
        out.push((start, end - start));
        pos = end;
    }
    out
}

/// The data extents of an image, concatenated.
struct Extents {
    f: File,
    ext: Vec<(u64, u64)>,
    i: usize,
    done: u64,
}

impl Read for Extents {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.i < self.ext.len() {
            let (o, l) = self.ext[self.i];
            if self.done == l {
                self.i += 1;
                self.done = 0;
                continue;
            }
            let n = (buf.len() as u64).min(l - self.done) as usize;
            let n = self.f.read_at(&mut buf[..n], o + self.done)?;
            self.done += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

fn open(path: &str) -> Extents {
    let f = File::open(path).unwrap();
    let size = f.metadata().unwrap().len();
    let ext = data_extents(&f, size);
    Extents {
        f,
        ext,
        i: 0,
        done: 0,
    }
}

/// (chunk hashes with lengths, seconds, bytes fed)
type Chunks = (Vec<([u8; 32], u64)>, f64, u64);

/// A method: its name and how it cuts an image.
type Method = (String, Box<dyn Fn(&str) -> Chunks>);

fn fixed(path: &str, block: u64) -> Chunks {
    let e = open(path);
    let size = e.f.metadata().unwrap().len();
    let mut out = Vec::new();
    let mut buf = vec![0u8; block as usize];
    let t = Instant::now();
    let mut fed = 0;
    let mut k = 0;
    let mut j = 0;
    while k * block < size {
        let b = k * block;
        let len = block.min(size - b);
        while j < e.ext.len() && e.ext[j].0 + e.ext[j].1 <= b {
            j += 1;
        }
        if j == e.ext.len() {
            break;
        }
        if e.ext[j].0 >= b + len {
            k = e.ext[j].0 / block;
            continue;
        }
        let blk = &mut buf[..len as usize];
        e.f.read_exact_at(blk, b).unwrap();
        fed += len;
        if blk.iter().any(|&x| x != 0) {
            out.push((*blake3::hash(blk).as_bytes(), len));
        }
        k += 1;
    }
    (out, t.elapsed().as_secs_f64(), fed)
}

fn cdc(path: &str, p: ChunkerParams) -> Chunks {
    let c = Chunker::new(p, 0x5eed);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let t = Instant::now();
    let fed = c
        .for_each_chunk::<std::io::Error>(open(path), &mut buf, |ch| {
            out.push((*blake3::hash(ch).as_bytes(), ch.len() as u64));
            Ok(())
        })
        .unwrap();
    (out, t.elapsed().as_secs_f64(), fed)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (before, after) = (&a[1], &a[2]);
    println!(
        "| method | first backup: unique MiB | second: new MiB | chunks (second) | chunk+hash MiB/s (1 core) |"
    );
    println!("|---|---|---|---|---|");
    let mib = |n: u64| n as f64 / 1048576.0;
    let mut rows: Vec<Method> = Vec::new();
    for b in [64u64 << 10, 128 << 10, 256 << 10, 1 << 20] {
        rows.push((
            format!("fixed {} KiB", b >> 10),
            Box::new(move |p| fixed(p, b)),
        ));
    }
    for (min, avg, max) in [
        (16u32 << 10, 64u32 << 10, 256u32 << 10),
        (512 << 10, 1 << 20, 4 << 20),
    ] {
        rows.push((
            format!("FastCDC avg {} KiB", avg >> 10),
            Box::new(move |p| cdc(p, ChunkerParams { min, avg, max })),
        ));
    }
    for (name, f) in rows {
        let (c1, _, _) = f(before);
        let mut seen = HashSet::new();
        let mut unique1 = 0;
        for (h, l) in &c1 {
            if seen.insert(*h) {
                unique1 += l;
            }
        }
        let (c2, secs, fed) = f(after);
        let mut new2 = 0;
        for (h, l) in &c2 {
            if seen.insert(*h) {
                new2 += l;
            }
        }
        println!(
            "| {name} | {:.1} | {:.1} | {} | {:.0} |",
            mib(unique1),
            mib(new2),
            c2.len(),
            mib(fed) / secs
        );
    }
}
