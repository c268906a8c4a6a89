//! One BFD session (RFC 5880 6.8) in asynchronous mode, active role, with
//! no echo function, no demand mode of its own and no authentication. No
//! socket and no clock: time and packets come in as arguments, actions go
//! out as values.
//!
//! Data flow, all through [`Session::handle`]`(now, input) -> Vec<Action>`:
//!
//! - in from the UDP layer: [`Input::Received`] (a datagram's payload and
//!   the TTL or hop limit it arrived with);
//! - in from the clock: [`Input::Tick`], due at [`Session::next_deadline`];
//! - in from the operator: [`Input::Timers`] (new intervals; a poll sequence
//!   when the session is up), [`Input::AdminDown`], [`Input::Enable`];
//! - out to the UDP layer: [`Action::Send`] (a whole control packet);
//! - out to the layers above: [`Action::Transition`] (the new state and
//!   the diagnostic), [`Action::Discard`] (a received packet refused, and
//!   why: for counters and logs).
//!
//! Choices where RFC 5880 leaves room:
//! - while the session is not Up, Desired Min TX is at least one second
//!   (6.8.3); on reaching Up it becomes the configured value, announced
//!   with a poll sequence;
//! - the jitter (6.8.7: each interval 75 to 100% of the negotiated one, 75
//!   to 90% with a detect multiplier of 1) comes from a small generator
//!   seeded by the caller, so that runs repeat;
//! - a session in AdminDown keeps sending (at the slow rate) so that the
//!   neighbor learns of it however long it takes.

use std::time::{Duration, Instant};

use crate::packet::{ControlPacket, DecodeError, Diagnostic, MIN_LEN, State};

/// The slowest a session sends while it is not Up (RFC 5880 6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The intervals and multiplier one side asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    desired_min_tx: Duration,
    required_min_rx: Duration,
    detect_multiplier: u8,
}

/// Timers [`Timers::new`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimersError {
    #[error("{0} interval must be longer than zero")]
    Zero(&'static str),
    #[error("{0} interval must be at most {max} s", max = u32::MAX / 1_000_000)]
    TooLong(&'static str),
    #[error("detect multiplier must be at least 1")]
    Multiplier,
}

impl Timers {
    pub fn new(
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_multiplier: u8,
    ) -> Result<Self, TimersError> {
        for (name, value) in [("transmit", desired_min_tx), ("receive", required_min_rx)] {
            if value.as_micros() == 0 {
                return Err(TimersError::Zero(name));
            }
            if value.as_micros() > u128::from(u32::MAX) {
                return Err(TimersError::TooLong(name));
            }
        }
        if detect_multiplier == 0 {
            return Err(TimersError::Multiplier);
        }
        Ok(Self {
            desired_min_tx,
            required_min_rx,
            detect_multiplier,
        })
    }

    pub fn desired_min_tx(&self) -> Duration {
        self.desired_min_tx
    }

    pub fn required_min_rx(&self) -> Duration {
        self.required_min_rx
    }

    pub fn detect_multiplier(&self) -> u8 {
        self.detect_multiplier
    }
}

impl Default for Timers {
    /// 300 ms x 3, as FRR and BIRD default to.
    fn default() -> Self {
        Self {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_multiplier: 3,
        }
    }
}

/// What a session is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub timers: Timers,
    /// Our discriminator: nonzero, unique among this system's sessions.
    pub local_discriminator: u32,
    /// Set the C bit (our BFD survives our control plane restarting).
    pub control_plane_independent: bool,
    /// Seeds the jitter.
    pub seed: u64,
}

/// What happens to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// A UDP payload from the neighbor, with the TTL (IPv4) or hop limit
    /// (IPv6) it arrived with.
    Received { payload: &'a [u8], ttl: u8 },
    /// The time given to [`Session::handle`] has come.
    Tick,
    /// New intervals or multiplier (RFC 5880 6.8.3).
    Timers(Timers),
    /// Take the session administratively down (diagnostic 7).
    AdminDown,
    /// Leave AdminDown for Down.
    Enable,
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Why (the Diag we now send).
    pub diagnostic: Diagnostic,
    /// The neighbor's state as last heard: AdminDown means it was shut on
    /// purpose, which its clients should not take for a failure (RFC 5882
    /// 3.2).
    pub remote_state: State,
}

