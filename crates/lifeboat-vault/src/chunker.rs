//! Content-defined chunking over a reusable buffer.
//!
//! The cut points are FastCDC 2020's (normalization level 1) with the vault's
//! seeded gear tables, exactly as `fastcdc::v2020::StreamCDC` would cut; the
//! loop here just reads into one buffer per thread and hands out slices, so a
//! backup allocates nothing per chunk (allocation churn of megabyte buffers
//! across threads is what made the allocator's footprint grow).

use std::borrow::Cow;
use std::io::Read;

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

use crate::vault::ChunkerParams;

/// A configured chunker.
#[derive(Debug, Clone)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Chunker {
    /// A chunker with the vault's parameters and secret seed.
    pub fn new(p: ChunkerParams, seed: u64) -> Chunker {
        let (mask_s, mask_l) = select_masks(p.avg as usize, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            min: p.min as usize,
            avg: p.avg as usize,
            max: p.max as usize,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        }
    }

    /// The largest chunk.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Splits everything `reader` yields into chunks, calling `f` with each in
    /// order; `buf` is scratch space (kept between calls to avoid allocation).
    /// Returns the bytes read.
    pub fn for_each_chunk<E: From<std::io::Error>>(
        &self,
        mut reader: impl Read,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let cap = 2 * self.max;
        if buf.len() != cap {
            buf.resize(cap, 0);
        }
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if !eof && end - start < self.max {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < cap {
                    match reader.read(&mut buf[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => end += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let (_, len) = cut_gear(
                &buf[start..end],
                self.min,
                self.avg,
                self.max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
                &self.gear,
                &self.gear_ls,
            );
            f(&buf[start..start + len])?;
            total += len as u64;
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_exactly_like_fastcdc_stream() {
        let p = ChunkerParams {
            min: 8 * 1024,
            avg: 32 * 1024,
            max: 128 * 1024,
        };
        let mut data = Vec::new();
        let mut s = 7u64;
        for _ in 0..3_000_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            data.push((s >> 24) as u8);
        }
        // Some long runs that force max-size cuts.
        data.extend(std::iter::repeat_n(0u8, 700_000));
        let seed = 0x1234_5678_9abc_def0;
        let expected: Vec<usize> = fastcdc::v2020::StreamCDC::with_level_and_seed(
            &data[..],
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            Normalization::Level1,
            seed,
        )
        .map(|c| c.unwrap().length)
        .collect();
        let mut got = Vec::new();
        let mut buf = Vec::new();
        // A reader that returns short reads, to exercise refilling.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = b.len().min(10_007).min(self.0.len());
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let total = Chunker::new(p, seed)
            .for_each_chunk::<std::io::Error>(Dribble(&data), &mut buf, |c| {
                got.push(c.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(total as usize, data.len());
        assert!(expected.len() > 50);
        assert_eq!(got, expected);
    }
}
