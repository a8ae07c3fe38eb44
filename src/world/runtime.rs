//! The madsim runtime of a run: the supervisor future, one node task per server, and the
//! futures they wait on. All state stays in `Shared`; the mutex is never held across an
//! `.await`.

use super::*;

/// Runs a plan to its end and returns the trace. Deterministic: the same plan and seed give
/// the same trace bytes.
pub fn run(plan: &Plan) -> Result<RunOutput, WorldError> {
    run_inner(plan, None, None, SPOOL_HOLD_MAX)
}

/// [`run`], handing `progress` where the run has got to at every supervisor step. The
/// trace is the same as [`run`]'s.
pub fn run_with_progress(plan: &Plan, progress: ProgressSink) -> Result<RunOutput, WorldError> {
    run_inner(plan, Some(progress), None, SPOOL_HOLD_MAX)
}

/// Runs `plan` writing every record's line to `spool` as it goes (held back, at most
/// [`super::SPOOL_HOLD_MAX`] bytes, until the header is named), so that the trace never
/// waits whole in memory: the output's trace is a kept one ([`Trace::kept`]), the
/// network records summed and the others kept with their lines. `spool` receives the
/// header the run expects to end with, then exactly the record lines of the whole trace,
/// in order ([`super::RecordSink`]); the trace file is the output's header and those lines
/// ([`crate::trace::StreamedHash`], or [`crate::trace::write_spooled`] when the header
/// turned out otherwise).
pub fn run_spooled(
    plan: &Plan,
    progress: Option<ProgressSink>,
    spool: SpoolSink,
) -> Result<RunOutput, WorldError> {
    run_inner(plan, progress, Some(spool), SPOOL_HOLD_MAX)
}

/// [`run_spooled`] holding back at most `hold_max` bytes of lines while the header waits,
/// for the tests of what happens past [`SPOOL_HOLD_MAX`].
#[cfg(test)]
pub(super) fn run_spooled_holding(
    plan: &Plan,
    spool: SpoolSink,
    hold_max: usize,
) -> Result<RunOutput, WorldError> {
    run_inner(plan, None, Some(spool), hold_max)
}

fn run_inner(
    plan: &Plan,
    progress: Option<ProgressSink>,
    spool: Option<SpoolSink>,
    hold_max: usize,
) -> Result<RunOutput, WorldError> {
    let schedule: Vec<String> = plan.faults.nodes().iter().map(|n| n.as_str().to_owned()).collect();
    if schedule != plan.servers {
        return Err(WorldError::NodesMismatch { schedule, servers: plan.servers.clone() });
    }
    // This run's checks verify the signatures its servers make; the thread's last run's
    // are of no use to it, and a sweep's worker would keep them all.
    crate::matrix::crypto::forget_signatures_made();
    let root = Prng::from_seed(plan.seed);
    let network = Network::new(plan.network.clone(), plan.faults.clone(), root.fork(streams::NET))?;
    let mut world = Shared::new(plan, network, &root);
    world.progress = progress;
    world.spool = spool.map(|sink| Spool {
        sink,
        keeper: trace::Keeper::new(plan.end_ms, plan.faults.faults()),
        lines: Vec::with_capacity(SPOOL_CHUNK + (1 << 12)),
        writer: trace::LineWriter::new(),
        header_sent: false,
        names: super::HeaderNames::of(plan),
        hold_max,
    });
    let shared = WorldCell(Arc::new(Mutex::new(Some(world))));

    let runtime =
        madsim::runtime::Runtime::with_seed_and_config(plan.seed, madsim::Config::default());
    let mut handles = Vec::new();
    for (index, name) in plan.servers.iter().enumerate() {
        let shared = shared.clone();
        let handle = runtime
            .create_node()
            .name(name.clone())
            .init(move || node_main(shared.clone(), index))
            .build();
        handles.push(handle.id());
    }
    let supervisor_shared = shared.clone();
    // `block_on` returns once the supervisor is done and every task ready at that moment
    // has run: work due at the run's last instant (a delivery, a step at `end_ms`) is
    // handled and recorded.
    runtime.block_on(supervise(supervisor_shared, handles.clone()));
    // Then every node is killed, so that madsim drops the node tasks (they would otherwise
    // outlive the runtime, with the timers they wait on): a killed task is dropped when
    // madsim next takes it, which this second `block_on` lets it do. Nothing runs or is
    // recorded any more.
    runtime.block_on(async {
        let handle = madsim::runtime::Handle::current();
        for &node in &handles {
            handle.kill(node);
        }
    });
    drop(runtime);
    // madsim keeps its nodes' init closures (and their clones of `shared`) past the
    // runtime's end, so the world is taken out of the cell and freed here.
    let mut world = shared.take();
    let output = world.finish();
    drop(world);
    Ok(output)
}

/// The world as the madsim tasks share it. A dropped madsim runtime does not free the
/// tasks it still holds, nor its nodes' init closures, which hold clones of this: so that
/// a run never leaves its network, plan and records behind (175 KB per seed of a
/// two-server scenario, which a sweep of a million seeds would keep), the world is taken
/// out at the end ([`WorldCell::take`]), after every node was killed so that madsim drops
/// their tasks too ([`run_inner`]; `tests/memory.rs` checks that a run leaves nothing).
#[derive(Clone)]
pub(super) struct WorldCell(Arc<Mutex<Option<Shared>>>);

