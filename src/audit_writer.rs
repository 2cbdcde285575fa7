//! Where audit lines go: an in-memory buffer written out in batches.
//!
//! A writer that hands every line to another thread wakes that thread once per statement —
//! a context switch per query on a small machine. Here formatted lines are appended to a shared
//! buffer under a short lock; a background thread writes the buffer out every 100 ms, and a
//! line is written at once when the buffer passes 256 KiB. [`BatchWriter::flush`] (called when
//! tablegate stops) writes what is left.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_ABOVE: usize = 256 * 1024;

struct Shared {
    buffer: Vec<u8>,
    out: Box<dyn Write + Send>,
}

impl Shared {
    fn write_out(&mut self) {
        if !self.buffer.is_empty() {
            // An audit file that cannot be written must not stop the proxy; the error is logged.
            if let Err(e) = self
                .out
                .write_all(&self.buffer)
                .and_then(|_| self.out.flush())
            {
                eprintln!("tablegate: cannot write audit records: {e}");
            }
            self.buffer.clear();
        }
    }
}

#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Mutex<Shared>>,
}

impl BatchWriter {
    /// A writer to `out`, flushed by a background thread for as long as the writer lives.
    pub fn new(out: Box<dyn Write + Send>) -> BatchWriter {
        let writer = BatchWriter {
            shared: Arc::new(Mutex::new(Shared {
                buffer: Vec::with_capacity(FLUSH_ABOVE),
                out,
            })),
        };
        let weak = Arc::downgrade(&writer.shared);
        std::thread::Builder::new()
            .name("tablegate-audit".into())
            .spawn(move || {
                while let Some(shared) = weak.upgrade() {
                    shared.lock().expect("audit buffer").write_out();
                    drop(shared);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })
            .expect("a thread for the audit writer");
        writer
    }

    /// Writes out everything buffered.
    pub fn flush(&self) {
        self.shared.lock().expect("audit buffer").write_out();
    }
}

impl Write for BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut shared = self.shared.lock().expect("audit buffer");
        shared.buffer.extend_from_slice(bytes);
        if shared.buffer.len() > FLUSH_ABOVE {
            shared.write_out();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;
    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_out_in_batches_and_on_flush() {
        let sink = Sink::default();
        let mut writer = BatchWriter::new(Box::new(sink.clone()));
        writer.write_all(b"{\"a\":1}\n").unwrap();
        writer.flush_now_for_test();
        assert_eq!(&*sink.0.lock().unwrap(), b"{\"a\":1}\n");
        let big = vec![b'x'; FLUSH_ABOVE + 1];
        writer.write_all(&big).unwrap();
        assert_eq!(
            sink.0.lock().unwrap().len(),
            8 + FLUSH_ABOVE + 1,
            "a full buffer is written at once"
        );
        writer.write_all(b"tail\n").unwrap();
        std::thread::sleep(FLUSH_EVERY * 3);
        assert!(
            sink.0.lock().unwrap().ends_with(b"tail\n"),
            "the background thread writes out"
        );
    }

    impl BatchWriter {
        fn flush_now_for_test(&self) {
            BatchWriter::flush(self);
        }
    }
}
