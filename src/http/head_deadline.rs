//! How long a client may take to send a request head (`HEADER_READ_TIMEOUT_SECS`), which is
//! also how long an idle kept-alive connection stays open.
//!
//! hyper's own header-read timeout adds a timer to tokio's timer wheel for every request and
//! removes it when the head has arrived: an allocation, two visits to the wheel and a clock
//! read per request, about 7% of the instructions of a `GET /users/me/` (callgrind). Here each
//! connection has one timer, armed at its first wait and polled by every read that has to
//! wait; only when it fires is it checked against the current wait (which began when the
//! last answer was made and written, see `framing::FramingWatch::waiting_since`) and moved to
//! that wait's deadline. While an answer is still being written no head is awaited: a client
//! downloading slowly is never cut off.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// One connection's timer for its request heads.
pub struct HeadDeadline {
    timeout: Duration,
    /// Armed for the current wait's deadline or an earlier one (made at the first read that
    /// has to wait).
    timer: Option<Pin<Box<Sleep>>>,
}

impl HeadDeadline {
    /// A connection that allows `timeout` for each head.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, timer: None }
    }

    /// Called whenever a read of the connection has to wait, with since when the connection
    /// has been waiting for a head (`None` while a request is being answered): true once that
    /// wait has lasted `timeout`. Otherwise the task is woken when it may have, so that the
    /// next read asks again (a wait that starts while the client sends nothing, after an
    /// answer, is noticed then).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>, waiting_since: Option<Instant>) -> bool {
        // A timeout too large to add is as good as none.
        let timeout = self.timeout;
        let deadline = |since: Instant| since.checked_add(timeout);
        let timer = match &mut self.timer {
            Some(timer) => timer,
            None => match deadline(waiting_since.unwrap_or_else(Instant::now)) {
                Some(first) => self.timer.insert(Box::pin(tokio::time::sleep_until(first))),
                None => return false,
            },
        };
        while timer.as_mut().poll(cx).is_ready() {
            let next = match waiting_since {
                // A request is being answered: look again a timeout from now.
                None => deadline(Instant::now()),
                Some(since) => {
                    let due = deadline(since);
                    // Deadlines only move later, so a timer that fired at this one means time
                    // is up.
                    if due.is_some_and(|due| timer.deadline() >= due) {
                        return true;
                    }
                    due
                }
            };
            let Some(next) = next else { return false };
            timer.as_mut().reset(next);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn expired(deadline: &mut HeadDeadline, since: Option<Instant>) -> bool {
        deadline.poll_expired(&mut Context::from_waker(Waker::noop()), since)
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_expires_after_the_timeout_and_not_before() {
        let mut deadline = HeadDeadline::new(Duration::from_secs(5));
        let start = Instant::now();
        assert!(!expired(&mut deadline, Some(start)));
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(!expired(&mut deadline, Some(start)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(expired(&mut deadline, Some(start)));
    }

    #[tokio::test(start_paused = true)]
    async fn each_wait_gets_the_whole_timeout_from_its_own_start() {
        let mut deadline = HeadDeadline::new(Duration::from_secs(5));
        assert!(!expired(&mut deadline, Some(Instant::now())));
        // A request arrives at 1 s and is answered at 4 s; the next wait starts then and its
        // timer, still armed for 5 s, fires and is moved to 9 s.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!expired(&mut deadline, None));
        tokio::time::advance(Duration::from_secs(3)).await;
        let answered = Instant::now();
        assert!(!expired(&mut deadline, Some(answered)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            !expired(&mut deadline, Some(answered)),
            "6 s: the first deadline has passed, this one has not"
        );
        tokio::time::advance(Duration::from_millis(2_999)).await;
        assert!(!expired(&mut deadline, Some(answered)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(expired(&mut deadline, Some(answered)), "9 s: 5 s after the wait began");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_being_answered_is_never_cut_off() {
        let mut deadline = HeadDeadline::new(Duration::from_secs(1));
        assert!(!expired(&mut deadline, Some(Instant::now())));
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(!expired(&mut deadline, None));
        }
        let answered = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(expired(&mut deadline, Some(answered)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_too_large_to_add_never_expires() {
        let mut deadline = HeadDeadline::new(Duration::MAX);
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(!expired(&mut deadline, Some(start)));
    }
}
