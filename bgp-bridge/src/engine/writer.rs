//! Where the engine's kernel work runs: in the engine's own thread (tests,
//! with a paused clock), or on a writer thread of its own, so that the
//! engine prepares the next batch in the RIB while the kernel takes this
//! one.
//!
//! Batches go to the writer in order and come back in order, each as a
//! [`Done`] with one result per operation. Other calls on the FIB (dumps,
//! underlay lookups) queue behind the batches already sent and wait for
//! their answer.

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc;

use ipnet::IpNet;

use super::Fib;
use crate::route::FibOp;

/// A batch the kernel has taken: the operations as applied (a replace may
/// have become an exclusive add, see [`Guarded`]) and a result for each.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) ops: Vec<FibOp>,
    pub(super) results: Vec<Result<(), String>>,
    pub(super) seconds: f64,
}

type Call<F> = Box<dyn FnOnce(&mut F) + Send>;

pub(super) enum Job<F> {
    Apply(Vec<FibOp>),
    Call(Call<F>),
}

pub(super) enum Writer<F: Fib> {
    Here {
        fib: Guarded<F>,
        done: VecDeque<Done>,
    },
    Thread {
        jobs: mpsc::Sender<Job<F>>,
        done: mpsc::Receiver<Done>,
    },
}

impl<F: Fib> Writer<F> {
    /// Every batch is applied when it is submitted.
    pub(super) fn here(fib: F) -> Self {
        Writer::Here {
            fib: Guarded::new(fib),
            done: VecDeque::new(),
        }
    }

    /// A thread named `wgd-fib` owns `fib`; after each batch it sends on
    /// `wake` so the engine collects the result.
    pub(super) fn thread(
        fib: F,
        wake: tokio::sync::mpsc::UnboundedSender<()>,
    ) -> std::io::Result<Self> {
        let (jobs, incoming) = mpsc::channel::<Job<F>>();
        let (finished, done) = mpsc::channel();
        let mut fib = Guarded::new(fib);
        std::thread::Builder::new()
            .name("wgd-fib".into())
            .spawn(move || {
                // Ends when the engine drops its end.
                for job in incoming {
                    match job {
                        Job::Apply(ops) => {
                            if finished.send(fib.apply(ops)).is_err() {
                                return;
                            }
                            let _ = wake.send(());
                        }
                        Job::Call(call) => call(&mut fib.fib),
                    }
                }
            })?;
        Ok(Writer::Thread { jobs, done })
    }

    /// Hands a batch to the kernel; its [`Done`] comes from
    /// [`Writer::ready`] or [`Writer::wait`], after those of the batches
    /// submitted before it.
    pub(super) fn submit(&mut self, ops: Vec<FibOp>) {
        match self {
            Writer::Here { fib, done } => done.push_back(fib.apply(ops)),
            Writer::Thread { jobs, .. } => {
                jobs.send(Job::Apply(ops)).expect(WRITER_GONE);
            }
        }
    }

    /// The next finished batch, if one is.
    pub(super) fn ready(&mut self) -> Option<Done> {
        match self {
            Writer::Here { done, .. } => done.pop_front(),
            Writer::Thread { done, .. } => done.try_recv().ok(),
        }
    }

    /// The next finished batch, waiting for it; only when one was
    /// submitted and not yet taken.
    pub(super) fn wait(&mut self) -> Done {
        match self {
            Writer::Here { done, .. } => done.pop_front().expect("a batch was submitted"),
            Writer::Thread { done, .. } => done.recv().expect(WRITER_GONE),
        }
    }

    /// Runs `call` on the FIB after the batches already submitted, and
    /// returns what it returned.
    pub(super) fn call<R: Send + 'static>(
        &mut self,
        call: impl FnOnce(&mut F) -> R + Send + 'static,
    ) -> R {
        match self {
            Writer::Here { fib, .. } => call(&mut fib.fib),
            Writer::Thread { jobs, .. } => {
                let (answer, answered) = mpsc::channel();
                let job = Job::Call(Box::new(move |fib: &mut F| {
                    let _ = answer.send(call(fib));
                }));
                jobs.send(job).expect(WRITER_GONE);
                answered.recv().expect(WRITER_GONE)
            }
        }
    }
}

const WRITER_GONE: &str = "the FIB writer thread stopped";

