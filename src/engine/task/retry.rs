//! The coordinator's retry policy: pure, so every path is unit-tested without ffmpeg.

use std::time::Duration;

use super::TaskError;
use crate::engine::hooks::{ErrorAction, ErrorReply};

/// However often on_error says retry, a task stops after this many attempts.
pub const MAX_SCRIPTED_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Retry {
        after: Duration,
    },
    Fail,
    /// The hook chose to skip the whole job.
    Skip(String),
}

/// What to do after `attempt` (1-based) failed with `error`, given on_error's reply
/// (None: no hook, or the hook left it to spool).
pub fn decide(
    policy: RetryPolicy,
    attempt: u32,
    error: &TaskError,
    reply: Option<&ErrorReply>,
    label: &str,
) -> Next {
    if matches!(error, TaskError::Cancelled) {
        return Next::Fail;
    }
    match reply {
        Some(r) if r.action == ErrorAction::Skip => {
            Next::Skip(r.reason.clone().unwrap_or_else(|| {
                format!("on_error skipped the job after {label} failed: {error}")
            }))
        }
        Some(r) if r.action == ErrorAction::Fail => Next::Fail,
        // A script may retry past max_attempts, but not forever.
        Some(_) if attempt >= MAX_SCRIPTED_ATTEMPTS => Next::Fail,
        Some(r) => Next::Retry {
            after: Duration::from_secs_f64(r.delay_seconds.unwrap_or(0.0)),
        },
        None if error.is_fatal() || attempt >= policy.max_attempts => Next::Fail,
        None => Next::Retry {
            after: Duration::from_secs_f64(policy.backoff_seconds * 2f64.powi(attempt as i32 - 1)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::run::RunError;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        backoff_seconds: 2.0,
    };

    fn flaky() -> TaskError {
        TaskError::Run(RunError::Failed {
            code: "code 1".into(),
            message: "x".into(),
            stderr_tail: vec![],
        })
    }

    fn fatal() -> TaskError {
        TaskError::Run(RunError::Fatal {
            message: "Unknown encoder".into(),
            stderr_tail: vec![],
        })
    }

    fn reply(action: ErrorAction, delay: Option<f64>) -> ErrorReply {
        ErrorReply {
            action,
            delay_seconds: delay,
            reason: None,
        }
    }

    #[test]
    fn retries_with_doubling_backoff_up_to_the_limit() {
        let secs = |n| match decide(POLICY, n, &flaky(), None, "t") {
            Next::Retry { after } => Some(after.as_secs_f64()),
            _ => None,
        };
        assert_eq!(secs(1), Some(2.0));
        assert_eq!(secs(2), Some(4.0));
        assert_eq!(secs(3), None, "third failure of three is final");
    }

    #[test]
    fn fatal_errors_and_cancellation_are_not_retried_without_a_hook() {
        assert_eq!(decide(POLICY, 1, &fatal(), None, "t"), Next::Fail);
        assert_eq!(
            decide(POLICY, 1, &TaskError::Cancelled, None, "t"),
            Next::Fail
        );
        // A verification failure is its own class, and retried.
        let verify = TaskError::Verify {
            rung: "p".into(),
            source: crate::media::verify::VerifyError::Empty,
        };
        assert!(matches!(
            decide(POLICY, 1, &verify, None, "t"),
            Next::Retry { .. }
        ));
        assert_eq!(verify.class(), "verify");
    }

    #[test]
    fn the_hook_decides_retry_fail_or_skip_within_a_hard_cap() {
        let retry = reply(ErrorAction::Retry, Some(0.5));
        assert_eq!(
            decide(POLICY, 7, &fatal(), Some(&retry), "t"),
            Next::Retry {
                after: Duration::from_millis(500)
            },
            "the hook may retry past max_attempts, even a fatal error"
        );
        assert_eq!(
            decide(POLICY, MAX_SCRIPTED_ATTEMPTS, &flaky(), Some(&retry), "t"),
            Next::Fail
        );
        assert_eq!(
            decide(
                POLICY,
                1,
                &flaky(),
                Some(&reply(ErrorAction::Fail, None)),
                "t"
            ),
            Next::Fail
        );
        let skip = decide(
            POLICY,
            1,
            &flaky(),
            Some(&reply(ErrorAction::Skip, None)),
            "chunk 3",
        );
        assert!(
            matches!(skip, Next::Skip(ref r) if r.contains("chunk 3")),
            "{skip:?}"
        );
        // Cancellation beats any hook.
        assert_eq!(
            decide(POLICY, 1, &TaskError::Cancelled, Some(&retry), "t"),
            Next::Fail
        );
    }
}
