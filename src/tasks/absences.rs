//! Who is away: absences written in the config (`[[staff]] absences`) and
//! those recorded from the command line (`outreach staff away`), merged.
//! Everything that asks whether someone works on a day asks [`Absences`].

use std::collections::HashMap;

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::app::App;
use crate::config::Staff;

/// One absence, first and last day included.
#[derive(Debug, Clone, Serialize)]
pub struct Absence {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub note: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// Written in the config; changed there.
    Config,
    /// Recorded with `outreach staff away` (by whom); ended with `staff back`.
    Recorded { id: i64, by: String },
}

impl Absence {
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// Every staff member's absences, the config's and the database's.
#[derive(Debug, Default, Clone)]
pub struct Absences(HashMap<String, Vec<Absence>>);

impl Absences {
    /// Everyone's absences. (All of them: a few a year per person, and
    /// planning may look at any day.)
    pub async fn load(app: &App) -> Result<Absences> {
        let mut all: HashMap<String, Vec<Absence>> = HashMap::new();
        for staff in &app.settings().staff {
            all.entry(staff.id.clone())
                .or_default()
                .extend(staff.absences.iter().map(|a| Absence {
                    from: a.from,
                    to: a.to,
                    note: String::new(),
                    source: Source::Config,
                }));
        }
        for a in app.store.absences().await? {
            all.entry(a.staff_id).or_default().push(Absence {
                from: a.from_on,
                to: a.to_on,
                note: a.note,
                source: Source::Recorded {
                    id: a.id,
                    by: a.created_by,
                },
            });
        }
        for list in all.values_mut() {
            list.sort_by_key(|a| (a.from, a.to));
        }
        Ok(Absences(all))
    }

    /// A staff member's absences, merged, by first day.
    pub fn of(&self, staff_id: &str) -> &[Absence] {
        self.0.get(staff_id).map(Vec::as_slice).unwrap_or_default()
    }

    /// The absence that covers `day`, if any.
    pub fn on(&self, staff_id: &str, day: NaiveDate) -> Option<&Absence> {
        self.of(staff_id).iter().find(|a| a.covers(day))
    }

    pub fn is_absent(&self, staff_id: &str, day: NaiveDate) -> bool {
        self.on(staff_id, day).is_some()
    }
}

fn member<'a>(app: &'a App, id: &str) -> Result<&'a Staff> {
    match app.settings().staff.iter().find(|s| s.id == id) {
        Some(staff) => Ok(staff),
        None => {
            let ids: Vec<&str> = app.settings().staff.iter().map(|s| s.id.as_str()).collect();
            bail!(
                "no staff member \"{id}\" in the config; staff ids: {}",
                ids.join(", ")
            )
        }
    }
}

/// Today in the staff member's own time zone.
pub fn today_of(app: &App, staff_id: &str, now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&crate::tasks::staff_zone(app, staff_id))
        .date_naive()
}

/// `outreach staff away`: records an absence; their open tasks move to
/// colleagues once the daemon sees it (at once, if it is running).
pub async fn away(
    app: &App,
    staff_id: &str,
    from: NaiveDate,
    to: NaiveDate,
    note: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Absence> {
    member(app, staff_id)?;
    if to < from {
        bail!("--to {to} is before --from {from}");
    }
    let today = today_of(app, staff_id, now);
    if to < today {
        bail!("--to {to} is in the past (today is {today} for {staff_id}); nothing to record");
    }
    let id = app
        .store
        .add_absence(staff_id, from, to, note, by, now)
        .await?;
    Ok(Absence {
        from,
        to,
        note: note.to_string(),
        source: Source::Recorded {
            id,
            by: by.to_string(),
        },
    })
}

/// `outreach staff back`: ends the recorded absences in progress today;
/// returns them as they were. An absence written in the config stays.
pub async fn back(app: &App, staff_id: &str, now: DateTime<Utc>) -> Result<Vec<Absence>> {
    member(app, staff_id)?;
    let today = today_of(app, staff_id, now);
    let absences = Absences::load(app).await?;
    let covering: Vec<&Absence> = absences
        .of(staff_id)
        .iter()
        .filter(|a| a.covers(today))
        .collect();
    let Some(first) = covering.first() else {
        bail!("{staff_id} is not away today ({today}); nothing changed");
    };
    let mut ended = Vec::new();
    for absence in &covering {
        if let Source::Recorded { id, .. } = absence.source {
            app.store.end_absence(id, today).await?;
            ended.push((*absence).clone());
        }
    }
    if ended.is_empty() {
        bail!(
            "{staff_id} is away {} – {} as written in the config ([[staff]] absences); change it there and reload",
            first.from,
            first.to
        );
    }
    Ok(ended)
}
