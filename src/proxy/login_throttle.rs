//! Per-address throttling of failed logins: how many password guesses one client address may
//! have checked.
//!
//! An address (an IPv4 address, or an IPv6 /64: one subscriber's network, which an attacker
//! holds whole) may fail `login_failures_per_address` logins within `login_failure_window_secs`
//! of its first failure; then its logins are refused until that window ends, before any
//! password is looked at. The network around it (an IPv4 /24, an IPv6 /48: what one site or
//! one hosting customer is given) may fail [`NETWORK_MULTIPLE`] times as many: an attacker
//! holding a /48 has 65,536 /64s, each with a fresh count, and could otherwise guess that many
//! times more — and fill the table below with them. A service account's logins count against
//! their address alone, so that neighbours failing logins cannot lock out the account every
//! user's queries come through. A failure is a login answered 28P01: a
//! wrong password or credential, an unknown or disabled user, a service account's wrong
//! secret. A success does not reset the count, or an attacker with an account of their own
//! could interleave it with guesses.
//!
//! The delay before each 28P01 answer does not bound parallel guesses, and neither would a
//! count of failures alone: connections opened at once would all pass the check before the
//! first failure was recorded. So a guess must be claimed just before it is checked, and
//! claimed guesses count against the limit until their outcome is known; a claim that would
//! exceed it waits for those outcomes. An address therefore has at most the limit checked per
//! window, however many connections it opens.
//!
//! Memory is bounded: an address or network is tracked only while it has a guess being checked
//! or failures in an open window, and at most [`TRACKED_SOURCES`] at once. When that many are
//! tracked, expired ones are swept out; if the table is still full — failures from that many
//! addresses within one window, which takes thousands of networks — guesses from addresses it
//! does not track are refused (fail closed) rather than checked unthrottled.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::{Fatal, TOO_MANY_CONNECTIONS};
use crate::config::Config;
use crate::metrics::primitives::Counter;

/// The most addresses and networks tracked at once: about 50 bytes each, under 15 MB with the
/// table's slack.
pub const TRACKED_SOURCES: usize = 100_000;

/// How many times an address's failures its network may have.
pub const NETWORK_MULTIPLE: u32 = 10;

/// How often a claim that must wait for other guesses' outcomes looks again.
const CLAIM_RETRY: Duration = Duration::from_millis(10);

/// The shortest time between two sweeps of the table (each visits every entry).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What the throttle counts failures of: a client address (an IPv4 address, an IPv6 /64) or
/// the network around one (an IPv4 /24, an IPv6 /48).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// The first address of the prefix.
    ip: IpAddr,
    prefix: u8,
}

impl Source {
    /// The address `ip` counts as.
    pub fn address(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::v4(v4, 32),
            // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::v4(v4, 32),
                None => Source::v6(v6, 64),
            },
        }
    }

    /// The network around this address.
    fn network(self) -> Source {
        match self.ip {
            IpAddr::V4(v4) => Source::v4(v4, 24),
            IpAddr::V6(v6) => Source::v6(v6, 48),
        }
    }

    fn is_network(self) -> bool {
        self.prefix < if self.ip.is_ipv4() { 32 } else { 64 }
    }

    fn v4(ip: Ipv4Addr, prefix: u8) -> Source {
        let mask = u32::MAX << (32 - prefix);
        Source {
            ip: IpAddr::V4(Ipv4Addr::from_bits(ip.to_bits() & mask)),
            prefix,
        }
    }

    fn v6(ip: Ipv6Addr, prefix: u8) -> Source {
        let mask = u128::MAX << (128 - prefix);
        Source {
            ip: IpAddr::V6(Ipv6Addr::from_bits(ip.to_bits() & mask)),
            prefix,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == 32 && self.ip.is_ipv4() {
            write!(f, "{}", self.ip)
        } else {
            write!(f, "{}/{}", self.ip, self.prefix)
        }
    }
}

/// Why a login is refused without its password being checked.
#[derive(Debug, PartialEq, Eq)]
enum Throttled {
    /// The address, or its network, used up its failures; its window ends after `wait`.
    Exhausted { source: Source, wait: Duration },
    /// The table is full of failing addresses; this one is not among them.
    Crowded { wait: Duration },
}

