//! Names for namespaces and interfaces that no other test, test binary or
//! lab on the machine will pick.
//!
//! A name is `<prefix>-<pid><counter>`: the pid (base 36, always 5 digits)
//! separates processes, the counter (base 36) separates names within one
//! process, and the `-` keeps prefixes from running into the pid, so two
//! different (prefix, pid, counter) triples never spell the same name.

use std::sync::atomic::{AtomicU64, Ordering};

/// Longest interface name Linux accepts (`IFNAMSIZ` - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Width of the pid part: 36^5 exceeds the kernel's largest `pid_max` (2^22).
const PID_DIGITS: usize = 5;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique on this machine, at most [`MAX_NAME_LEN`] bytes, made of
/// `[a-z0-9-]` plus the prefix: valid for a network namespace, a network
/// interface and a wg-quick config file stem alike.
///
/// Only the ASCII letters and digits of `prefix` are kept, and it is cut short
/// when the name would not fit; it is a reading aid, not part of uniqueness.
pub fn unique_name(prefix: &str) -> String {
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    compose(prefix, std::process::id(), counter)
}

fn compose(prefix: &str, pid: u32, counter: u64) -> String {
    let pid = base36(u64::from(pid));
    let pid = format!("{pid:0>PID_DIGITS$}");
    let counter = base36(counter);
    let room = MAX_NAME_LEN.saturating_sub(1 + pid.len() + counter.len());
    let prefix: String = prefix
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(room)
        .collect();
    format!("{prefix}-{pid}{counter}")
}

fn base36(mut value: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).expect("base36 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn base36_spells_numbers() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(4_194_304), "2hwcg");
    }

    #[test]
    fn short_prefix_is_kept_whole() {
        assert_eq!(compose("wg", 1234, 0), "wg-000ya0");
        assert_eq!(compose("wg", 1234, 37), "wg-000ya11");
    }

    #[test]
    fn names_never_exceed_the_interface_limit() {
        for prefix in ["", "a", "seedhost", "a-very-long-prefix-indeed"] {
            for pid in [1, 99_999, 4_194_304, u32::MAX] {
                for counter in [0, 35, 1_000_000, u64::from(u32::MAX)] {
                    let name = compose(prefix, pid, counter);
                    assert!(name.len() <= MAX_NAME_LEN, "{name:?} is too long");
                    assert!(!name.is_empty());
                }
            }
        }
    }

    #[test]
    fn names_use_only_interface_safe_characters() {
        let name = compose("we/ird: na.me", 42, 7);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name:?}"
        );
        assert!(name.starts_with("weirdna"), "{name:?}");
    }

    #[test]
    fn prefixes_do_not_run_into_pids() {
        // Without the separator both would spell "ab00001x".
        let a = compose("a", 11 * 36_u32.pow(4), 36 + 33);
        let ab = compose("ab", 1, 33);
        assert_eq!((a.as_str(), ab.as_str()), ("a-b00001x", "ab-00001x"));
    }

    #[test]
    fn names_in_one_process_are_distinct() {
        let names: HashSet<String> = (0..10_000).map(|_| unique_name("t")).collect();
        assert_eq!(names.len(), 10_000);
    }
}
