//! The floor for any tokio proxy: accept, connect upstream, copy bytes both ways, nothing else.
//! `benches/pgbench.sh` runs pgbench through it in the same run as through tablegate, so the
//! cost of the transport and the cost of tablegate's work can be told apart.
//!
//!   cargo run --release --example splice_baseline -- LISTEN_ADDR UPSTREAM_ADDR

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: splice_baseline LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (mut client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