impl WorldCell {
    /// The world, locked. The mutex is never held across an `.await`.
    fn lock(&self) -> WorldGuard<'_> {
        WorldGuard(self.0.lock().expect("no task panicked holding the world lock"))
    }

    /// The world, out of the cell: after the run, when no task will run again.
    fn take(&self) -> Shared {
        self.0
            .lock()
            .expect("no task panicked holding the world lock")
            .take()
            .expect("the world is taken once")
    }
}

/// A locked world.
struct WorldGuard<'a>(std::sync::MutexGuard<'a, Option<Shared>>);

impl std::ops::Deref for WorldGuard<'_> {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        self.0.as_ref().expect("the world is in its cell while the run goes")
    }
}

impl std::ops::DerefMut for WorldGuard<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        self.0.as_mut().expect("the world is in its cell while the run goes")
    }
}

/// The runtime's clock, as each task holds it: `TimeHandle::current()` clones two shared
/// pointers and drops them again, which at every wait of every task was 1.8% of a
/// 100-server run in atomic reference counts.
struct Clock(madsim::time::TimeHandle);

impl Clock {
    fn current() -> Clock {
        Clock(madsim::time::TimeHandle::current())
    }

    /// Virtual milliseconds since the run started.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).expect("virtual time fits u64")
    }

    /// Sleeps until virtual millisecond `at` (at least until the next millisecond).
    fn sleep_until_ms(&self, at: u64) -> madsim::time::Sleep {
        let now = self.0.elapsed();
        let target = std::time::Duration::from_millis(at);
        self.0.sleep(target.saturating_sub(now))
    }
}

/// The init task of a server's madsim node: boot, then handle inputs as they come.
pub(super) async fn node_main(shared: WorldCell, node: usize) {
    let clock = Clock::current();
    {
        let mut world = shared.lock();
        let now = clock.now_ms();
        world.boot(node, now);
    }
    loop {
        let timer = {
            let mut world = shared.lock();
            let now = clock.now_ms();
            if let Some(inbox) = world.take_work(node, now) {
                world.process(node, inbox, now);
                continue;
            }
            world.slots[node].timer_at
        };
        let sleep = timer.map(|at| clock.sleep_until_ms(at.ms));
        NodeWait { shared: &shared, node, sleep }.await;
    }
}

/// Resolves when the node's mailbox has something or its timer fires.
///
/// madsim's `Sleep` is `Unpin`, so the waits hold it in place rather than boxed: a node
/// waits once per input it handles, and the box was an allocation each time.
struct NodeWait<'a> {
    shared: &'a WorldCell,
    node: usize,
    sleep: Option<madsim::time::Sleep>,
}

impl Future for NodeWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = self.sleep.as_mut() {
            if Pin::new(sleep).poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        let mut world = self.shared.lock();
        let slot = &mut world.slots[self.node];
        if !slot.mailbox.is_empty() {
            return Poll::Ready(());
        }
        keep_waker(&mut slot.waker, cx);
        Poll::Pending
    }
}

/// The supervisor: steps the network and the plan until the end.
pub(super) async fn supervise(shared: WorldCell, nodes: Vec<madsim::task::NodeId>) {
    let clock = Clock::current();
    loop {
        let next = {
            let mut world = shared.lock();
            let now = clock.now_ms();
            world.report_progress(now);
            match world.supervise_step(now, &nodes) {
                None => return,
                Some(next) => next,
            }
        };
        let now = clock.now_ms();
        let sleep = (next > now).then(|| clock.sleep_until_ms(next));
        SupervisorWait { shared: &shared, clock: &clock, sleep }.await;
    }
}

/// Resolves at the supervisor's next time, or earlier when a node has sent something.
struct SupervisorWait<'a> {
    shared: &'a WorldCell,
    clock: &'a Clock,
    sleep: Option<madsim::time::Sleep>,
}

impl Future for SupervisorWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(sleep) = self.sleep.as_mut() else {
            // Due now: let the nodes run first, then look again.
            let world = self.shared.lock();
            if world.net_dirty {
                return Poll::Ready(());
            }
            drop(world);
            self.sleep = Some(self.clock.sleep_until_ms(self.clock.now_ms() + 1));
            return self.poll(cx);
        };
        if Pin::new(sleep).poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut world = self.shared.lock();
        if world.net_dirty {
            return Poll::Ready(());
        }
        keep_waker(&mut world.supervisor_waker, cx);
        Poll::Pending
    }
}

/// Keeps the waker of `cx` in `kept`, unless `kept` already wakes the same task: a waker's
/// clone and drop are atomic reference counts, and a task waits many times between wakes.
fn keep_waker(kept: &mut Option<std::task::Waker>, cx: &Context<'_>) {
    if !kept.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
        *kept = Some(cx.waker().clone());
    }
}
