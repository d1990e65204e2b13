//! Message bodies: where one with a known end stops, found as its bytes go
//! by (a length counted down, or the chunked state machine), so that a
//! connection knows where the next message starts.

use super::{Framing, HeadError, is_tchar};

/// Where a body with a known end stops, found as its bytes go by.
#[derive(Debug)]
pub enum BodyEnd {
    Length(u64),
    Chunked(Chunked),
}

impl BodyEnd {
    /// `None` for no body, or one that ends only when the sender closes.
    pub fn of(framing: Framing) -> Option<BodyEnd> {
        match framing {
            Framing::Length(length) => Some(BodyEnd::Length(length)),
            Framing::Chunked => Some(BodyEnd::Chunked(Chunked::default())),
            Framing::None | Framing::UntilClose => None,
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyEnd::Length(remaining) => *remaining == 0,
            BodyEnd::Chunked(chunked) => chunked.is_done(),
        }
    }

    /// How many bytes at the start of `input` belong to the body; the
    /// payload in them (without chunk framing) goes to `data`.
    pub fn take(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, HeadError> {
        match self {
            BodyEnd::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                data(&input[..take]);
                *remaining -= take as u64;
                Ok(take)
            }
            BodyEnd::Chunked(chunked) => chunked.scan(input, data),
        }
    }
}

/// Finds where a chunked body ends while its bytes pass through unchanged;
/// optionally reports the data inside the chunks (to de-chunk for HTTP/1.0).
/// As strict as RFC 9112 §7.1: a size is hex digits (leading zeros allowed),
/// extensions are `;name[=token|"quoted"]` with optional spaces around `;`
/// and `=`, trailer lines are header lines, and every line ends in CRLF.
/// Anything else is an error: a lenient reader here and a strict one (or a
/// differently lenient one) upstream disagree on where the body ends.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
    /// A digit was seen on this size line.
    sized: bool,
    /// Bytes of the current size line or of the trailer section.
    line: usize,
}

/// Longest chunk-size line (with its extensions) and trailer section.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    /// Spaces after the size: only `;` may follow.
    SizeSpace,
    /// After `;`: optional spaces, then a name.
    ExtName,
    InExtName,
    /// Spaces after a name: `=` or `;` may follow.
    ExtNameSpace,
    /// After `=`: optional spaces, then a token or a quoted string.
    ExtValue,
    InExtToken,
    InExtQuoted,
    ExtQuotedPair,
    /// Right after a value: `;` or the line's end.
    ExtValueEnd,
    /// Spaces after a value: only `;` may follow.
    ExtValueSpace,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or the blank line that ends the body.
    Trailer,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The blank line's LF.
    EndLf,
    Done,
}

