//! Campaigns and check-in rules as the program uses them: validated, each
//! holding its parsed schedule, compiled audience and durations. Code that
//! reads a rule never looks anything up beside it.

use std::time::Duration;

use super::model::{ApprovalMode, Assign, CampaignKind, OutcomeTags, Trigger};
use crate::audience::Audience;
use crate::domain::{LocalText, RuleKind, Schedule};

/// A `[[campaign]]`, resolved.
#[derive(Debug)]
pub struct Campaign {
    pub id: String,
    pub kind: CampaignKind,
    /// When its runs happen: its crontab, or the daily look for
    /// anniversaries at `trigger.at`; none for a campaign triggered by an
    /// import (`attribute_changed`).
    pub schedule: Option<Schedule>,
    pub trigger: Option<Trigger>,
    pub audience: Audience,
    pub template: String,
    pub approval: ApprovalMode,
    /// Staff ids who receive the approval request.
    pub approvers: Vec<String>,
    pub approval_timeout: Duration,
    pub voucher_pool: Option<String>,
    /// Hold a run whose template did not change since the last run and ask the approvers to update it.
    pub require_fresh_text: bool,
    /// Hold messages due on a day the business is closed (`business.closed`) until it opens.
    pub skip_closed_days: bool,
    /// `false` pauses the campaign for good (see `outreach campaigns pause`).
    pub enabled: bool,
}

/// A `[[checkin]]`, resolved.
#[derive(Debug)]
pub struct Checkin {
    pub id: String,
    pub audience: Audience,
    pub schedule: Schedule,
    pub assign: Assign,
    pub min_days_between_personal_contacts: u32,
    pub due_in: Duration,
    pub escalate_after: Duration,
    /// An overdue call goes back to the call list this long after its last
    /// day on time (always after its manager was told).
    pub expire_after: Duration,
    /// How often a `not_reached` call is retried before the task closes.
    pub max_attempts: u32,
    /// Why the call is suggested, shown to staff: one text, or one per language.
    pub reason: LocalText,
    /// Talking points for staff (template name, per locale).
    pub template: String,
    /// Tags added to the customer for each outcome.
    pub outcome_tags: OutcomeTags,
    /// `false` pauses the rule for good (see `outreach campaigns pause`).
    pub enabled: bool,
}

/// Every campaign and check-in rule of one configuration, in config order.
#[derive(Debug, Default)]
pub struct Rules {
    pub campaigns: Vec<Campaign>,
    pub checkins: Vec<Checkin>,
}

impl Rules {
    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    pub fn checkin(&self, id: &str) -> Option<&Checkin> {
        self.checkins.iter().find(|c| c.id == id)
    }

    /// The ids of every campaign and check-in rule (one id space), in config order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.campaigns
            .iter()
            .map(|c| c.id.as_str())
            .chain(self.checkins.iter().map(|c| c.id.as_str()))
    }

    /// Campaigns and check-in rules with `enabled = false`.
    pub fn disabled_ids(&self) -> impl Iterator<Item = &str> {
        let campaigns = self.campaigns.iter().filter(|c| !c.enabled);
        let checkins = self.checkins.iter().filter(|c| !c.enabled);
        campaigns
            .map(|c| c.id.as_str())
            .chain(checkins.map(|c| c.id.as_str()))
    }

    /// Every rule with a schedule: (id, its schedule, its kind).
    pub fn scheduled(&self) -> impl Iterator<Item = (&str, &Schedule, RuleKind)> {
        let campaigns = self
            .campaigns
            .iter()
            .filter_map(|c| Some((c.id.as_str(), c.schedule.as_ref()?, RuleKind::Campaign)));
        let checkins = self
            .checkins
            .iter()
            .map(|c| (c.id.as_str(), &c.schedule, RuleKind::Checkin));
        campaigns.chain(checkins)
    }

    /// Every rule's audience: (id, audience).
    pub fn audiences(&self) -> impl Iterator<Item = (&str, &Audience)> {
        let campaigns = self.campaigns.iter().map(|c| (c.id.as_str(), &c.audience));
        let checkins = self.checkins.iter().map(|c| (c.id.as_str(), &c.audience));
        campaigns.chain(checkins)
    }
}
