//! Two sessions talking through a simulated clock and a link that can be
//! cut, and single sessions fed packets by hand.

use super::*;

const MS: Duration = Duration::from_millis(1);

fn timers(tx_ms: u32, rx_ms: u32, multiplier: u8) -> Timers {
    Timers::new(MS * tx_ms, MS * rx_ms, multiplier).unwrap()
}

fn config(discriminator: u32, timers: Timers) -> SessionConfig {
    SessionConfig {
        timers,
        local_discriminator: discriminator,
        control_plane_independent: false,
        seed: u64::from(discriminator),
    }
}

/// Two sessions and the link between them; packets arrive at once, with
/// TTL 255, unless the link is cut.
struct Pair {
    start: Instant,
    now: Instant,
    sides: [Session; 2],
    cut: bool,
    /// (milliseconds since start, side, transition)
    transitions: Vec<(u128, usize, Transition)>,
    /// Packets each side sent.
    sent: [Vec<(Instant, ControlPacket)>; 2],
}

impl Pair {
    fn new(a: Timers, b: Timers) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            sides: [
                Session::new(config(0x1111, a), start),
                Session::new(config(0x2222, b), start),
            ],
            cut: false,
            transitions: Vec::new(),
            sent: [Vec::new(), Vec::new()],
        }
    }

    fn apply(&mut self, side: usize, actions: Vec<Action>) {
        let mut queue = vec![(side, actions)];
        while let Some((side, actions)) = queue.pop() {
            for action in actions {
                match action {
                    Action::Send(bytes) => {
                        self.sent[side].push((self.now, ControlPacket::decode(&bytes).unwrap()));
                        if !self.cut {
                            let other = 1 - side;
                            let input = Input::Received {
                                payload: &bytes,
                                ttl: 255,
                            };
                            let answer = self.sides[other].handle(self.now, input);
                            queue.push((other, answer));
                        }
                    }
                    Action::Transition(transition) => {
                        let at = (self.now - self.start).as_millis();
                        self.transitions.push((at, side, transition));
                    }
                    Action::Discard(discard) => panic!("side {side} discarded: {discard}"),
                }
            }
        }
    }

    /// Runs the clock forward to `until`, deadline by deadline.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next = self.sides[0]
                .next_deadline()
                .min(self.sides[1].next_deadline());
            if next > until {
                self.now = until;
                return;
            }
            self.now = next.max(self.now);
            for side in 0..2 {
                if self.sides[side].next_deadline() <= self.now {
                    let actions = self.sides[side].handle(self.now, Input::Tick);
                    self.apply(side, actions);
                }
            }
        }
    }

    fn run_for(&mut self, duration: Duration) {
        self.run_until(self.now + duration);
    }

    fn states(&self) -> [State; 2] {
        [self.sides[0].state(), self.sides[1].state()]
    }
}

#[test]
fn two_sessions_come_up_and_negotiate_their_intervals() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(100, 200, 5));
    pair.run_for(3 * SLOW_TX);
    assert_eq!(pair.states(), [State::Up, State::Up]);
    // Down -> Init -> Up on one side, Down -> Up on the other.
    let first: Vec<_> = pair
        .transitions
        .iter()
        .filter(|t| t.1 == 0)
        .map(|t| t.2.to)
        .collect();
    let second: Vec<_> = pair
        .transitions
        .iter()
        .filter(|t| t.1 == 1)
        .map(|t| t.2.to)
        .collect();
    assert_eq!(first, [State::Up]);
    assert_eq!(second, [State::Init, State::Up]);
    // RFC 5880 6.8.2: A sends at max(300, 200) ms, B at max(100, 300).
    assert_eq!(pair.sides[0].transmit_interval(), 300 * MS);
    assert_eq!(pair.sides[1].transmit_interval(), 300 * MS);
    // 6.8.4: A waits B's multiplier (5) x max(A's rx 300, B's tx 100);
    // B waits 3 x max(200, 300).
    assert_eq!(pair.sides[0].detection_time(), Some(1500 * MS));
    assert_eq!(pair.sides[1].detection_time(), Some(900 * MS));
    // Both polls (leaving the slow rate) have been answered.
    assert!(!pair.sides[0].polling() && !pair.sides[1].polling());
}

