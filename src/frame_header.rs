//! The header of a WebSocket frame (RFC 6455 §5.2), read before its payload: what the session's
//! guard and the outbound links' codec check a frame's announced size with.

/// A complete frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: the frame ends its message.
    pub fin: bool,
    pub opcode: u8,
    /// The payload length announced; a length with the top bit set (invalid) reads as
    /// `u64::MAX`, over every limit.
    pub length: u64,
    /// The header's own length: 2 bytes, the extended length, the mask.
    pub size: usize,
}

/// The opcode of a continuation frame.
pub const CONTINUATION: u8 = 0;

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
pub const MAX_HEADER: usize = 14;

impl FrameHeader {
    /// The header at the start of `bytes`, once all of it is there.
    pub fn read(bytes: &[u8]) -> Option<FrameHeader> {
        let [first, second, rest @ ..] = bytes else {
            return None;
        };
        let (extended, length) = match second & 0x7F {
            126 => (
                2,
                u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            ),
            127 => {
                let length = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
                (8, if length >> 63 == 1 { u64::MAX } else { length })
            }
            short => (0, u64::from(short)),
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        let size = 2 + extended + mask;
        (bytes.len() >= size).then_some(FrameHeader {
            fin: first & 0x80 != 0,
            opcode: first & 0x0F,
            length,
            size,
        })
    }

    /// The header a client writes for a frame of `length` bytes, with a zero mask (the payload
    /// then goes as it is): what the tests and the soak send by hand.
    pub fn client(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        let mut bytes = vec![if fin { 0x80 } else { 0 } | opcode];
        match length {
            0..=125 => bytes.push(0x80 | length as u8),
            126..=0xffff => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(length as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&length.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes
    }

    /// Text, binary and continuation frames carry a message; the others are control frames.
    pub fn is_data(&self) -> bool {
        self.opcode & 0x08 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_only_once_complete() {
        // Masked, 16-bit length 300.
        let header = [0x81, 0x80 | 126, 0x01, 0x2C, 1, 2, 3, 4];
        for cut in 0..header.len() {
            assert_eq!(FrameHeader::read(&header[..cut]), None, "{cut} bytes");
        }
        let read = FrameHeader::read(&header).unwrap();
        assert_eq!(
            (read.fin, read.opcode, read.length, read.size),
            (true, 1, 300, 8)
        );
        // Unmasked continuation, 64-bit length with the top bit set.
        let mut header = vec![0x00, 127];
        header.extend_from_slice(&u64::MAX.to_be_bytes());
        let read = FrameHeader::read(&header).unwrap();
        assert_eq!(
            (read.fin, read.opcode, read.length, read.size),
            (false, 0, u64::MAX, 10)
        );
        assert!(read.is_data());
        assert!(!FrameHeader::read(&[0x89, 0]).unwrap().is_data());
    }
}
