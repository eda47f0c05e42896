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
use std::time::Instant;

use tokio::sync::oneshot;

use crate::auth::password::{Memory, StoredHash, hash_password};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::HashOperation;

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

/// A job and when it was queued.
struct Queued {
    job: Job,
    at: Instant,
}

/// Work for a hashing thread; both kinds wait in the same queue.
#[expect(clippy::large_enum_variant, reason = "most jobs are checks; at most `queue` of them wait")]
enum Job {
    /// Check a password against a stored hash.
    Verify { password: String, hash: StoredHash, reply: oneshot::Sender<bool> },
    /// Hash a password anew (argon2id, default parameters), to upgrade a legacy hash.
    Hash { password: String, reply: oneshot::Sender<String> },
}

impl Job {
    /// True when whoever queued the job no longer waits for its answer.
    fn abandoned(&self) -> bool {
        match self {
            Self::Verify { reply, .. } => reply.is_closed(),
            Self::Hash { reply, .. } => reply.is_closed(),
        }
    }
}

/// How much the threads have done since start.
#[derive(Default)]
struct Counters {
    checks: AtomicU64,
    hashes: AtomicU64,
}

/// Handle to the worker threads (cheap to clone). Dropping the last handle lets them finish
/// and exit.
#[derive(Clone)]
pub struct HashPool {
    queue: SyncSender<Queued>,
    counters: Arc<Counters>,
    metrics: Metrics,
}

impl HashPool {
    /// Starts `config.workers` threads sharing a queue of `config.queue` waiting jobs, and
    /// the lane threads they hash on; they record their queue and timings in `metrics`.
    pub fn new(config: HashingConfig, metrics: Metrics) -> Self {
        let lanes = rayon::ThreadPoolBuilder::new()
            .num_threads(config.lane_threads)
            .thread_name(|index| format!("argon2-lane-{index}"))
            .start_handler(|_| lower_priority())
            .build()
            .expect("cannot start the password hashing threads");
        let lanes = Arc::new(lanes);
        let (queue, jobs) = mpsc::sync_channel(config.queue);
        let jobs = Arc::new(Mutex::new(jobs));
        let counters = Arc::new(Counters::default());
        for index in 0..config.workers {
            let (jobs, lanes, counted) = (Arc::clone(&jobs), Arc::clone(&lanes), Arc::clone(&counters));
            let metrics = metrics.clone();
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&jobs, &lanes, &counted, &metrics))
                .expect("cannot start a password hashing thread");
        }
        Self { queue, counters, metrics }
    }

    /// How many password checks the threads have computed since start.
    pub fn checks_done(&self) -> u64 {
        self.counters.checks.load(Ordering::Relaxed)
    }

    /// How many new hashes (`hash`) the threads have computed since start.
    pub fn hashes_done(&self) -> u64 {
        self.counters.hashes.load(Ordering::Relaxed)
    }

    /// Checks `password` against `hash` on a worker thread; `Err(Busy)` when the queue is full.
    pub async fn verify(&self, password: String, hash: StoredHash) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { password, hash, reply })?;
        answer.await.map_err(|_| Busy)
    }

    /// Hashes `password` as argon2id with the default parameters on a worker thread and returns
    /// the PHC string (to replace a hash that `needs_upgrade`); `Err(Busy)` when the queue is full.
    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer.await.map_err(|_| Busy)
    }

    fn submit(&self, job: Job) -> Result<(), Busy> {
        // Counted before it is sent, so that a thread taking it at once never makes it negative.
        self.metrics.queue_depth_add(1);
        let sent = self.queue.try_send(Queued { job, at: Instant::now() });
        sent.map_err(|(TrySendError::Full(_) | TrySendError::Disconnected(_))| {
            self.metrics.queue_depth_add(-1);
            Busy
        })
    }
}

