//! A client-side budget of calls per minute per API, so a large sync stays under WeCom's limit
//! (10,000 calls a minute per API) instead of running into 45009 and a one-minute block.
//!
//! A sliding window: at most `per_minute` calls to one endpoint in any 60 seconds. Memory is
//! bounded by `per_minute` instants per endpoint.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::api::Endpoint;

const WINDOW: Duration = Duration::from_secs(60);

pub struct RateLimiter {
    per_minute: usize,
    calls: Mutex<HashMap<Endpoint, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute: usize::try_from(per_minute.max(1)).unwrap_or(usize::MAX),
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until one more call to `endpoint` fits in the window, and records it.
    pub async fn acquire(&self, endpoint: Endpoint) {
        while let Err(wait_until) = self.try_acquire(endpoint).await {
            tokio::time::sleep_until(wait_until).await;
        }
    }

    /// Records one more call to `endpoint` if it fits in the window now; else says when it
    /// would.
    pub async fn try_acquire(&self, endpoint: Endpoint) -> Result<(), Instant> {
        let mut calls = self.calls.lock().await;
        let recent = calls.entry(endpoint).or_default();
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() < self.per_minute {
            recent.push_back(now);
            return Ok(());
        }
        Err(recent[0] + WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_window_to_move() {
        let limiter = RateLimiter::new(2);
        let start = Instant::now();
        limiter.acquire(Endpoint::UserList).await;
        limiter.acquire(Endpoint::UserList).await;
        limiter.acquire(Endpoint::DepartmentList).await;
        assert!(start.elapsed() < Duration::from_secs(1));
        limiter.acquire(Endpoint::UserList).await;
        assert!(start.elapsed() >= WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn trying_never_waits() {
        let limiter = RateLimiter::new(1);
        let start = Instant::now();
        assert!(limiter.try_acquire(Endpoint::GetUserInfo).await.is_ok());
        assert_eq!(
            limiter.try_acquire(Endpoint::GetUserInfo).await,
            Err(start + WINDOW)
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
