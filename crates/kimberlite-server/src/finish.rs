//! A request's work run in its own connection's task, finished in a task of its own only if
//! that task lets go of it first ([`Finished`]): a client that goes away, or a request
//! timeout, cannot stop a request that has started from being recorded (`access_log.rs`),
//! without a spawned task and its wake-ups on every request's path (docs/PERFORMANCE.md,
//! "Design decisions").

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

type Work<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `work`, polled where it is awaited; dropped before it ends, the rest of it is spawned on
/// the current runtime. Answers `Err` with the panic's message when the work panicked.
pub(crate) struct Finished<T: Send + 'static> {
    work: Option<Work<T>>,
}

impl<T: Send + 'static> Finished<T> {
    pub(crate) fn new(work: impl Future<Output = T> + Send + 'static) -> Self {
        Self {
            work: Some(Box::pin(work)),
        }
    }
}

impl<T: Send + 'static> Future for Finished<T> {
    type Output = Result<T, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(work) = self.work.as_mut() else {
            // Polled again after its answer: it has nothing more to give.
            return Poll::Pending;
        };
        let polled = match catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(answer)) => Ok(answer),
            Err(panic) => Err(panic_message(panic.as_ref())),
        };
        self.work = None;
        Poll::Ready(polled)
    }
}

impl<T: Send + 'static> Drop for Finished<T> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else {
            return;
        };
        // Outside a runtime (or while it shuts down, when its tasks are dropped anyway) the
        // work is dropped, as a task of a runtime that stops would be.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn(work));
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::Finished;

    /// Work whose awaiting future is dropped halfway still runs to its end.
    #[tokio::test]
    async fn work_dropped_halfway_is_finished_in_a_task_of_its_own() {
        let (go, wait) = oneshot::channel::<()>();
        let (ended, end) = oneshot::channel();
        let started = Arc::new(AtomicBool::new(false));
        let work = Finished::new({
            let started = Arc::clone(&started);
            async move {
                started.store(true, Ordering::SeqCst);
                let _ = wait.await;
                let _ = ended.send("finished");
            }
        });
        let cut = tokio::time::timeout(Duration::from_millis(20), work).await;
        assert!(cut.is_err(), "the work waits for its go");
        assert!(
            started.load(Ordering::SeqCst),
            "polled where it was awaited"
        );
        go.send(())
            .expect("the work is alive after its future was dropped");
        let end = tokio::time::timeout(Duration::from_secs(5), end).await;
        assert_eq!(end.expect("in time").expect("sent"), "finished");
    }

    #[tokio::test]
    async fn work_that_ends_answers_and_a_panic_answers_its_message() {
        assert_eq!(Finished::new(async { 7 }).await, Ok(7));
        let panicked = Finished::<u8>::new(async { panic!("broken") }).await;
        assert_eq!(panicked, Err("broken".to_owned()));
    }
}