/// The FIB, remembering each prefix whose exclusive add the kernel refused
/// (someone else's route is there) until an operation on it succeeds. A
/// replace of such a prefix is sent as an exclusive add: the engine may
/// have prepared it before it heard of the refusal, believing the route
/// its own, and a replace would overwrite the other route.
pub(super) struct Guarded<F> {
    fib: F,
    refused: HashSet<IpNet>,
}

impl<F: Fib> Guarded<F> {
    pub(super) fn new(fib: F) -> Self {
        Guarded {
            fib,
            refused: HashSet::new(),
        }
    }

    pub(super) fn apply(&mut self, mut ops: Vec<FibOp>) -> Done {
        if !self.refused.is_empty() {
            for op in &mut ops {
                if let FibOp::Replace {
                    prefix,
                    nexthops,
                    source,
                } = op
                    && self.refused.contains(prefix)
                {
                    *op = FibOp::Add {
                        prefix: *prefix,
                        nexthops: std::mem::take(nexthops),
                        source: *source,
                    };
                }
            }
        }
        let started = std::time::Instant::now();
        let results = self.fib.apply(&ops);
        let seconds = started.elapsed().as_secs_f64();
        for (op, result) in ops.iter().zip(&results) {
            match (op, result) {
                (FibOp::Add { prefix, .. }, Err(_)) => {
                    self.refused.insert(*prefix);
                }
                (_, Ok(())) if !self.refused.is_empty() => {
                    self.refused.remove(&op.prefix());
                }
                _ => {}
            }
        }
        Done {
            ops,
            results,
            seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::memory::MemoryFib;
    use super::*;
    use crate::route::FibNexthop;

    fn nexthops(ifindex: u32) -> Vec<FibNexthop> {
        vec![FibNexthop {
            tunnel: String::new(),
            ifindex,
            gateway: None,
            peer: None,
        }]
    }

    #[test]
    fn a_replace_prepared_before_a_refusal_was_heard_of_is_sent_as_an_exclusive_add() {
        let fib = MemoryFib::default();
        let prefix: IpNet = "192.0.2.0/24".parse().unwrap();
        fib.routes.lock().unwrap().insert(prefix, nexthops(99));
        let (wake, mut woken) = tokio::sync::mpsc::unbounded_channel();
        let mut writer = Writer::thread(fib.clone(), wake).unwrap();
        writer.submit(vec![FibOp::Add {
            prefix,
            nexthops: nexthops(7),
            source: None,
        }]);
        // Prepared while the add was on its way.
        writer.submit(vec![FibOp::Replace {
            prefix,
            nexthops: nexthops(8),
            source: None,
        }]);
        let first = writer.wait();
        assert!(first.results[0].is_err(), "{first:?}");
        let second = writer.wait();
        assert!(matches!(second.ops[..], [FibOp::Add { .. }]), "{second:?}");
        assert!(second.results[0].is_err(), "{second:?}");
        assert_eq!(fib.routes.lock().unwrap()[&prefix], nexthops(99));
        assert!(woken.try_recv().is_ok());
        // Once the other route is gone and ours is in, replaces are
        // replaces again.
        fib.routes.lock().unwrap().clear();
        writer.submit(vec![FibOp::Add {
            prefix,
            nexthops: nexthops(7),
            source: None,
        }]);
        writer.submit(vec![FibOp::Replace {
            prefix,
            nexthops: nexthops(8),
            source: None,
        }]);
        assert!(writer.wait().results[0].is_ok());
        let replaced = writer.wait();
        assert!(matches!(replaced.ops[..], [FibOp::Replace { .. }]));
        assert_eq!(fib.routes.lock().unwrap()[&prefix], nexthops(8));
    }

    #[test]
    fn calls_wait_for_the_batches_sent_before_them() {
        let fib = MemoryFib::default();
        let (wake, _woken) = tokio::sync::mpsc::unbounded_channel();
        let mut writer = Writer::thread(fib, wake).unwrap();
        let ops: Vec<FibOp> = (0..=255u8)
            .map(|i| FibOp::Add {
                prefix: IpNet::from(std::net::IpAddr::from([192, 0, 2, i])),
                nexthops: nexthops(7),
                source: None,
            })
            .collect();
        writer.submit(ops);
        let seen = writer.call(|fib| fib.dump_ours().unwrap().len());
        assert_eq!(seen, 256);
        assert_eq!(writer.wait().results.len(), 256);
        assert!(writer.ready().is_none());
    }
}
