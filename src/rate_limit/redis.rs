//! The shared backend: a subject's GCRA state is one Redis key (`<prefix><limit>:<subject>`, the
//! theoretical arrival time in microseconds of the server's clock, expiring when the bucket is full
//! again), read and written by one Lua script so concurrent instances never race.
//!
//! The connection is one multiplexed connection, opened in the background. Any failure or a reply
//! slower than the timeout drops it and answers from the local counters ([`RedisCells::run`]
//! returns `None`); a new connection is tried at most once per [`RETRY`].

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use redis::aio::MultiplexedConnection;

use super::{Mode, Quota, RedisOptions};

/// How long after a failure Redis is left alone before a new connection is tried.
const RETRY: Duration = Duration::from_secs(1);
/// How often the outage warning is repeated while Redis stays unreachable.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The longest the first connection at start-up is waited for.
const FIRST_CONNECT: Duration = Duration::from_secs(1);

/// One GCRA step. KEYS[1]: the subject's key. ARGV: emission interval (µs), tolerance (µs), mode.
/// Returns 0 when the request is (would be) admitted, else the wait in µs.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local mode = ARGV[3]
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - now - tolerance
if mode == 'peek' or (mode == 'take' and wait > 0) then
  if wait > 0 then return math.ceil(wait) end
  return 0
end
if mode == 'take' then
  tat = tat + interval
else
  tat = math.min(tat + interval, now + tolerance + interval)
end
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
";

/// A Redis URL that cannot be used. Stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("redis_url is not a usable Redis URL: {0}")]
pub struct RedisSetupError(String);

enum Link {
    Up(MultiplexedConnection),
    Connecting,
    Down { retry_at: Instant },
}

#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    warned: Option<Instant>,
}

/// Counters in Redis.
pub(super) struct RedisCells {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    link: Mutex<Link>,
    degraded: AtomicBool,
    outage: Mutex<Outage>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RedisCells {
    /// Parses the URL and tries one connection; an unreachable Redis is retried later.
    pub(super) async fn connect(options: RedisOptions<'_>) -> Result<Self, RedisSetupError> {
        // The parse error never echoes the URL (it may hold a password).
        let client = redis::Client::open(options.url)
            .map_err(|e| RedisSetupError(format!("{:?}", e.kind())))?;
        let cells = Self {
            client,
            prefix: options.key_prefix.to_owned(),
            timeout: options.timeout,
            script: redis::Script::new(GCRA),
            link: Mutex::new(Link::Connecting),
            degraded: AtomicBool::new(false),
            outage: Mutex::new(Outage::default()),
        };
        let first = cells.open(FIRST_CONNECT.max(options.timeout)).await;
        *lock(&cells.link) = match first {
            Ok(conn) => {
                tracing::info!("rate limits are shared through Redis");
                Link::Up(conn)
            }
            Err(reason) => {
                cells.failed(&reason);
                Link::Down {
                    retry_at: Instant::now(),
                }
            }
        };
        Ok(cells)
    }

    async fn open(&self, within: Duration) -> Result<MultiplexedConnection, String> {
        match tokio::time::timeout(within, self.client.get_multiplexed_async_connection()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {} ms", within.as_millis())),
        }
    }

    /// Runs one step in Redis: `Some(answer)`, or `None` when Redis cannot answer now (the caller
    /// answers from its local counters).
    pub(super) async fn run(
        self: &Arc<Self>,
        limit: &str,
        subject: &str,
        quota: Quota,
        mode: Mode,
    ) -> Option<Option<Duration>> {
        let mut conn = self.connection()?;
        let key = format!("{}{limit}:{subject}", self.prefix);
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.key(key);
        invocation
            .arg(micros(quota.interval()))
            .arg(u64::try_from(quota.tolerance().as_micros()).unwrap_or(u64::MAX))
            .arg(mode.as_str());
        let call = async {
            let wait: i64 = invocation.invoke_async(&mut conn).await?;
            Ok::<i64, redis::RedisError>(wait)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(wait)) => {
                self.recovered();
                Some(
                    u64::try_from(wait)
                        .ok()
                        .filter(|w| *w > 0)
                        .map(Duration::from_micros),
                )
            }
            Ok(Err(e)) => {
                self.lost(&e.to_string());
                None
            }
            Err(_) => {
                self.lost(&format!("no reply within {} ms", self.timeout.as_millis()));
                None
            }
        }
    }

    /// The live connection, if any; starts a reconnection in the background when one is due.
    fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        let mut link = lock(&self.link);
        match &*link {
            Link::Up(conn) => Some(conn.clone()),
            Link::Connecting => None,
            Link::Down { retry_at } if Instant::now() < *retry_at => None,
            Link::Down { .. } => {
                *link = Link::Connecting;
                let cells = Arc::clone(self);
                tokio::spawn(async move {
                    let opened = cells
                        .open(cells.timeout.max(Duration::from_millis(200)))
                        .await;
                    let next = match opened {
                        Ok(conn) => Link::Up(conn),
                        Err(reason) => {
                            cells.failed(&reason);
                            Link::Down {
                                retry_at: Instant::now() + RETRY,
                            }
                        }
                    };
                    *lock(&cells.link) = next;
                });
                None
            }
        }
    }

    /// A request on the live connection failed: drop it and leave Redis alone for a while.
    fn lost(&self, reason: &str) {
        *lock(&self.link) = Link::Down {
            retry_at: Instant::now() + RETRY,
        };
        self.failed(reason);
    }

    /// Counts an outage; warns when it starts and once a minute while it lasts.
    fn failed(&self, reason: &str) {
        self.degraded.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let mut outage = lock(&self.outage);
        let since = *outage.since.get_or_insert(now);
        if outage
            .warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            outage.warned = Some(now);
            tracing::warn!(
                reason,
                down_for_secs = now.duration_since(since).as_secs(),
                "Redis is unreachable: rate limits are counted by each instance on its own until it is back"
            );
        }
    }

    fn recovered(&self) {
        if !self.degraded.load(Ordering::Relaxed) {
            return;
        }
        self.degraded.store(false, Ordering::Relaxed);
        let mut outage = lock(&self.outage);
        if let Some(since) = outage.since.take() {
            tracing::info!(
                down_for_secs = since.elapsed().as_secs(),
                "Redis is reachable again: rate limits are shared again"
            );
        }
        outage.warned = None;
    }
}