#[test]
fn sends_slowly_until_up_and_with_jitter_after() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(300, 300, 3));
    pair.cut = true;
    pair.run_for(5 * SLOW_TX);
    // Alone: Down, one packet a second less the jitter, Desired Min TX 1 s.
    let lonely = &pair.sent[0];
    assert!(
        lonely
            .iter()
            .all(|(_, p)| p.state == State::Down && p.desired_min_tx == 1_000_000)
    );
    for gap in lonely.windows(2).map(|w| w[1].0 - w[0].0) {
        assert!(gap >= 750 * MS && gap <= SLOW_TX, "{gap:?}");
    }
    assert!((5..=7).contains(&lonely.len()), "{}", lonely.len());

    pair.cut = false;
    pair.run_for(3 * SLOW_TX);
    assert_eq!(pair.states(), [State::Up, State::Up]);
    let up_from = pair.now;
    pair.run_for(10 * SLOW_TX);
    let periodic: Vec<_> = pair.sent[0]
        .iter()
        .filter(|(at, p)| *at >= up_from && !p.final_)
        .collect();
    let gaps: Vec<_> = periodic.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= 225 * MS && *gap <= 300 * MS),
        "{gaps:?}"
    );
    // Jitter: not every gap the same.
    assert!(gaps.iter().any(|gap| *gap != gaps[0]));
    assert!(periodic.iter().all(|(_, p)| p.desired_min_tx == 300_000));
}

#[test]
fn the_same_seed_sends_at_the_same_times() {
    let times = || {
        let mut pair = Pair::new(timers(50, 50, 3), timers(50, 50, 3));
        pair.run_for(10 * SLOW_TX);
        pair.sent[0]
            .iter()
            .map(|(at, _)| *at - pair.start)
            .collect::<Vec<_>>()
    };
    assert_eq!(times(), times());
}

#[test]
fn a_multiplier_of_one_sends_at_most_90_percent_of_the_interval() {
    let mut pair = Pair::new(timers(100, 100, 1), timers(100, 100, 3));
    pair.run_for(3 * SLOW_TX);
    let up_from = pair.now;
    pair.run_for(5 * SLOW_TX);
    let periodic: Vec<_> = pair.sent[0]
        .iter()
        .filter(|(at, p)| *at >= up_from && !p.final_)
        .map(|(at, _)| *at)
        .collect();
    for gap in periodic.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= 75 * MS && gap <= 90 * MS, "{gap:?}");
    }
}

#[test]
fn lost_packets_take_the_session_down_after_the_detection_time() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(300, 300, 3));
    pair.run_for(3 * SLOW_TX);
    assert_eq!(pair.states(), [State::Up, State::Up]);
    let cut_at = pair.now;
    pair.transitions.clear();
    pair.cut = true;
    pair.run_for(2 * SLOW_TX);
    assert_eq!(pair.states(), [State::Down, State::Down]);
    for side in 0..2 {
        let (at, _, transition) = pair.transitions.iter().find(|t| t.1 == side).unwrap();
        assert_eq!(transition.from, State::Up);
        assert_eq!(
            transition.diagnostic,
            Diagnostic::ControlDetectionTimeExpired
        );
        assert_eq!(transition.diagnostic.code(), 1);
        // Within the detection time (900 ms) of the cut, and not before
        // a packet could have been missed (at least 2 intervals).
        let after = *at - (cut_at - pair.start).as_millis();
        assert!(
            (450..=900).contains(&after),
            "side {side} down {after} ms after the cut"
        );
    }
    // The silent neighbor's discriminator is forgotten, the rate slow again.
    assert_eq!(pair.sides[0].remote_discriminator(), 0);
    assert_eq!(pair.sides[0].transmit_interval(), SLOW_TX);
    let last = pair.sent[0].last().unwrap().1;
    assert_eq!(
        (last.state, last.diagnostic.code(), last.your_discriminator),
        (State::Down, 1, 0)
    );

    // Mended: up again.
    pair.cut = false;
    pair.run_for(4 * SLOW_TX);
    assert_eq!(pair.states(), [State::Up, State::Up]);
}

