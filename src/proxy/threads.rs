//! Where client sessions run: one single-threaded runtime per core, each session wholly on one.
//!
//! A session is two tasks (the forwarder and the relay) over two sockets. On a work-stealing
//! runtime they wake each other across threads — a futex wake and a context switch per
//! query, the largest cost of a proxied point query on a small machine. Here both tasks and
//! both sockets stay on one thread, which waits in epoll alone, as PgBouncer's event loop does.
//! The threads serve every listener in the process and live as long as it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;

use super::connection_limit::AddressClaim;
use super::{Gate, session};

struct SessionThreads {
    runtimes: Vec<Handle>,
    next: AtomicUsize,
}

fn threads() -> &'static SessionThreads {
    static THREADS: OnceLock<SessionThreads> = OnceLock::new();
    THREADS.get_or_init(|| {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtimes = (0..count)
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for client sessions");
                let handle = runtime.handle().clone();
                std::thread::Builder::new()
                    .name(format!("tablegate-sessions-{i}"))
                    .stack_size(crate::rewrite::STACK_SIZE)
                    .spawn(move || runtime.block_on(std::future::pending::<()>()))
                    .expect("a thread for client sessions");
                handle
            })
            .collect();
        SessionThreads {
            runtimes,
            next: AtomicUsize::new(0),
        }
    })
}

/// Runs the session of an accepted client on the next session thread, in turn. `slot` is its
/// place under `max_client_connections`, given back when the session's task ends, however;
/// `login` its place among its address's logins in progress.
pub fn spawn_session(
    gate: Arc<Gate>,
    socket: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    login: AddressClaim,
) {
    // Moved between runtimes as a plain socket: it registers with the thread that serves it.
    let socket = match socket.into_std() {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!(error = %e, client = %peer, "could not hand the client to a session thread");
            return;
        }
    };
    let threads = threads();
    let turn = threads.next.fetch_add(1, Ordering::Relaxed) % threads.runtimes.len();
    threads.runtimes[turn].spawn(async move {
        let _slot = slot;
        match TcpStream::from_std(socket) {
            Ok(socket) => session::run(gate, socket, peer, login).await,
            Err(e) => tracing::warn!(error = %e, client = %peer, "could not start the session"),
        }
    });
}