impl Chunked {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes of the chunked body from `input`, calling `data` with
    /// each run of payload; returns how many bytes belong to the body (all of
    /// `input` unless the body ends inside it).
    pub fn scan(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, HeadError> {
        use ChunkState::*;
        let bad = HeadError::Invalid("malformed chunked body");
        let mut at = 0;
        while at < input.len() && self.state != Done {
            let byte = input[at];
            if !matches!(self.state, Data | DataCr | DataLf) {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err(HeadError::Invalid("chunk line or trailers too long"));
                }
            }
            let space = byte == b' ' || byte == b'\t';
            self.state = match (self.state, byte) {
                (Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if self.size > u64::MAX >> 4 {
                        return Err(bad);
                    }
                    let digit = (byte as char).to_digit(16).unwrap_or(0);
                    self.size = self.size * 16 + u64::from(digit);
                    self.sized = true;
                    Size
                }
                (Size, b';') if self.sized => ExtName,
                (Size, _) if space && self.sized => SizeSpace,
                (Size, b'\r') if self.sized => SizeLf,
                (SizeSpace, _) if space => SizeSpace,
                (SizeSpace, b';') => ExtName,
                (ExtName, _) if space => ExtName,
                (ExtName | InExtName, _) if is_tchar(byte) => InExtName,
                (InExtName, _) if space => ExtNameSpace,
                (ExtNameSpace, _) if space => ExtNameSpace,
                (InExtName | ExtNameSpace, b'=') => ExtValue,
                (InExtName | ExtNameSpace, b';') => ExtName,
                (InExtName, b'\r') => SizeLf,
                (ExtValue, _) if space => ExtValue,
                (ExtValue, b'"') => InExtQuoted,
                (ExtValue | InExtToken, _) if is_tchar(byte) => InExtToken,
                (InExtToken, b';') => ExtName,
                (InExtToken, b'\r') => SizeLf,
                (InExtToken | ExtValueEnd | ExtValueSpace, _) if space => ExtValueSpace,
                (InExtQuoted, b'"') => ExtValueEnd,
                (InExtQuoted, b'\\') => ExtQuotedPair,
                (InExtQuoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => {
                    InExtQuoted
                }
                (ExtQuotedPair, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => InExtQuoted,
                (ExtValueEnd | ExtValueSpace, b';') => ExtName,
                (ExtValueEnd, b'\r') => SizeLf,
                (SizeLf, b'\n') if self.size == 0 => {
                    self.line = 0;
                    Trailer
                }
                (SizeLf, b'\n') => Data,
                (Data, _) => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - at);
                    data(&input[at..at + take]);
                    self.size -= take as u64;
                    at += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => {
                    self.sized = false;
                    self.line = 0;
                    Size
                }
                (Trailer, b'\r') => EndLf,
                (Trailer | TrailerName, _) if is_tchar(byte) => TrailerName,
                (TrailerName, b':') => TrailerValue,
                (TrailerValue, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => TrailerValue,
                (TrailerValue, b'\r') => TrailerLf,
                (TrailerLf, b'\n') => Trailer,
                (EndLf, b'\n') => Done,
                _ => return Err(bad),
            };
            at += 1;
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        // Whole, and one byte at a time: the same end, the same data.
        for step in [body.len(), 1] {
            let mut scanner = Chunked::default();
            let mut data = Vec::new();
            let mut consumed = 0;
            for piece in body.chunks(step) {
                if scanner.is_done() {
                    break;
                }
                consumed += scanner.scan(piece, |d| data.extend_from_slice(d)).unwrap();
            }
            assert!(scanner.is_done());
            assert_eq!(consumed, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello world");
        }
        let mut scanner = Chunked::default();
        assert!(scanner.scan(b"zz\r\n", |_| {}).is_err());
        let mut scanner = Chunked::default();
        assert!(scanner.scan(b"ffffffffffffffff0\r\n", |_| {}).is_err());
    }

    /// Scans a whole chunked body: `Ok(consumed)` once it ends, an error if
    /// it is malformed.
    fn chunked(body: &[u8]) -> Result<usize, HeadError> {
        let mut scanner = Chunked::default();
        let consumed = scanner.scan(body, |_| {})?;
        assert!(
            scanner.is_done(),
            "{:?} did not end",
            String::from_utf8_lossy(body)
        );
        Ok(consumed)
    }

    #[test]
    fn chunk_lines_are_as_strict_as_the_grammar() {
        for bad in [
            &b"5 x\r\nhello\r\n0\r\n\r\n"[..],
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;a\0\r\nhello\r\n0\r\n\r\n",
            b"5;a\x7f\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            // The next request read as trailers.
            b"0\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            b"0\r\nX-A: 1\r\n folded\r\n\r\n",
            b"0\r\nX-A: a\0b\r\n\r\n",
            // Spaces may stand around `;` and `=`, not at the line's end.
            b"5;a=\"q\" \r\nhello\r\n0\r\n\r\n",
        ] {
            let mut scanner = Chunked::default();
            assert!(
                scanner.scan(bad, |_| {}).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for good in [
            &b"5;a=b;c\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; a = \"q \\\" d\"\r\nhello\r\n0\r\n\r\n",
            b"0000000000000000005\r\nhello\r\n0\r\n\r\n",
            b"0\r\nX-A: 1\r\nX-B:\t2 \r\n\r\n",
        ] {
            assert_eq!(
                chunked(good),
                Ok(good.len()),
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
    }
}