#[test]
fn a_neighbor_going_down_takes_us_down_with_diagnostic_3() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(300, 300, 3));
    pair.run_for(3 * SLOW_TX);
    pair.transitions.clear();
    let actions = pair.sides[1].handle(pair.now, Input::AdminDown);
    pair.apply(1, actions);
    assert_eq!(pair.states(), [State::Down, State::AdminDown]);
    let diagnostics: Vec<_> = pair
        .transitions
        .iter()
        .map(|t| (t.1, t.2.diagnostic))
        .collect();
    assert_eq!(
        diagnostics,
        [
            (1, Diagnostic::AdministrativelyDown),
            (0, Diagnostic::NeighborSignaledSessionDown)
        ]
    );
    // The neighbor said it was shut on purpose (RFC 5882 3.2).
    assert_eq!(pair.transitions[1].2.remote_state, State::AdminDown);
    // It stays down while the neighbor is administratively down...
    pair.run_for(5 * SLOW_TX);
    assert_eq!(pair.states(), [State::Down, State::AdminDown]);
    // ...and comes back when it is enabled.
    let actions = pair.sides[1].handle(pair.now, Input::Enable);
    pair.apply(1, actions);
    pair.run_for(4 * SLOW_TX);
    assert_eq!(pair.states(), [State::Up, State::Up]);
}

#[test]
fn a_timer_change_while_up_runs_a_poll_sequence() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(300, 300, 3));
    pair.run_for(3 * SLOW_TX);
    assert!(!pair.sides[0].polling());
    let changed_at = pair.now;
    // Slower: the longer transmit interval waits for the Final; a longer
    // wait for the neighbor is safe at once.
    let actions = pair.sides[0].handle(pair.now, Input::Timers(timers(600, 500, 3)));
    pair.apply(0, actions);
    assert!(pair.sides[0].polling());
    assert_eq!(pair.sides[0].transmit_interval(), 300 * MS);
    assert_eq!(pair.sides[0].detection_time(), Some(1500 * MS));
    pair.run_for(SLOW_TX);
    assert!(!pair.sides[0].polling());
    assert_eq!(pair.sides[0].transmit_interval(), 600 * MS);
    assert_eq!(pair.sides[0].detection_time(), Some(1500 * MS));
    // The neighbor saw the new values: it detects with 3 x 600 ms.
    assert_eq!(pair.sides[1].detection_time(), Some(1800 * MS));
    // On the wire: Polls until the neighbor's Final, never both bits.
    let polls = pair.sent[0]
        .iter()
        .filter(|(at, p)| *at >= changed_at && p.poll)
        .count();
    let finals = pair.sent[1]
        .iter()
        .filter(|(at, p)| *at >= changed_at && p.final_)
        .count();
    assert!(polls >= 1 && finals >= 1, "{polls} polls, {finals} finals");
    for (_, packet) in pair.sent.iter().flatten() {
        assert!(!(packet.poll && packet.final_));
    }
    // No session flapped.
    assert_eq!(pair.states(), [State::Up, State::Up]);
    assert!(pair.transitions.iter().all(|t| t.2.to != State::Down));
}

#[test]
fn a_shorter_detection_time_waits_for_the_final() {
    let mut pair = Pair::new(timers(300, 300, 3), timers(300, 300, 3));
    pair.run_for(3 * SLOW_TX);
    pair.cut = true;
    let actions = pair.sides[0].handle(pair.now, Input::Timers(timers(300, 100, 3)));
    pair.apply(0, actions);
    // No Final can arrive: the old, longer requirement still counts.
    pair.run_for(200 * MS);
    assert!(pair.sides[0].polling());
    assert_eq!(pair.sides[0].detection_time(), Some(900 * MS));
}