/// Why a received packet was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("TTL {0}: single-hop BFD packets arrive with 255 (RFC 5881 5)")]
    Ttl(u8),
    #[error("your discriminator {0} is not this session's")]
    Discriminator(u32),
    #[error("authentication present, none configured")]
    Authentication,
}

/// What the session asks of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this control packet to the neighbor.
    Send([u8; MIN_LEN]),
    /// The session changed state.
    Transition(Transition),
    /// A received packet was discarded.
    Discard(Discard),
}

/// One neighbor's BFD session.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    state: State,
    diagnostic: Diagnostic,
    remote_state: State,
    remote_discriminator: u32,
    /// bfd.DesiredMinTxInterval and bfd.RequiredMinRxInterval: what our
    /// packets say.
    advertised_tx: Duration,
    advertised_rx: Duration,
    /// What timing uses while a poll sequence has not yet confirmed a
    /// change: a slower transmit rate or a shorter detection time wait for
    /// the Final (RFC 5880 6.8.3).
    tx_in_effect: Duration,
    rx_in_effect: Duration,
    polling: bool,
    /// From the neighbor's last packet.
    remote_min_rx: Duration,
    remote_desired_min_tx: Duration,
    remote_multiplier: u8,
    remote_demand: bool,
    last_received: Option<Instant>,
    last_sent: Option<Instant>,
    next_send: Instant,
    up_since: Option<Instant>,
    been_up: bool,
    random: u64,
}

