//! The conformance suite: every behaviour of the `EventLog` contract, run
//! against both backends on real storage (a real nats-server, a real sled dir).

#![cfg(feature = "test-harness")]

mod backend_specific;
mod cases;
mod copy;
mod fold;
mod support;

macro_rules! on_both_backends {
    ($($name:ident => $case:expr;)*) => {
        mod sled_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = support::sled();
                    ($case)(h.log.clone()).await;
                }
            )*
        }
        mod jetstream_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = support::jetstream().await;
                    ($case)(h.log.clone()).await;
                }
            )*
        }
    };
}

on_both_backends! {
    racing_writers_exactly_one_wins => |log| cases::racing_writers(log, 1000, 3);
    idempotent_retry_returns_original => cases::idempotent_retry;
    per_project_and_global_order => cases::ordering;
    project_reads_in_runs_across_chunks => cases::project_runs;
    stale_expected_position_conflicts => cases::conflicts;
    invalid_input_writes_nothing => cases::invalid_input;
    tail_delivers_each_event_once_in_order => cases::tail_live;
}