fn packet(state: State, your_discriminator: u32) -> ControlPacket {
    ControlPacket {
        diagnostic: Diagnostic::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        authentication: false,
        demand: false,
        detect_multiplier: 3,
        my_discriminator: 0x9999,
        your_discriminator,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

fn discards(session: &mut Session, now: Instant, payload: &[u8], ttl: u8) -> Vec<Discard> {
    session
        .handle(now, Input::Received { payload, ttl })
        .into_iter()
        .filter_map(|action| match action {
            Action::Discard(discard) => Some(discard),
            _ => None,
        })
        .collect()
}

#[test]
fn refuses_malformed_and_foreign_packets_and_changes_nothing() {
    let now = Instant::now();
    let mut session = Session::new(config(7, Timers::default()), now);
    let good = packet(State::Down, 0).encode();

    let mut short = good.to_vec();
    short.truncate(20);
    assert_eq!(
        discards(&mut session, now, &short, 255),
        [Discard::Decode(DecodeError::Truncated(20))]
    );
    assert_eq!(discards(&mut session, now, &good, 254), [Discard::Ttl(254)]);
    assert_eq!(discards(&mut session, now, &good, 1), [Discard::Ttl(1)]);
    let other = packet(State::Init, 8).encode();
    assert_eq!(
        discards(&mut session, now, &other, 255),
        [Discard::Discriminator(8)]
    );
    let mut authenticated = good.to_vec();
    authenticated[1] |= 0x04;
    authenticated[3] = 28;
    authenticated.extend_from_slice(&[1, 4, 0, 0]);
    assert_eq!(
        discards(&mut session, now, &authenticated, 255),
        [Discard::Authentication]
    );
    let mut multipoint = good;
    multipoint[1] |= 0x01;
    assert_eq!(
        discards(&mut session, now, &multipoint, 255),
        [Discard::Decode(DecodeError::Multipoint)]
    );
    // None of it counted: still Down, nothing learned of the neighbor.
    assert_eq!(session.state(), State::Down);
    assert_eq!(session.remote_discriminator(), 0);
    assert_eq!(session.detection_time(), None);

    // The good one moves it on.
    let actions = session.handle(
        now,
        Input::Received {
            payload: &good,
            ttl: 255,
        },
    );
    assert!(actions.contains(&Action::Transition(Transition {
        from: State::Down,
        to: State::Init,
        diagnostic: Diagnostic::None,
        remote_state: State::Down,
    })));
    assert_eq!(session.remote_discriminator(), 0x9999);
}

#[test]
fn answers_a_poll_at_once_with_a_final() {
    let now = Instant::now();
    let mut session = Session::new(config(7, Timers::default()), now);
    let mut poll = packet(State::Down, 0);
    poll.poll = true;
    let actions = session.handle(
        now,
        Input::Received {
            payload: &poll.encode(),
            ttl: 255,
        },
    );
    let sent: Vec<_> = actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(bytes) => Some(ControlPacket::decode(bytes).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].final_ && !sent[0].poll);
    assert_eq!(sent[0].your_discriminator, 0x9999);
    assert_eq!(sent[0].state, State::Init);
}

#[test]
fn down_stays_down_on_an_up_neighbor_and_init_does_not_time_out_early() {
    let now = Instant::now();
    let mut session = Session::new(config(7, Timers::default()), now);
    // An Up neighbor while we are Down (it has not noticed yet): no change.
    let up = packet(State::Up, 7).encode();
    let actions = session.handle(
        now,
        Input::Received {
            payload: &up,
            ttl: 255,
        },
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Transition(_))));
    assert_eq!(session.state(), State::Down);
    // Down -> Init, then silence: Down with diagnostic 1 after 3 x 300 ms.
    let down = packet(State::Down, 0).encode();
    session.handle(
        now,
        Input::Received {
            payload: &down,
            ttl: 255,
        },
    );
    assert_eq!(session.state(), State::Init);
    assert_eq!(
        session.next_deadline().min(now + 900 * MS),
        session.next_deadline()
    );
    session.handle(now + 899 * MS, Input::Tick);
    assert_eq!(session.state(), State::Init);
    let actions = session.handle(now + 900 * MS, Input::Tick);
    assert!(actions.contains(&Action::Transition(Transition {
        from: State::Init,
        to: State::Down,
        diagnostic: Diagnostic::ControlDetectionTimeExpired,
        remote_state: State::Down,
    })));
}

#[test]
fn a_neighbor_asking_for_nothing_gets_nothing() {
    let now = Instant::now();
    let mut session = Session::new(config(7, Timers::default()), now);
    let mut quiet = packet(State::Down, 0);
    quiet.required_min_rx = 0;
    session.handle(
        now,
        Input::Received {
            payload: &quiet.encode(),
            ttl: 255,
        },
    );
    let actions = session.handle(now + 5 * SLOW_TX, Input::Tick);
    assert!(!actions.iter().any(|a| matches!(a, Action::Send(_))));
}

#[test]
fn timers_refuse_zero_and_overlong_values() {
    assert_eq!(
        Timers::new(Duration::ZERO, MS, 3),
        Err(TimersError::Zero("transmit"))
    );
    assert_eq!(
        Timers::new(MS, Duration::ZERO, 3),
        Err(TimersError::Zero("receive"))
    );
    assert_eq!(Timers::new(MS, MS, 0), Err(TimersError::Multiplier));
    assert_eq!(
        Timers::new(Duration::from_secs(5000), MS, 3),
        Err(TimersError::TooLong("transmit"))
    );
}
