//! The states runs and outbox messages go through, the kinds of rules and
//! the outcomes of calls, as stored in the database.

use crate::store::text_enum;

text_enum! {
    /// Where an outbox message stands (see `store::messages`).
    pub enum MessageState ("message state") {
        Planned = "planned",
        Sending = "sending",
        Sent = "sent",
        Failed = "failed",
        Suppressed = "suppressed",
        Unknown = "unknown",
    }
}

text_enum! {
    /// Where a run stands. A run in a finished state changes no more.
    pub enum RunState ("run state") {
        Planning = "planning",
        AwaitingApproval = "awaiting_approval",
        Sending = "sending",
        Done = "done",
        Cancelled = "cancelled",
        Expired = "expired",
        Skipped = "skipped",
        /// Stopped by a person while planned or sending (`outreach runs stop`).
        Stopped = "stopped",
    }
}

impl RunState {
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            RunState::Planning | RunState::AwaitingApproval | RunState::Sending
        )
    }
}

text_enum! {
    /// What a run is of: a campaign emails customers, a check-in puts them
    /// on the call list.
    pub enum RuleKind ("rule kind") {
        Campaign = "campaign",
        Checkin = "checkin",
    }
}

text_enum! {
    /// The outcomes staff can record after a call.
    pub enum CallOutcome ("call outcome") {
        Reached = "reached",
        NotReached = "not_reached",
        Callback = "callback",
        NeedsHelp = "needs_help",
        DoNotCall = "do_not_call",
    }
}
