//! Counters for `GET /metrics` (Prometheus text format). Queue depth comes
//! from the database at scrape time; sends, failures and latency are
//! counted by this process.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::Outcome;

/// Upper bounds of the send-latency histogram, in seconds.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

#[derive(Default)]
pub struct DeliveryMetrics {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    suppressed: AtomicU64,
    unknown: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl DeliveryMetrics {
    pub fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Sent { .. } => &self.sent,
            Outcome::Failed { .. } => &self.failed,
            Outcome::Retry { reply: Some(_), .. } => &self.retried,
            Outcome::Retry { reply: None, .. } | Outcome::Waiting { .. } => return,
            Outcome::Suppressed { .. } => &self.suppressed,
            Outcome::Unknown { .. } => &self.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Appends this process's counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str(
            "# HELP outreach_send_attempts_total Send attempts by this process, by result.\n",
        );
        out.push_str("# TYPE outreach_send_attempts_total counter\n");
        for (result, counter) in [
            ("sent", &self.sent),
            ("failed_permanent", &self.failed),
            ("failed_temporary", &self.retried),
            ("suppressed_at_send", &self.suppressed),
            ("unknown", &self.unknown),
        ] {
            let _ = writeln!(
                out,
                "outreach_send_attempts_total{{result=\"{result}\"}} {}",
                get(counter)
            );
        }
        out.push_str(
            "# HELP outreach_send_latency_seconds Time for one SMTP transaction or file write.\n",
        );
        out.push_str("# TYPE outreach_send_latency_seconds histogram\n");
        for (bucket, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "outreach_send_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "outreach_send_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "outreach_send_latency_seconds_sum {}",
            get(&self.latency_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "outreach_send_latency_seconds_count {count}");
    }
}
