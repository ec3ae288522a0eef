//! What a client sends first on the proxy's port: the relay's JSON dial
//! line, a tunnel's hello, a raw relay's or tunnel data connection's
//! preamble. Never a panic; a line is never read past its newline (the
//! SSH bytes after it belong to the node).
#![no_main]

use jaunt_proxy::{lines, raw, tunnel};
use jaunt_types::api::DialRequest;
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncReadExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut s = data;
        if lines::read_json_line::<DialRequest, _>(&mut s)
            .await
            .is_ok()
        {
            let newline = data.iter().position(|b| *b == b'\n').expect("a line ends");
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.expect("slice");
            assert_eq!(rest, &data[newline + 1..], "read past the line");
        }
        let mut s = data;
        let _ = tunnel::read_hello(&mut s).await;
    });
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    if let Some(p) = raw::parse_preamble(line) {
        let ticket = match &p {
            raw::Preamble::Client(t) | raw::Preamble::NodeData { ticket: t, .. } => t,
        };
        assert!(ticket.bytes().all(|b| b.is_ascii_hexdigit()), "{p:?}");
    }
});
