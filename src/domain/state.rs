//! The states runs and outbox messages go through, as stored in the database.

use std::fmt;
use std::str::FromStr;

/// Where an outbox message stands (see `store::messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    Planned,
    Sending,
    Sent,
    Failed,
    Suppressed,
    Unknown,
}

impl MessageState {
    pub const ALL: [MessageState; 6] = [
        MessageState::Planned,
        MessageState::Sending,
        MessageState::Sent,
        MessageState::Failed,
        MessageState::Suppressed,
        MessageState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Planned => "planned",
            MessageState::Sending => "sending",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Suppressed => "suppressed",
            MessageState::Unknown => "unknown",
        }
    }
}

/// Where a run stands. A run in a finished state changes no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Planning,
    AwaitingApproval,
    Sending,
    Done,
    Cancelled,
    Expired,
    Skipped,
    /// Stopped by a person while planned or sending (`outreach runs stop`).
    Stopped,
}

impl RunState {
    pub const ALL: [RunState; 8] = [
        RunState::Planning,
        RunState::AwaitingApproval,
        RunState::Sending,
        RunState::Done,
        RunState::Cancelled,
        RunState::Expired,
        RunState::Skipped,
        RunState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Planning => "planning",
            RunState::AwaitingApproval => "awaiting_approval",
            RunState::Sending => "sending",
            RunState::Done => "done",
            RunState::Cancelled => "cancelled",
            RunState::Expired => "expired",
            RunState::Skipped => "skipped",
            RunState::Stopped => "stopped",
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunState::Planning | RunState::AwaitingApproval | RunState::Sending
        )
    }
}

/// Parses a stored or typed state name; the error lists the valid ones.
fn parse<T: Copy>(
    raw: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|s| name(*s) == raw)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|s| name(*s)).collect();
            format!(
                "\"{raw}\" is not a {what}; use one of: {}",
                names.join(", ")
            )
        })
}

impl FromStr for MessageState {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        parse(raw, &Self::ALL, Self::as_str, "message state")
    }
}

impl FromStr for RunState {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        parse(raw, &Self::ALL, Self::as_str, "run state")
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