fn work(jobs: &Mutex<Receiver<Queued>>, lanes: &rayon::ThreadPool, counters: &Counters, metrics: &Metrics) {
    lower_priority();
    let mut memory = Memory::default();
    loop {
        let queued = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(Queued { job, at }) = queued else { return };
        metrics.queue_depth_add(-1);
        // A client that went away no longer needs its answer: skip the work.
        if job.abandoned() {
            continue;
        }
        let started = Instant::now();
        match job {
            Job::Verify { password, hash, reply } => {
                let matches = lanes.install(|| hash.verify(password.as_bytes(), &mut memory));
                counters.checks.fetch_add(1, Ordering::Relaxed);
                metrics.hashed(HashOperation::Verify, started - at, started.elapsed());
                let _ = reply.send(matches);
            }
            Job::Hash { password, reply } => {
                let phc = lanes.install(|| hash_password(password.as_bytes(), &mut memory));
                counters.hashes.fetch_add(1, Ordering::Relaxed);
                metrics.hashed(HashOperation::Hash, started - at, started.elapsed());
                let _ = reply.send(phc);
            }
        }
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
    use argon2::Params;

    const JOHNDOE: &str =
        "$argon2id$v=19$m=65536,t=3,p=4$wagCPXjifgvUFBzq4hqe3w$CYaIb8sB+wtD+Vu/P4uod1+Qof8h+1g7bbDlBID48Rc";

    #[tokio::test]
    async fn verifies_on_a_worker_thread() {
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 4 }, Metrics::off());
        let hash = StoredHash::parse(JOHNDOE).unwrap();
        assert_eq!(pool.verify("secret".into(), hash.clone()).await, Ok(true));
        assert_eq!(pool.verify("nope".into(), hash).await, Ok(false));
        let bcrypt =
            StoredHash::parse("$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie").unwrap();
        assert_eq!(pool.verify("correctbatteryhorsestapler".into(), bcrypt).await, Ok(true));
        assert_eq!((pool.checks_done(), pool.hashes_done()), (3, 0));
    }

    #[tokio::test]
    async fn hashes_anew_with_the_default_parameters_on_a_worker_thread() {
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 4 }, Metrics::off());
        let phc = pool.hash("correct horse".into()).await.unwrap();
        let hash = StoredHash::parse(&phc).unwrap();
        assert!(!hash.needs_upgrade(), "{phc}");
        assert_eq!(pool.verify("correct horse".into(), hash).await, Ok(true));
        assert_eq!((pool.checks_done(), pool.hashes_done()), (1, 1));
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 1 }, Metrics::off());
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

    #[tokio::test]
    async fn hashing_shares_the_queue_and_its_busy_answer() {
        // No thread ever takes a job and no job may wait: every request is refused at once.
        let pool = HashPool::new(HashingConfig { workers: 0, lane_threads: 1, queue: 0 }, Metrics::off());
        assert_eq!(pool.hash("a".into()).await, Err(Busy));
        let hash = StoredHash::from(PasswordHash::dummy(default_params()));
        assert_eq!(pool.verify("a".into(), hash).await, Err(Busy));
    }

    #[tokio::test]
    async fn a_hash_nobody_waits_for_any_more_is_skipped() {
        // A million PBKDF2 iterations keep the only thread busy for a good while.
        const DJANGO: &str =
            "pbkdf2_sha256$1000000$9NYaKCyvptjJug8IMYijRQ$YiBfaBPxK/cGIn4FfZbFmAEO9nmv50LrgmrrvWNT0cA=";
        let pool = HashPool::new(HashingConfig { workers: 1, lane_threads: 2, queue: 4 }, Metrics::off());
        let slow = pool.verify("x".into(), StoredHash::parse(DJANGO).unwrap());
        let abandon = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let gave_up =
                tokio::time::timeout(std::time::Duration::from_millis(1), pool.hash("y".into())).await;
            assert!(gave_up.is_err(), "the hash cannot have run yet");
        };
        let (slow, ()) = tokio::join!(slow, abandon);
        assert_eq!(slow, Ok(false));
        // Jobs run in order: once this one is answered, the abandoned hash was dealt with.
        let hash = StoredHash::from(PasswordHash::dummy(Params::new(64, 1, 1, Some(32)).unwrap()));
        assert_eq!(pool.verify("z".into(), hash).await, Ok(false));
        assert_eq!((pool.checks_done(), pool.hashes_done()), (2, 0));
    }
}