impl Throttled {
    fn fatal(&self, limit: &LoginThrottle) -> Fatal {
        let (message, wait) = match self {
            Throttled::Exhausted { source, wait } => {
                (format!("too many failed logins from {source}"), wait)
            }
            Throttled::Crowded { wait } => (
                "too many addresses are failing logins at once; logins from other addresses are refused for now".to_owned(),
                wait,
            ),
        };
        // Whole seconds, rounded up, so that trying again after them succeeds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        // Too many connections, not an authorization error: class 28 would tell poolers and
        // drivers the credentials are wrong, which makes some give up or ask for another
        // password, though the password was never checked and may be right.
        Fatal::new(
            TOO_MANY_CONNECTIONS,
            format!("{message}: try again in {seconds} s"),
        )
        .with_hint(format!(
            "one address (IPv6: one /64) may fail {} logins within {} s, and its network (IPv4: \
             the /24, IPv6: the /48) {}; the operator sets this with login_failures_per_address \
             and login_failure_window_secs",
            limit.failures_allowed,
            limit.window.as_secs(),
            limit.network_failures_allowed()
        ))
    }
}

/// One tracked address or network.
struct Record {
    /// Failures in the window that began at `since`.
    failures: u32,
    since: Instant,
    /// Guesses claimed and not yet settled, counted against the limit meanwhile.
    claimed: u32,
}

enum Claim {
    Granted,
    /// Guesses being checked could use up what is left: wait for their outcome.
    Wait,
    Refused(Throttled),
}

pub struct LoginThrottle {
    failures_allowed: u32,
    window: Duration,
    capacity: usize,
    records: DashMap<Source, Record>,
    last_sweep: Mutex<Option<Instant>>,
    refused: Counter,
}

impl LoginThrottle {
    pub fn from_config(config: &Config) -> Result<LoginThrottle, String> {
        if config.login_failures_per_address == 0 {
            return Err("login_failures_per_address must be at least 1".into());
        }
        if config.login_failure_window_secs == 0 {
            return Err("login_failure_window_secs must be at least 1".into());
        }
        Ok(LoginThrottle::new(
            config.login_failures_per_address,
            Duration::from_secs(config.login_failure_window_secs),
            TRACKED_SOURCES,
        ))
    }

    /// `failures_allowed` per address within `window`, tracking at most `capacity` addresses
    /// and networks ([`TRACKED_SOURCES`] outside tests).
    pub fn new(failures_allowed: u32, window: Duration, capacity: usize) -> LoginThrottle {
        LoginThrottle {
            failures_allowed,
            window,
            capacity,
            records: DashMap::new(),
            last_sweep: Mutex::new(None),
            refused: Counter::default(),
        }
    }

    /// Logins refused by the throttle since start.
    pub fn refused(&self) -> u64 {
        self.refused.get()
    }

