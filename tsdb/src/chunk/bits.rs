//! Bit streams: written and read most-significant bit first, as Prometheus' chunks are.

/// Appends bits most-significant first.
#[derive(Debug, Clone, Default)]
pub(super) struct BitWriter {
    pub(super) bytes: Vec<u8>,
    /// Bits still free in the last byte (0 = start a new byte).
    pub(super) free: u8,
}

impl BitWriter {
    pub(super) fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.bytes.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit && let Some(last) = self.bytes.last_mut() {
            *last |= 1 << self.free;
        }
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    pub(super) fn write_bits(&mut self, v: u64, mut n: u8) {
        while n > 0 {
            if self.free == 0 {
                self.bytes.push(0);
                self.free = 8;
            }
            let take = n.min(self.free);
            let shift = n - take;
            let part = ((v >> shift) & ((1u64 << take) - 1)) as u8;
            self.free -= take;
            if let Some(last) = self.bytes.last_mut() {
                *last |= part << self.free;
            }
            n -= take;
        }
    }

    pub(super) fn write_uvarint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.write_bits(u64::from(byte), 8);
                return;
            }
            self.write_bits(u64::from(byte | 0x80), 8);
        }
    }

    pub(super) fn write_varint(&mut self, v: i64) {
        self.write_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Reads bits most-significant first; `None` past the end.
pub(super) struct BitReader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// The 64 bits from byte `i` on, most significant first, zeros past the end.
    pub(super) fn word(&self, i: usize) -> u64 {
        match self.bytes.get(i..i + 8) {
            Some(b) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_be_bytes(w)
            }
            None => {
                let tail = self.bytes.get(i..).unwrap_or(&[]);
                let mut w = [0u8; 8];
                w[..tail.len()].copy_from_slice(tail);
                u64::from_be_bytes(w)
            }
        }
    }

    /// Reads `n` bits (n ≤ 64) with at most two word loads, instead of a byte at a
    /// time: decoding is most of a query's time over head data.
    pub(super) fn read_bits(&mut self, n: u8) -> Option<u64> {
        let n = u32::from(n);
        if n == 0 {
            return Some(0);
        }
        if n > 64 || self.pos + n as usize > self.bytes.len() * 8 {
            return None;
        }
        let (i, off) = (self.pos / 8, (self.pos % 8) as u32);
        let v = if off + n <= 64 {
            (self.word(i) << off) >> (64 - n)
        } else {
            // More than 57 bits from an unaligned start: the last few come from the
            // ninth byte.
            let head = self.word(i) << off;
            let rest = u64::from(self.bytes.get(i + 8).copied().unwrap_or(0));
            (head | (rest >> (8 - off))) >> (64 - n)
        };
        self.pos += n as usize;
        Some(v)
    }

    pub(super) fn read_uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.read_bits(8)?;
            v |= (byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(super) fn read_varint(&mut self) -> Option<i64> {
        let u = self.read_uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}
