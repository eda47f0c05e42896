//! The bounded pool that runs password hashing (argon2, and the legacy schemes of migrated users)
//! off the async runtime.
//!
//! Dedicated threads (one by default) each own a reusable argon2 working buffer and take jobs
//! from a bounded queue; each hash fills its four lanes in parallel on a small rayon pool (one
//! thread per core). When the queue is full a login is refused at once (503) instead of piling up:
//! memory stays at `workers` buffers however many logins arrive, and the async runtime never
//! waits on a hash. All hashing threads run at a lower CPU priority, so requests that answer
//! from memory (`GET /users/me/`) stay fast during a login storm.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;

use crate::auth::password::{Memory, StoredHash};

/// How much hashing may happen at once, and how much may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingConfig {
    /// Hashes computed at the same time (`HASH_WORKERS`, 1: each hash already spreads its four
    /// lanes over every core, and one at a time keeps login latency even and memory at 64 MiB).
    pub workers: usize,
    /// Threads filling the lanes of those hashes (the number of cores).
    pub lane_threads: usize,
    /// Logins that may wait for a thread before new ones get 503 (`HASH_QUEUE`, 64).
    pub queue: usize,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self { workers: 1, lane_threads: thread::available_parallelism().map_or(2, |n| n.get()), queue: 64 }
    }
}

/// The hashing queue is full; the caller should answer 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

struct Job {
    password: String,
    hash: StoredHash,
    reply: oneshot::Sender<bool>,
}

/// Handle to the worker threads. Dropping the last handle lets them finish and exit.
pub struct HashPool {
    queue: SyncSender<Job>,
    checks: Arc<AtomicU64>,
}

impl HashPool {
    /// Starts `config.workers` threads sharing a queue of `config.queue` waiting jobs, and
    /// the lane threads they hash on.
    pub fn new(config: HashingConfig) -> Self {
        let lanes = rayon::ThreadPoolBuilder::new()
            .num_threads(config.lane_threads)
            .thread_name(|index| format!("argon2-lane-{index}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("cannot start the password hashing threads");
        let lanes = Arc::new(lanes);
        let (queue, jobs) = mpsc::sync_channel(config.queue);
        let jobs = Arc::new(Mutex::new(jobs));
        let checks = Arc::new(AtomicU64::new(0));
        for index in 0..config.workers {
            let (jobs, lanes, counted) = (Arc::clone(&jobs), Arc::clone(&lanes), Arc::clone(&checks));
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&jobs, &lanes, &counted))
                .expect("cannot start a password hashing thread");
        }
        Self { queue, checks }
    }

    /// How many password checks the threads have computed since start.
    pub fn checks_done(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Checks `password` against `hash` on a worker thread; `Err(Busy)` when the queue is full.
    pub async fn verify(&self, password: String, hash: StoredHash) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job { password, hash, reply }) {
            Ok(()) => answer.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, lanes: &rayon::ThreadPool, checks: &AtomicU64) {
    lower_priority();
    let mut memory = Memory::default();
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A client that went away no longer needs its answer: skip the work.
        if job.reply.is_closed() {
            continue;
        }
        let matches = lanes.install(|| job.hash.verify(job.password.as_bytes(), &mut memory));
        checks.fetch_add(1, Ordering::Relaxed);
        let _ = job.reply.send(matches);
    }
}

/// Niceness of the hashing threads: the scheduler then gives request handling (nice 0) about
/// nine times their share of a busy CPU, and all of it when they are idle.
const HASHING_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority (Linux: per-thread niceness).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on our own thread id has no memory effects; failure is harmless.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, HASHING_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::{PasswordHash, default_params};

    const JOHNDOE: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

    #[tokio::test]
    async fn verifies_on_a_worker_thread() {
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 4 });
        let hash = StoredHash::parse(JOHNDOE).unwrap();
        assert_eq!(pool.verify("secret".into(), hash.clone()).await, Ok(true));
        assert_eq!(pool.verify("nope".into(), hash).await, Ok(false));
        let bcrypt =
            StoredHash::parse("$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie").unwrap();
        assert_eq!(pool.verify("correctbatteryhorsestapler".into(), bcrypt).await, Ok(true));
        assert_eq!(pool.checks_done(), 3);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 1 });
        let hash = StoredHash::from(PasswordHash::dummy(default_params()));
        // One job running, one waiting: the third finds the queue full.
        let (a, b, c, d) = tokio::join!(
            pool.verify("a".into(), hash.clone()),
            pool.verify("b".into(), hash.clone()),
            pool.verify("c".into(), hash.clone()),
            pool.verify("d".into(), hash.clone()),
        );
        let answers = [a, b, c, d];
        assert!(answers.contains(&Err(Busy)), "{answers:?}");
        assert!(answers.contains(&Ok(false)), "{answers:?}");
    }
}
