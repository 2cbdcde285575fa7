//! Where audit lines go: an in-memory buffer written out in batches.
//!
//! A writer that hands every line to another thread wakes that thread once per statement —
//! a context switch per query on a small machine. Here formatted lines are appended to a shared
//! buffer under a short lock; a background thread writes the buffer out every 100 ms, and a
//! line is written at once when the buffer passes 256 KiB. [`BatchWriter::flush`] (called when
//! tablegate stops) writes what is left. The buffer is swapped out before the slow write, so a
//! session appending a line waits for the disk only when its own line fills the buffer (and
//! then for the batch being written, if any). After a batch larger than usual, its buffer
//! shrinks back to the usual size.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_ABOVE: usize = 256 * 1024;

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// The destination and a spare buffer to swap in. Taken before the buffer's lock, so
    /// batches reach the destination in the order they were filled.
    out: Mutex<Destination>,
}

struct Destination {
    out: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

impl Shared {
    fn write_out(&self) {
        let mut destination = self.out.lock().expect("audit destination");
        let Destination { out, spare } = &mut *destination;
        std::mem::swap(&mut *self.buffer.lock().expect("audit buffer"), spare);
        if !spare.is_empty() {
            // An audit file that cannot be written must not stop the proxy; the error is logged.
            if let Err(e) = out.write_all(spare).and_then(|_| out.flush()) {
                eprintln!("tablegate: cannot write audit records: {e}");
            }
            spare.clear();
            // One huge line must not leave a huge buffer behind (the two are swapped, so each
            // is shrunk here in turn).
            spare.shrink_to(FLUSH_ABOVE);
        }
    }
}

#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

impl BatchWriter {
    /// A writer to `out`, flushed by a background thread for as long as the writer lives.
    pub fn new(out: Box<dyn Write + Send>) -> BatchWriter {
        let writer = BatchWriter {
            shared: Arc::new(Shared {
                buffer: Mutex::new(Vec::with_capacity(FLUSH_ABOVE)),
                out: Mutex::new(Destination {
                    out,
                    spare: Vec::with_capacity(FLUSH_ABOVE),
                }),
            }),
        };
        let weak = Arc::downgrade(&writer.shared);
        std::thread::Builder::new()
            .name("tablegate-audit".into())
            .spawn(move || {
                while let Some(shared) = weak.upgrade() {
                    shared.write_out();
                    drop(shared);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })
            .expect("a thread for the audit writer");
        writer
    }

    /// Writes out everything buffered.
    pub fn flush(&self) {
        self.shared.write_out();
    }

    /// Adds whole lines to the buffer, writing it out if it is full.
    pub fn append(&self, lines: &[u8]) {
        let full = {
            let mut buffer = self.shared.buffer.lock().expect("audit buffer");
            buffer.extend_from_slice(lines);
            buffer.len() > FLUSH_ABOVE
        };
        if full {
            self.shared.write_out();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_huge_line_leaves_no_huge_buffer_behind() {
        let sink = Sink::default();
        let writer = BatchWriter::new(Box::new(sink.clone()));
        writer.append(&vec![b'x'; 64 * FLUSH_ABOVE]);
        writer.append(b"small\n");
        BatchWriter::flush(&writer);
        assert_eq!(sink.0.lock().unwrap().len(), 64 * FLUSH_ABOVE + 6);
        let buffer = writer.shared.buffer.lock().unwrap().capacity();
        let spare = writer.shared.out.lock().unwrap().spare.capacity();
        assert!(
            buffer <= 2 * FLUSH_ABOVE && spare <= 2 * FLUSH_ABOVE,
            "{buffer} and {spare} bytes kept"
        );
    }

    #[test]
    fn lines_are_written_out_in_batches_and_on_flush() {
        let sink = Sink::default();
        let writer = BatchWriter::new(Box::new(sink.clone()));
        writer.append(b"{\"a\":1}\n");
        BatchWriter::flush(&writer);
        assert_eq!(&*sink.0.lock().unwrap(), b"{\"a\":1}\n");
        let big = vec![b'x'; FLUSH_ABOVE + 1];
        writer.append(&big);
        assert_eq!(
            sink.0.lock().unwrap().len(),
            8 + FLUSH_ABOVE + 1,
            "a full buffer is written at once"
        );
        writer.append(b"tail\n");
        std::thread::sleep(FLUSH_EVERY * 3);
        assert!(
            sink.0.lock().unwrap().ends_with(b"tail\n"),
            "the background thread writes out"
        );
    }
}
