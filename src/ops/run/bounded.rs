//! A command's output kept in bounded memory: its first bytes and its last
//! (where an error usually is), and how much there was in all.

use std::collections::VecDeque;

/// At most `limit` bytes of a stream: a quarter from its start, the rest
/// from its end.
#[derive(Debug)]
pub struct Bounded {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_limit: usize,
    tail_limit: usize,
    total: u64,
}

impl Bounded {
    pub fn new(limit: usize) -> Bounded {
        let head_limit = limit / 4;
        Bounded {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_limit,
            tail_limit: limit - head_limit,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let to_head = bytes.len().min(self.head_limit - self.head.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.len() >= self.tail_limit {
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.tail_limit..];
        } else {
            let over = (self.tail.len() + bytes.len()).saturating_sub(self.tail_limit);
            self.tail.drain(..over);
        }
        self.tail.extend(bytes);
    }

    /// How many bytes the stream had.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Some of it was left out.
    pub fn cut(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// What was kept, as text (invalid UTF-8 replaced), with a line where
    /// bytes were left out saying how many.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.cut() {
            let left_out = self.total - (self.head.len() + self.tail.len()) as u64;
            text.push_str(&format!("\n[dual: {left_out} bytes left out here]\n"));
        }
        let (front, back) = self.tail.as_slices();
        let mut tail = Vec::with_capacity(self.tail.len());
        tail.extend_from_slice(front);
        tail.extend_from_slice(back);
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_whole() {
        let mut out = Bounded::new(100);
        out.push(b"hello ");
        out.push(b"world");
        assert_eq!(
            (out.text().as_str(), out.cut(), out.total()),
            ("hello world", false, 11)
        );
    }

    #[test]
    fn long_output_keeps_its_start_and_end() {
        let mut out = Bounded::new(8);
        for chunk in [&b"ab"[..], b"cdefgh", b"ijklmnopq", b"rs", b"tuvwxyz"] {
            out.push(chunk);
        }
        assert_eq!(out.total(), 26);
        assert!(out.cut());
        assert_eq!(out.text(), "ab\n[dual: 18 bytes left out here]\nuvwxyz");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut out = Bounded::new(1024);
        let chunk = vec![b'x'; 65536];
        for _ in 0..100 {
            out.push(&chunk);
        }
        assert_eq!(out.total(), 6_553_600);
        assert!(out.head.len() + out.tail.len() <= 1024);
        assert!(out.tail.capacity() < 4096, "{}", out.tail.capacity());
    }
}
