//! The row format of table data in a snapshot: the text format `LOAD DATA`
//! reads by default, so a restore streams it to the server unchanged.
//!
//! One row per line (`\n`), fields separated by tab, NULL written as `\N`,
//! and in values the bytes `\\`, tab, newline, carriage return and NUL escaped
//! as `\\\\`, `\t`, `\n`, `\r`, `\0`. Values are the server's own text form
//! of each column (see [`crate::schema::Encoding`] for the few columns
//! dumped through an expression), taken without character set conversion, so
//! any bytes round-trip.

/// The `LOAD DATA` clauses matching [`encode_row`].
pub const LOAD_FORMAT: &str =
    "CHARACTER SET binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'";

/// Appends one row to `out`.
pub fn encode_row(row: &[Option<Vec<u8>>], out: &mut Vec<u8>) {
    encode_fields(row.iter().map(|v| v.as_deref()), out);
}

/// Appends one row, given as its fields (`None` = NULL), to `out`.
pub fn encode_fields<'a>(fields: impl Iterator<Item = Option<&'a [u8]>>, out: &mut Vec<u8>) {
    for (i, v) in fields.enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match v {
            None => out.extend_from_slice(b"\\N"),
            Some(b) => escape_into(b, out),
        }
    }
    out.push(b'\n');
}

/// For each byte, the letter of its escape (`\\x`), or 0 when it stands as is.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'\\' as usize] = b'\\';
    t[b'\t' as usize] = b't';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[0] = b'0';
    t
};

/// Whether a byte may need an escape: every byte that does (`\\`, tab,
/// newline, carriage return, NUL) is below 14 or is `\\`. A cheap test the
/// compiler turns into SIMD over a block, so clean runs are copied whole.
#[inline]
fn suspect(c: u8) -> bool {
    c < 14 || c == b'\\'
}

fn escape_into(b: &[u8], out: &mut Vec<u8>) {
    const BLOCK: usize = 32;
    out.reserve(b.len());
    let mut start = 0; // bytes before `start` are written
    let mut at = 0;
    while at < b.len() {
        let end = (at + BLOCK).min(b.len());
        let block = &b[at..end];
        // No early exit: the fold vectorizes.
        if !block.iter().fold(false, |any, &c| any | suspect(c)) {
            at = end;
            continue;
        }
        for (i, &c) in block.iter().enumerate() {
            let e = ESCAPE[c as usize];
            if e != 0 {
                out.extend_from_slice(&b[start..at + i]);
                out.push(b'\\');
                out.push(e);
                start = at + i + 1;
            }
        }
        at = end;
    }
    out.extend_from_slice(&b[start..]);
}

/// Parses rows back (used by tests and by `points ls` style inspection).
pub fn decode_rows(data: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut rows = Vec::new();
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    if data.is_empty() {
        return rows;
    }
    for line in data.split(|&c| c == b'\n') {
        let mut row = Vec::new();
        for field in line.split(|&c| c == b'\t') {
            if field == b"\\N" {
                row.push(None);
                continue;
            }
            let mut v = Vec::with_capacity(field.len());
            let mut it = field.iter();
            while let Some(&c) = it.next() {
                if c == b'\\' {
                    match it.next() {
                        Some(b't') => v.push(b'\t'),
                        Some(b'n') => v.push(b'\n'),
                        Some(b'r') => v.push(b'\r'),
                        Some(b'0') => v.push(0),
                        Some(&o) => v.push(o),
                        None => v.push(b'\\'),
                    }
                } else {
                    v.push(c);
                }
            }
            row.push(Some(v));
        }
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_in_long_values_at_every_position() {
        for len in [0usize, 1, 31, 32, 33, 64, 100] {
            for pos in 0..len {
                for special in [0u8, b'\t', b'\n', b'\r', b'\\', 1, 13, 14, 200] {
                    let mut v = vec![b'a'; len];
                    v[pos] = special;
                    let mut out = Vec::new();
                    encode_row(&[Some(v.clone())], &mut out);
                    assert_eq!(
                        decode_rows(&out),
                        vec![vec![Some(v)]],
                        "len {len} pos {pos}"
                    );
                    let escaped = [0u8, b'\t', b'\n', b'\r', b'\\'].contains(&special);
                    assert_eq!(out.len(), len + 1 + usize::from(escaped));
                }
            }
        }
    }

    #[test]
    fn rows_roundtrip_with_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let rows = vec![
            vec![Some(b"1".to_vec()), None, Some(Vec::new())],
            vec![
                Some(all.clone()),
                Some(b"\\N".to_vec()),
                Some(b"a\tb\nc\\".to_vec()),
            ],
        ];
        let mut out = Vec::new();
        for r in &rows {
            encode_row(r, &mut out);
        }
        assert_eq!(
            out.iter().filter(|&&c| c == b'\n').count(),
            2,
            "one line per row"
        );
        assert_eq!(decode_rows(&out), rows);
    }
}