impl Session {
    /// A session in Down that sends its first packet at `now`.
    ///
    /// # Panics
    /// When the local discriminator is zero (RFC 5880 6.8.1 forbids it).
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        assert_ne!(
            config.local_discriminator, 0,
            "a local discriminator is nonzero"
        );
        let advertised_tx = config.timers.desired_min_tx.max(SLOW_TX);
        let advertised_rx = config.timers.required_min_rx;
        Self {
            random: config.seed,
            state: State::Down,
            diagnostic: Diagnostic::None,
            remote_state: State::Down,
            remote_discriminator: 0,
            advertised_tx,
            advertised_rx,
            tx_in_effect: advertised_tx,
            rx_in_effect: advertised_rx,
            polling: false,
            // RFC 5880 6.8.1: 1 microsecond until the neighbor says.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_min_tx: Duration::ZERO,
            remote_multiplier: 0,
            remote_demand: false,
            last_received: None,
            last_sent: None,
            next_send: now,
            up_since: None,
            been_up: false,
            config,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// The diagnostic we send: why the session last went down.
    pub fn diagnostic(&self) -> Diagnostic {
        self.diagnostic
    }

    pub fn local_discriminator(&self) -> u32 {
        self.config.local_discriminator
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }

    /// The configured timers (not the slow rate used while not Up).
    pub fn timers(&self) -> Timers {
        self.config.timers
    }

    /// Whether a poll sequence waits for its Final.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// Since when the session is Up.
    pub fn up_since(&self) -> Option<Instant> {
        self.up_since
    }

    /// Whether the session has ever been Up.
    pub fn been_up(&self) -> bool {
        self.been_up
    }

    /// The negotiated transmit interval before jitter (RFC 5880 6.8.2):
    /// ours or the slowest the neighbor takes, whichever is longer.
    pub fn transmit_interval(&self) -> Duration {
        self.tx_in_effect.max(self.remote_min_rx)
    }

    /// How long the neighbor may stay silent (RFC 5880 6.8.4): its
    /// multiplier times the longer of our required RX and its desired TX.
    /// None before it has said anything.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_multiplier > 0).then(|| {
            self.rx_in_effect.max(self.remote_desired_min_tx) * u32::from(self.remote_multiplier)
        })
    }

    /// When [`Input::Tick`] is next due.
    pub fn next_deadline(&self) -> Instant {
        match self.detection_deadline() {
            Some(detect) => detect.min(self.next_send),
            None => self.next_send,
        }
    }

    fn detection_deadline(&self) -> Option<Instant> {
        Some(self.last_received? + self.detection_time()?)
    }

    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Received { payload, ttl } => self.receive(now, payload, ttl, &mut actions),
            Input::Tick => self.tick(now, &mut actions),
            Input::Timers(timers) => self.set_timers(now, timers),
            Input::AdminDown => {
                if self.state != State::AdminDown {
                    self.change(
                        now,
                        State::AdminDown,
                        Diagnostic::AdministrativelyDown,
                        &mut actions,
                    );
                    self.send(now, false, &mut actions);
                }
            }
            Input::Enable => {
                if self.state == State::AdminDown {
                    self.change(now, State::Down, self.diagnostic, &mut actions);
                }
            }
        }
        actions
    }

    fn receive(&mut self, now: Instant, payload: &[u8], ttl: u8, actions: &mut Vec<Action>) {
        let packet = match ControlPacket::decode(payload) {
            Ok(packet) => packet,
            Err(error) => return actions.push(Action::Discard(error.into())),
        };
        if packet.authentication {
            return actions.push(Action::Discard(Discard::Authentication));
        }
        if ttl != crate::REQUIRED_TTL {
            return actions.push(Action::Discard(Discard::Ttl(ttl)));
        }
        if packet.your_discriminator != 0
            && packet.your_discriminator != self.config.local_discriminator
        {
            return actions.push(Action::Discard(Discard::Discriminator(
                packet.your_discriminator,
            )));
        }
        let interval_before = self.transmit_interval();
        self.remote_discriminator = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.demand;
        self.remote_min_rx = micros(packet.required_min_rx);
        self.remote_desired_min_tx = micros(packet.desired_min_tx);
        self.remote_multiplier = packet.detect_multiplier;
        if packet.final_ && self.polling {
            self.polling = false;
            self.tx_in_effect = self.advertised_tx;
            self.rx_in_effect = self.advertised_rx;
        }
        if self.state == State::AdminDown {
            return;
        }
        self.last_received = Some(now);
        if packet.state == State::AdminDown {
            if self.state != State::Down {
                self.change(
                    now,
                    State::Down,
                    Diagnostic::NeighborSignaledSessionDown,
                    actions,
                );
            }
        } else {
            match (self.state, packet.state) {
                (State::Down, State::Down) => {
                    self.change(now, State::Init, Diagnostic::None, actions)
                }
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.change(now, State::Up, Diagnostic::None, actions)
                }
                (State::Up, State::Down) => self.change(
                    now,
                    State::Down,
                    Diagnostic::NeighborSignaledSessionDown,
                    actions,
                ),
                _ => {}
            }
        }
        if packet.poll {
            self.send(now, true, actions);
        }
        if self.transmit_interval() != interval_before {
            self.reschedule(now);
        }
    }

    fn tick(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self
            .detection_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            // RFC 5880 6.8.1: a silent neighbor's discriminator is forgotten.
            self.last_received = None;
            self.remote_discriminator = 0;
            self.remote_state = State::Down;
            self.remote_demand = false;
            if matches!(self.state, State::Init | State::Up) {
                self.change(
                    now,
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired,
                    actions,
                );
            }
        }
        if now >= self.next_send {
            // RFC 5880 6.8.7: nothing while the neighbor asks for nothing
            // (RequiredMinRx 0) or runs demand mode on an Up session.
            let demand =
                self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
            if !self.remote_min_rx.is_zero() && !demand {
                self.send(now, false, actions);
            }
            self.next_send = now + self.jittered(self.transmit_interval());
        }
    }

    fn set_timers(&mut self, now: Instant, timers: Timers) {
        let before = (self.advertised_tx, self.advertised_rx);
        self.config.timers = timers;
        let interval_before = self.transmit_interval();
        if self.state == State::Up {
            self.advertised_tx = timers.desired_min_tx;
            self.advertised_rx = timers.required_min_rx;
            // A faster transmit rate or a longer wait is safe at once; the
            // other way round waits for the neighbor's Final.
            self.tx_in_effect = self.tx_in_effect.min(self.advertised_tx);
            self.rx_in_effect = self.rx_in_effect.max(self.advertised_rx);
            if (self.advertised_tx, self.advertised_rx) != before {
                self.polling = true;
            }
        } else {
            self.advertised_tx = timers.desired_min_tx.max(SLOW_TX);
            self.advertised_rx = timers.required_min_rx;
            self.tx_in_effect = self.advertised_tx;
            self.rx_in_effect = self.advertised_rx;
        }
        if self.transmit_interval() != interval_before {
            self.reschedule(now);
        }
    }

    fn change(
        &mut self,
        now: Instant,
        to: State,
        diagnostic: Diagnostic,
        actions: &mut Vec<Action>,
    ) {
        let from = self.state;
        self.state = to;
        self.diagnostic = diagnostic;
        let interval_before = self.transmit_interval();
        if to == State::Up {
            self.up_since = Some(now);
            self.been_up = true;
            // Leave the slow rate: the configured one, announced by a poll.
            if self.advertised_tx != self.config.timers.desired_min_tx {
                self.advertised_tx = self.config.timers.desired_min_tx;
                self.tx_in_effect = self.tx_in_effect.min(self.advertised_tx);
                self.polling = true;
            }
        } else if from == State::Up {
            self.up_since = None;
            self.polling = false;
            self.advertised_tx = self.config.timers.desired_min_tx.max(SLOW_TX);
            self.advertised_rx = self.config.timers.required_min_rx;
            self.tx_in_effect = self.advertised_tx;
            self.rx_in_effect = self.advertised_rx;
        }
        actions.push(Action::Transition(Transition {
            from,
            to,
            diagnostic,
            remote_state: self.remote_state,
        }));
        if self.transmit_interval() != interval_before {
            self.reschedule(now);
        }
    }

    /// Moves the next periodic packet to one (jittered) interval after the
    /// last one sent, but not into the past.
    fn reschedule(&mut self, now: Instant) {
        let interval = self.jittered(self.transmit_interval());
        self.next_send = match self.last_sent {
            Some(sent) => (sent + interval).max(now),
            None => now,
        };
    }

    /// Sends a packet now: the Final of a poll, or a periodic one (with the
    /// Poll bit while a poll sequence waits).
    fn send(&mut self, now: Instant, final_: bool, actions: &mut Vec<Action>) {
        let packet = ControlPacket {
            diagnostic: self.diagnostic,
            state: self.state,
            // RFC 5880 6.8.7: never Poll and Final at once.
            poll: self.polling && !final_,
            final_,
            control_plane_independent: self.config.control_plane_independent,
            authentication: false,
            demand: false,
            detect_multiplier: self.config.timers.detect_multiplier,
            my_discriminator: self.config.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx: wire(self.advertised_tx),
            required_min_rx: wire(self.advertised_rx),
            required_min_echo_rx: 0,
        };
        if !final_ {
            self.last_sent = Some(now);
        }
        actions.push(Action::Send(packet.encode()));
    }

    /// `interval` less 0 to 25% (0 to 10% more with a multiplier of 1),
    /// RFC 5880 6.8.7.
    fn jittered(&mut self, interval: Duration) -> Duration {
        // splitmix64: small, and the same sequence for the same seed.
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let span = if self.config.timers.detect_multiplier == 1 {
            16
        } else {
            26
        };
        let percent = 75 + (z % span) as u32;
        interval * percent / 100
    }
}

fn micros(value: u32) -> Duration {
    Duration::from_micros(u64::from(value))
}

fn wire(value: Duration) -> u32 {
    u32::try_from(value.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
