//! Waits that only time settles, in one place. The daemon uses the
//! production values; tests of the real binary shorten them through
//! `OUTREACH_TEST_LEASE` instead of rewriting rows behind its back. That
//! variable is for tests only (docs/development.md), not part of the config:
//! no operator needs a lease other than the production one.

use std::sync::OnceLock;

use chrono::Duration;

/// The variable a test sets to shorten [`Timings::lease`] (e.g. `20s`).
pub const LEASE_VAR: &str = "OUTREACH_TEST_LEASE";

/// The production lease: a claim older than this belongs to a daemon that died.
const LEASE: Duration = Duration::minutes(10);

/// The shortest lease a test may set: a daemon retries planning its own run
/// 10 s before the lease ends, so a lease must leave room for that.
const SHORTEST_LEASE: Duration = Duration::seconds(20);

pub struct Timings {
    /// How long a claim on messages or on planning a run holds.
    pub lease: Duration,
}

/// The timings of this process, read once.
pub fn get() -> &'static Timings {
    static TIMINGS: OnceLock<Timings> = OnceLock::new();
    TIMINGS.get_or_init(|| {
        from_var(std::env::var(LEASE_VAR).ok().as_deref()).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn from_var(lease: Option<&str>) -> Result<Timings, String> {
    let Some(text) = lease else {
        return Ok(Timings { lease: LEASE });
    };
    let lease = humantime::parse_duration(text)
        .ok()
        .and_then(|d| Duration::from_std(d).ok())
        .filter(|d| *d >= SHORTEST_LEASE)
        .ok_or_else(|| {
            format!("{LEASE_VAR}={text:?}: not a duration of at least 20s (e.g. \"30s\"); unset it for the production lease")
        })?;
    Ok(Timings { lease })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_the_production_one_unless_a_test_shortens_it() {
        assert_eq!(from_var(None).unwrap().lease, Duration::minutes(10));
        assert_eq!(from_var(Some("20s")).unwrap().lease, Duration::seconds(20));
        for bad in ["5s", "soon", ""] {
            let err = from_var(Some(bad)).err().unwrap();
            assert!(
                err.contains(LEASE_VAR) && err.contains("at least 20s"),
                "{err}"
            );
        }
    }
}
