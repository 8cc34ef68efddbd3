//! Who takes calls on which day, and how full each person's list is.
//!
//! A staff member works on a day that is one of their `days`, not inside one
//! of their absences (the config's and those recorded with `outreach staff
//! away`) and not a closing day of the business, judged in their own time
//! zone. Their *list* for a day is every open task due that day or
//! earlier: calls left over from earlier days count against the day's
//! capacity, so someone who does not call gets no new calls.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};

use crate::app::App;
use crate::config::{Staff, StaffRules};
use crate::tasks::absences::Absences;

/// How far ahead a working day is searched for.
pub const HORIZON_DAYS: u64 = 60;

/// A staff member and their parsed working pattern.
#[derive(Clone, Copy)]
pub struct Member<'a> {
    pub staff: &'a Staff,
    pub rules: &'a StaffRules,
}

impl Member<'_> {
    pub fn id(&self) -> &str {
        &self.staff.id
    }

    /// Today in the staff member's own time zone.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.rules.timezone).date_naive()
    }

    fn capacity(&self) -> i64 {
        i64::from(self.staff.daily_capacity)
    }
}

/// The staff, their open tasks per due day and which digests went out.
pub struct Roster<'a> {
    app: &'a App,
    now: DateTime<Utc>,
    members: Vec<Member<'a>>,
    absences: Absences,
    load: HashMap<String, BTreeMap<NaiveDate, i64>>,
    digests_sent: HashSet<(String, NaiveDate)>,
}

impl<'a> Roster<'a> {
    pub async fn load(app: &'a App, now: DateTime<Utc>) -> Result<Roster<'a>> {
        let rules = &app.config.resolved.staff;
        let members = app
            .settings()
            .staff
            .iter()
            .filter_map(|staff| rules.get(&staff.id).map(|rules| Member { staff, rules }))
            .collect();
        let mut load: HashMap<String, BTreeMap<NaiveDate, i64>> = HashMap::new();
        for (staff, day, n) in app.store.open_task_load().await? {
            *load.entry(staff).or_default().entry(day).or_default() += n;
        }
        // Every zone's today is at most a day either side of UTC's.
        let since = now.date_naive() - Days::new(2);
        let digests_sent = app.store.digests_since(since).await?.into_iter().collect();
        Ok(Roster {
            app,
            now,
            members,
            absences: Absences::load(app).await?,
            load,
            digests_sent,
        })
    }

    pub fn members(&self) -> &[Member<'a>] {
        &self.members
    }

    pub fn member(&self, id: &str) -> Option<Member<'a>> {
        self.members.iter().copied().find(|m| m.id() == id)
    }

    pub fn is_absent(&self, m: Member<'_>, day: NaiveDate) -> bool {
        self.absences.is_absent(m.id(), day)
    }

    /// Whether `m` takes calls on `day`.
    pub fn works_on(&self, m: Member<'_>, day: NaiveDate) -> bool {
        m.rules.days.contains(&day.weekday())
            && !self.is_absent(m, day)
            && !self.app.config.resolved.closed.is_closed(day)
    }

    /// The first day after `day` on which `m` works.
    pub fn next_working_day(&self, m: Member<'_>, day: NaiveDate) -> Option<NaiveDate> {
        (1..=HORIZON_DAYS)
            .map(|i| day + Days::new(i))
            .find(|d| self.works_on(m, *d))
    }

    /// The first working day from `day` on (`day` itself if one).
    pub fn working_day_from(&self, m: Member<'_>, day: NaiveDate) -> Option<NaiveDate> {
        if self.works_on(m, day) {
            Some(day)
        } else {
            self.next_working_day(m, day)
        }
    }

    /// The next day `m` calls from their list: today until today's digest
    /// has gone out, then the next working day.
    pub fn next_list_day(&self, m: Member<'_>) -> Option<NaiveDate> {
        let today = m.today(self.now);
        if self.works_on(m, today) && !self.digests_sent.contains(&(m.id().to_string(), today)) {
            Some(today)
        } else {
            self.next_working_day(m, today)
        }
    }

    /// The day whose list is filled now: the next list day, but nothing
    /// while `m` is away (their regulars meanwhile go to colleagues).
    pub fn plan_day(&self, m: Member<'_>) -> Option<NaiveDate> {
        if self.is_absent(m, m.today(self.now)) {
            return None;
        }
        self.next_list_day(m)
    }

    /// Open tasks due on `day` or earlier.
    pub fn list_size(&self, staff: &str, day: NaiveDate) -> i64 {
        self.load
            .get(staff)
            .map(|days| days.range(..=day).map(|(_, n)| n).sum())
            .unwrap_or(0)
    }

    /// Places left on the list for `day`.
    pub fn room(&self, m: Member<'_>, day: NaiveDate) -> i64 {
        (m.capacity() - self.list_size(m.id(), day)).max(0)
    }

    pub fn open_count(&self, staff: &str) -> i64 {
        self.load
            .get(staff)
            .map(|days| days.values().sum())
            .unwrap_or(0)
    }

    /// Open calls from before today.
    pub fn overdue_count(&self, m: Member<'_>) -> i64 {
        self.list_size(m.id(), m.today(self.now) - Days::new(1))
    }

    /// Their calls from earlier days fill a whole day's capacity: they get
    /// no new ones, and the overdue ones go to colleagues.
    pub fn piled_up(&self, m: Member<'_>) -> bool {
        let overdue = self.overdue_count(m);
        overdue > 0 && overdue >= m.capacity()
    }

    /// Who keeps their regulars and follow-ups on `day`: on staff, taking
    /// calls, and not away (a day off is no absence).
    pub fn present_on(&self, day: NaiveDate) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.capacity() > 0 && !self.is_absent(**m, day))
            .map(|m| m.id().to_string())
            .collect()
    }

    /// A colleague who works on `day`: not piled up first, then the one
    /// with the most room, the fewest open calls, the smallest id.
    /// With `need_room`, only someone with room that day.
    pub fn colleague_on(
        &self,
        day: NaiveDate,
        except: &str,
        need_room: bool,
    ) -> Option<Member<'a>> {
        self.members
            .iter()
            .copied()
            .filter(|m| m.id() != except && self.works_on(*m, day))
            .filter(|m| !need_room || self.room(*m, day) > 0)
            .min_by_key(|m| {
                (
                    self.piled_up(*m),
                    -self.room(*m, day),
                    self.open_count(m.id()),
                    m.id().to_string(),
                )
            })
    }

    pub fn book(&mut self, staff: &str, day: NaiveDate) {
        *self
            .load
            .entry(staff.to_string())
            .or_default()
            .entry(day)
            .or_default() += 1;
    }

    pub fn unbook(&mut self, staff: &str, day: NaiveDate) {
        if let Some(n) = self.load.get_mut(staff).and_then(|days| days.get_mut(&day)) {
            *n -= 1;
        }
    }
}
