//! The queue in front of a group-commit writer task: request handlers send, and the one writer
//! (started by [`crate::App::run_until`]) takes whatever is waiting and commits it together.

use tokio::sync::mpsc;

/// Requests waiting beyond this make senders wait (back-pressure).
const DEPTH: usize = 4096;

/// A bounded queue whose receiving end is taken once, by the writer.
pub struct WriterQueue<T> {
    tx: mpsc::Sender<T>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<T>>>,
}

impl<T> Default for WriterQueue<T> {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(DEPTH);
        Self {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl<T> WriterQueue<T> {
    /// Queues `request`; fails only when the writer is gone (shutting down).
    pub async fn send(&self, request: T) -> Result<(), mpsc::error::SendError<T>> {
        self.tx.send(request).await
    }

    /// The receiving end, once (for the writer task).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<T>> {
        self.rx.lock().ok()?.take()
    }
}
