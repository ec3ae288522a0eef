//! One JSON line at the start of a stream, read without consuming a byte
//! past the newline (the SSH bytes that follow belong to someone else).

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest header line accepted.
const MAX_LINE: usize = 8192;

pub async fn read_json_line<T: DeserializeOwned, S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<T> {
    let line = read_line(stream, MAX_LINE).await?;
    serde_json::from_slice(&line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// One line of at most `max` bytes, without its newline.
pub async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(128);
    loop {
        let b = stream.read_u8().await?;
        if b == b'\n' {
            return Ok(line);
        }
        line.push(b);
        if line.len() > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "header line too long",
            ));
        }
    }
}

pub async fn write_json_line<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes).await?;
    stream.flush().await
}
