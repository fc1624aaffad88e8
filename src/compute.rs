//! Off-reactor CPU work for requests: a bounded pool for verification (at most `workers` jobs at
//! once on tokio's blocking threads, so verify load from the public endpoint can never take the
//! cores issuance and status lists need), and cancellation of work whose request is gone (the
//! job's flag is set when the awaiting future is dropped, e.g. when the client disconnects; the
//! canonicalization loop checks it and stops).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::Semaphore;

/// Why a job gave no result. Never a property of the input: callers answer `indeterminate`
/// (verification) or 500 (a bug).
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// The pool was closed (the server is shutting down).
    #[error("the worker pool is closed")]
    Closed,
    /// The job panicked or its thread was lost.
    #[error("the job did not complete: {0}")]
    Lost(#[from] tokio::task::JoinError),
}

/// Sets the job's flag when dropped: when the request future is dropped before the job ends,
/// the job learns that nobody waits for it.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A bounded set of blocking workers. Cheap to clone (one shared semaphore).
#[derive(Debug, Clone)]
pub struct ComputePool {
    permits: Arc<Semaphore>,
    workers: usize,
}

impl ComputePool {
    /// A pool running at most `workers` jobs at once (at least one).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        Self {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
        }
    }

    /// How many jobs may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `job` on a blocking thread once a worker is free. `job` gets a flag that is set when
    /// this future is dropped (the request is gone); long work should check it and stop. A
    /// future dropped while waiting for a worker never starts its job.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ComputeError>
    where
        F: FnOnce(Arc<AtomicBool>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ComputeError::Closed)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let guard = CancelOnDrop(cancel.clone());
        let result = tokio::task::spawn_blocking(move || {
            // The worker is busy until the job returns, whether or not anyone still waits.
            let _permit = permit;
            job(cancel)
        })
        .await;
        drop(guard);
        Ok(result?)
    }
}

/// Runs `job` on tokio's (unbounded) blocking pool with the same cancellation flag as
/// [`ComputePool::run`]: for authenticated work (issuance) that has its own admission limits.
pub async fn spawn_interruptible<T, F>(job: F) -> Result<T, ComputeError>
where
    F: FnOnce(Arc<AtomicBool>) -> T + Send + 'static,
    T: Send + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(cancel.clone());
    let result = tokio::task::spawn_blocking(move || job(cancel)).await;
    drop(guard);
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Never more than `workers` jobs at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_workers_jobs_at_once() {
        let pool = ComputePool::new(1);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut jobs = Vec::new();
        for _ in 0..4 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            jobs.push(tokio::spawn(async move {
                pool.run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    /// Dropping the future tells the running job to stop, and frees the worker for the next.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_stops_its_job() {
        let pool = ComputePool::new(1);
        let spinning = pool.run(|cancel| {
            let start = Instant::now();
            while !cancel.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                std::hint::spin_loop();
            }
            start.elapsed()
        });
        let _ = tokio::time::timeout(Duration::from_millis(50), spinning).await;
        let start = Instant::now();
        pool.run(|_| ()).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