    /// Addresses and networks tracked now.
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    /// A login from `ip` begins: refused at once when the address or its network has used up
    /// its failures. A service account's login (`scope`) counts against its address alone:
    /// found by red-team review, failures from its neighbours (any ten addresses of its /24)
    /// locked the service account out, and with it every user it acts for.
    pub fn attempt(&self, ip: IpAddr, scope: Scope) -> Result<LoginAttempt<'_>, Fatal> {
        let client = Counted {
            address: Source::address(ip),
            scope,
        };
        self.check(client, Instant::now()).map_err(|throttled| {
            self.refused.inc();
            throttled.fatal(self)
        })?;
        Ok(LoginAttempt {
            throttle: self,
            client,
            claimed: false,
        })
    }

    fn network_failures_allowed(&self) -> u32 {
        self.failures_allowed.saturating_mul(NETWORK_MULTIPLE)
    }

    fn allowed(&self, source: Source) -> u32 {
        if source.is_network() {
            self.network_failures_allowed()
        } else {
            self.failures_allowed
        }
    }

    fn check(&self, client: Counted, now: Instant) -> Result<(), Throttled> {
        for source in client.sources() {
            if let Some(record) = self.records.get(&source)
                && self.exhausted(source, &record, now)
            {
                return Err(Throttled::Exhausted {
                    source,
                    wait: self.window_left(&record, now),
                });
            }
        }
        Ok(())
    }

    /// Claims a guess from `client` on its network (if counted) and on the address itself.
    fn claim(&self, client: Counted, now: Instant) -> Claim {
        // New entries sweep ended windows out first (at most once a second), so the table
        // holds only what still counts.
        let new = client
            .sources()
            .filter(|s| !self.records.contains_key(s))
            .count();
        if new > 0 && !self.sweep(now, new) {
            return Claim::Refused(Throttled::Crowded { wait: self.window });
        }
        // One entry at a time: holding two of the map's locks at once could deadlock.
        let network = client.network();
        if let Some(network) = network {
            match self.claim_one(network, now) {
                Claim::Granted => {}
                other => return other,
            }
        }
        let claim = self.claim_one(client.address, now);
        if let Some(network) = network
            && !matches!(claim, Claim::Granted)
        {
            self.release(network, now);
        }
        claim
    }

    fn claim_one(&self, source: Source, now: Instant) -> Claim {
        let allowed = self.allowed(source);
        let mut record = self.records.entry(source).or_insert_with(|| Record {
            failures: 0,
            since: now,
            claimed: 0,
        });
        if self.expired(&record, now) {
            record.failures = 0;
        }
        if record.failures >= allowed {
            Claim::Refused(Throttled::Exhausted {
                source,
                wait: self.window_left(&record, now),
            })
        } else if record.failures + record.claimed >= allowed {
            Claim::Wait
        } else {
            record.claimed += 1;
            Claim::Granted
        }
    }

    /// Gives back a claim that was not used.
    fn release(&self, source: Source, now: Instant) {
        if let Some(mut record) = self.records.get_mut(&source) {
            record.claimed -= 1;
        }
        self.records
            .remove_if(&source, |_, record| self.forgettable(record, now));
    }

    /// The outcome of a guess claimed for `client`.
    fn settle(&self, client: Counted, failed: bool, now: Instant) {
        for source in client.sources() {
            self.settle_one(source, failed, now);
        }
    }

    fn settle_one(&self, source: Source, failed: bool, now: Instant) {
        if let Some(mut record) = self.records.get_mut(&source) {
            record.claimed -= 1;
            if failed {
                if record.failures == 0 || self.expired(&record, now) {
                    record.failures = 0;
                    record.since = now;
                }
                record.failures += 1;
                if record.failures == self.allowed(source) {
                    tracing::warn!(
                        client = %source,
                        failures = record.failures,
                        within_secs = now.duration_since(record.since).as_secs(),
                        refused_for_secs = self.window_left(&record, now).as_secs(),
                        "too many failed logins from this address or network: its logins are refused until its window ends"
                    );
                }
            }
        }
        self.records
            .remove_if(&source, |_, record| self.forgettable(record, now));
    }

    /// Drops what no longer counts; says whether there is room for `needed` more entries now.
    /// The table is swept at most once per [`SWEEP_INTERVAL`].
    fn sweep(&self, now: Instant, needed: usize) -> bool {
        if let Ok(mut last) = self.last_sweep.try_lock()
            && last.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_INTERVAL)
        {
            *last = Some(now);
            self.records
                .retain(|_, record| !self.forgettable(record, now));
            if self.records.len() + needed > self.capacity {
                tracing::warn!(
                    tracked = self.records.len(),
                    "the login throttle is full of addresses failing logins: logins from other addresses are refused until their windows end"
                );
            }
        }
        self.records.len() + needed <= self.capacity
    }

    fn expired(&self, record: &Record, now: Instant) -> bool {
        now.saturating_duration_since(record.since) >= self.window
    }

    fn exhausted(&self, source: Source, record: &Record, now: Instant) -> bool {
        record.failures >= self.allowed(source) && !self.expired(record, now)
    }

    fn window_left(&self, record: &Record, now: Instant) -> Duration {
        (record.since + self.window).saturating_duration_since(now)
    }

    fn forgettable(&self, record: &Record, now: Instant) -> bool {
        record.claimed == 0 && (record.failures == 0 || self.expired(record, now))
    }
}

/// One login's dealings with the throttle. A guess claimed and never settled — the login's
/// task dropped, say, by the authentication timeout — counts as failed.
pub struct LoginAttempt<'t> {
    throttle: &'t LoginThrottle,
    client: Counted,
    claimed: bool,
}

/// What a login's failures count against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Its address and the network around it.
    AddressAndNetwork,
    /// Its address alone: a service account's login.
    Address,
}

/// A login's address and what of it counts.
#[derive(Clone, Copy)]
struct Counted {
    address: Source,
    scope: Scope,
}

impl Counted {
    fn network(self) -> Option<Source> {
        (self.scope == Scope::AddressAndNetwork).then(|| self.address.network())
    }

    /// The network first, then the address.
    fn sources(self) -> impl Iterator<Item = Source> {
        self.network().into_iter().chain([self.address])
    }
}

impl LoginAttempt<'_> {
    /// Claims the right to check this login's guess: call it just before checking. Waits while
    /// guesses being checked could use up what the address has left.
    pub async fn guess(&mut self) -> Result<(), Fatal> {
        if self.claimed {
            return Ok(());
        }
        loop {
            match self.throttle.claim(self.client, Instant::now()) {
                Claim::Granted => {
                    self.claimed = true;
                    return Ok(());
                }
                Claim::Wait => tokio::time::sleep(CLAIM_RETRY).await,
                Claim::Refused(throttled) => {
                    self.throttle.refused.inc();
                    return Err(throttled.fatal(self.throttle));
                }
            }
        }
    }

    /// How the login ended: `failed` for an answer of 28P01.
    pub fn settle(mut self, failed: bool) {
        if std::mem::take(&mut self.claimed) {
            self.throttle.settle(self.client, failed, Instant::now());
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.claimed {
            self.throttle.settle(self.client, true, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    impl From<Source> for Counted {
        fn from(address: Source) -> Counted {
            Counted {
                address,
                scope: Scope::AddressAndNetwork,
            }
        }
    }

    fn v4(last: u8) -> Source {
        Source::address(IpAddr::from([192, 0, 2, last]))
    }

    /// One guess from `client` at `now`, claimed and settled.
    fn guess(throttle: &LoginThrottle, client: impl Into<Counted>, failed: bool, now: Instant) {
        let client = client.into();
        assert!(matches!(throttle.claim(client, now), Claim::Granted));
        throttle.settle(client, failed, now);
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let throttle = LoginThrottle::new(3, WINDOW, 100);
        let start = Instant::now();
        let client = v4(1);
        guess(&throttle, client, true, start);
        guess(&throttle, client, false, start + Duration::from_secs(1));
        guess(&throttle, client, true, start + Duration::from_secs(2));
        assert_eq!(
            throttle.check(client.into(), start + Duration::from_secs(3)),
            Ok(())
        );
        guess(&throttle, client, true, start + Duration::from_secs(10));
        let refused = Throttled::Exhausted {
            source: client,
            wait: Duration::from_secs(50),
        };
        assert_eq!(
            throttle.check(client.into(), start + Duration::from_secs(10)),
            Err(refused)
        );
        assert!(matches!(
            throttle.claim(client.into(), start + Duration::from_secs(59)),
            Claim::Refused(Throttled::Exhausted { .. })
        ));
        // Other addresses are unaffected.
        assert_eq!(
            throttle.check(v4(2).into(), start + Duration::from_secs(10)),
            Ok(())
        );
        // The window began at the first failure; once it ends, the count starts again.
        assert_eq!(throttle.check(client.into(), start + WINDOW), Ok(()));
        guess(&throttle, client, true, start + WINDOW);
        guess(&throttle, client, true, start + WINDOW);
        assert_eq!(throttle.check(client.into(), start + WINDOW), Ok(()));
    }

    #[test]
    fn guesses_being_checked_count_until_their_outcome_is_known() {
        let throttle = LoginThrottle::new(2, WINDOW, 100);
        let now = Instant::now();
        let client = v4(1);
        assert!(matches!(throttle.claim(client.into(), now), Claim::Granted));
        assert!(matches!(throttle.claim(client.into(), now), Claim::Granted));
        // A third parallel connection may not have its guess checked yet.
        assert!(matches!(throttle.claim(client.into(), now), Claim::Wait));
        throttle.settle(client.into(), false, now);
        assert!(matches!(throttle.claim(client.into(), now), Claim::Granted));
        throttle.settle(client.into(), true, now);
        throttle.settle(client.into(), true, now);
        assert!(matches!(
            throttle.claim(client.into(), now),
            Claim::Refused(Throttled::Exhausted { .. })
        ));
    }

    #[tokio::test]
    async fn a_claimed_guess_never_settled_counts_as_failed() {
        let throttle = LoginThrottle::new(1, WINDOW, 100);
        let ip = IpAddr::from([192, 0, 2, 1]);
        let mut attempt = throttle.attempt(ip, Scope::AddressAndNetwork).unwrap();
        attempt.guess().await.unwrap();
        drop(attempt);
        assert!(throttle.attempt(ip, Scope::AddressAndNetwork).is_err());
        assert_eq!(throttle.refused(), 1);
        // Without a claimed guess (refused before its password was asked), nothing counts.
        let other = IpAddr::from([192, 0, 2, 2]);
        drop(throttle.attempt(other, Scope::AddressAndNetwork).unwrap());
        assert!(throttle.attempt(other, Scope::AddressAndNetwork).is_ok());
    }

    #[test]
    fn a_service_accounts_logins_count_against_its_address_alone() {
        let throttle = LoginThrottle::new(1, WINDOW, 100);
        let now = Instant::now();
        for neighbour in 1..=10 {
            guess(&throttle, v4(neighbour), true, now);
        }
        let service = Counted {
            address: v4(99),
            scope: Scope::Address,
        };
        assert!(
            throttle.check(v4(99).into(), now).is_err(),
            "the network is spent"
        );
        assert_eq!(throttle.check(service, now), Ok(()));
        guess(&throttle, service, true, now);
        assert!(
            throttle.check(service, now).is_err(),
            "its own failures count"
        );
        assert_eq!(
            throttle.tracked(),
            12,
            "ten neighbours, their network, the account's address"
        );
    }

    #[test]
    fn addresses_are_forgotten_once_nothing_of_theirs_counts() {
        let throttle = LoginThrottle::new(3, WINDOW, 100);
        let now = Instant::now();
        guess(&throttle, v4(1), false, now);
        assert_eq!(throttle.tracked(), 0, "a success leaves nothing behind");
        guess(&throttle, v4(2), true, now);
        assert_eq!(throttle.tracked(), 2, "the address and its network");
        assert!(throttle.sweep(now + WINDOW, 1));
        assert_eq!(throttle.tracked(), 0, "an ended window is swept out");
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_a_sweep_makes_room() {
        // Room for two addresses of one network and the network.
        let throttle = LoginThrottle::new(3, WINDOW, 3);
        let start = Instant::now();
        guess(&throttle, v4(1), true, start);
        guess(&throttle, v4(2), true, start + Duration::from_secs(30));
        assert!(matches!(
            throttle.claim(v4(3).into(), start + Duration::from_secs(31)),
            Claim::Refused(Throttled::Crowded { .. })
        ));
        assert_eq!(throttle.tracked(), 3, "the bound holds");
        // Tracked addresses go on as before.
        guess(&throttle, v4(1), true, start + Duration::from_secs(31));
        // Once the first window has ended, a sweep makes room.
        guess(
            &throttle,
            v4(3),
            true,
            start + WINDOW + Duration::from_secs(1),
        );
        assert_eq!(throttle.tracked(), 3);
        assert_eq!(
            throttle.check(v4(2).into(), start + WINDOW + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        let throttle = LoginThrottle::new(3, WINDOW, 2);
        let start = Instant::now();
        guess(&throttle, v4(1), true, start);
        let first_sweep = start + WINDOW - Duration::from_millis(500);
        assert!(!throttle.sweep(first_sweep, 1));
        // The window has ended, but the last sweep was less than a second ago.
        assert!(!throttle.sweep(start + WINDOW, 1));
        assert!(throttle.sweep(first_sweep + SWEEP_INTERVAL, 1));
    }

    /// Every /64 of a /48 is an address with its own count; together they may fail ten times
    /// one address's limit, so one /48 can neither multiply its guesses 65,536 times nor
    /// fill the table.
    #[test]
    fn the_addresses_of_one_network_share_ten_times_an_addresss_limit() {
        let throttle = LoginThrottle::new(2, WINDOW, 100);
        let now = Instant::now();
        let subnet = |n: u16| Source::address(IpAddr::from([0x2001, 0xdb8, 1, n, 0, 0, 0, 1]));
        for n in 0..10 {
            guess(&throttle, subnet(n), true, now);
            guess(&throttle, subnet(n), true, now);
        }
        let network = subnet(99).network();
        assert_eq!(network.to_string(), "2001:db8:1::/48");
        assert!(matches!(
            throttle.check(subnet(99).into(), now),
            Err(Throttled::Exhausted { source, .. }) if source == network
        ));
        assert!(matches!(
            throttle.claim(subnet(99).into(), now),
            Claim::Refused(Throttled::Exhausted { source, .. }) if source == network
        ));
        assert_eq!(
            throttle.tracked(),
            11,
            "ten /64s and their /48, nothing more"
        );
        let elsewhere = Source::address(IpAddr::from([0x2001, 0xdb8, 2, 0, 0, 0, 0, 1]));
        assert!(matches!(
            throttle.claim(elsewhere.into(), now),
            Claim::Granted
        ));

        // IPv4: the /24.
        let throttle = LoginThrottle::new(1, WINDOW, 100);
        for last in 1..=10 {
            guess(&throttle, v4(last), true, now);
        }
        assert!(throttle.check(v4(200).into(), now).is_err());
        assert_eq!(v4(200).network().to_string(), "192.0.2.0/24");
        assert_eq!(
            throttle.check(Source::address(IpAddr::from([192, 0, 3, 1])).into(), now),
            Ok(())
        );
    }

    /// A claim on the network is given back when the address itself is refused, so a
    /// throttled address does not use up its neighbours' share.
    #[test]
    fn a_refused_address_leaves_its_networks_share_alone() {
        let throttle = LoginThrottle::new(1, WINDOW, 100);
        let now = Instant::now();
        guess(&throttle, v4(1), true, now);
        for _ in 0..20 {
            assert!(matches!(
                throttle.claim(v4(1).into(), now),
                Claim::Refused(Throttled::Exhausted { source, .. }) if source == v4(1)
            ));
        }
        for last in 2..=10 {
            guess(&throttle, v4(last), true, now);
        }
        assert!(
            throttle.check(v4(11).into(), now).is_err(),
            "10 failures in the /24"
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix_and_mapped_ipv4_as_ipv4() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let one = Source::address(ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(one, Source::address(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        assert_ne!(one, Source::address(ip("2001:db8:1:3::1")));
        assert_eq!(one.to_string(), "2001:db8:1:2::/64");
        let mapped = Source::address(ip("::ffff:192.0.2.7"));
        assert_eq!(mapped, v4(7));
        assert_eq!(mapped.to_string(), "192.0.2.7");

        let throttle = LoginThrottle::new(2, WINDOW, 100);
        let now = Instant::now();
        guess(&throttle, Source::address(ip("2001:db8:1:2::1")), true, now);
        guess(&throttle, Source::address(ip("2001:db8:1:2::2")), true, now);
        let refused = throttle.check(Source::address(ip("2001:db8:1:2::3")).into(), now);
        assert!(matches!(refused, Err(Throttled::Exhausted { source, .. }) if source == one));
        assert_eq!(
            throttle.check(Source::address(ip("2001:db8:1:3::1")).into(), now),
            Ok(())
        );
    }

    #[test]
    fn loopback_is_throttled_like_any_address() {
        let throttle = LoginThrottle::new(1, WINDOW, 100);
        let now = Instant::now();
        let loopback = Source::address(IpAddr::from([127, 0, 0, 1]));
        guess(&throttle, loopback, true, now);
        assert!(throttle.check(loopback.into(), now).is_err());
    }

    #[test]
    fn the_refusal_says_how_long_to_wait_and_what_sets_the_limit() {
        let throttle = LoginThrottle::new(10, WINDOW, 100);
        let fatal = Throttled::Exhausted {
            source: v4(9),
            wait: Duration::from_millis(41_200),
        }
        .fatal(&throttle);
        assert_eq!(fatal.code, TOO_MANY_CONNECTIONS);
        assert_eq!(
            fatal.message,
            "too many failed logins from 192.0.2.9: try again in 42 s"
        );
        let hint = fatal.hint.unwrap();
        assert!(hint.contains("10 logins within 60 s"), "{hint}");
        assert!(hint.contains("login_failures_per_address"), "{hint}");
    }

    #[test]
    fn settings_of_zero_are_refused_naming_the_key() {
        let config = |text: &str| Config::parse(text, Default::default()).unwrap();
        let error = LoginThrottle::from_config(&config("login_failures_per_address = 0"))
            .err()
            .unwrap();
        assert!(error.contains("login_failures_per_address"), "{error}");
        let error = LoginThrottle::from_config(&config("login_failure_window_secs = 0"))
            .err()
            .unwrap();
        assert!(error.contains("login_failure_window_secs"), "{error}");
        let defaults = LoginThrottle::from_config(&config("")).unwrap();
        assert_eq!(defaults.failures_allowed, 10);
        assert_eq!(defaults.window, Duration::from_secs(60));
    }
}
