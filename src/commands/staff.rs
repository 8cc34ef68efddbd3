//! `staff list|away|back`.

use anyhow::Result;
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::app::App;
use crate::tasks::absences::{self, Absence, Absences, Source};

/// How an absence reads in a list: `2026-12-01 – 2026-12-05 (Urlaub; recorded by …)`.
pub fn absence_text(a: &Absence) -> String {
    let source = match &a.source {
        Source::Config => "in the config".to_string(),
        Source::Recorded { by, .. } => format!("recorded by {by}"),
    };
    let note = if a.note.is_empty() {
        String::new()
    } else {
        format!("{}; ", a.note)
    };
    format!("{} – {} ({note}{source})", a.from, a.to)
}

#[derive(Serialize)]
struct Member<'a> {
    id: &'a str,
    name: &'a str,
    email: &'a str,
    timezone: String,
    days: &'a [String],
    digest_at: &'a str,
    daily_capacity: u32,
    manager: Option<&'a str>,
    /// Today in their time zone.
    today: NaiveDate,
    away_today: bool,
    /// Absences that have not ended before today.
    absences: Vec<&'a Absence>,
}

pub async fn list(app: &App, json: bool) -> Result<()> {
    let now = Utc::now();
    let absences = Absences::load(app).await?;
    let members: Vec<Member> = app
        .settings()
        .staff
        .iter()
        .map(|s| {
            let today = absences::today_of(app, &s.id, now);
            Member {
                id: &s.id,
                name: &s.name,
                email: &s.email,
                timezone: crate::tasks::staff_zone(app, &s.id).name().to_string(),
                days: &s.days,
                digest_at: &s.digest_at,
                daily_capacity: s.daily_capacity,
                manager: s.manager.as_deref(),
                today,
                away_today: absences.is_absent(&s.id, today),
                absences: absences
                    .of(&s.id)
                    .iter()
                    .filter(|a| a.to >= today)
                    .collect(),
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&members)?);
        return Ok(());
    }
    for m in &members {
        println!(
            "{:<12} {} <{}>  {}  {}  digest {}  up to {} calls a day{}",
            m.id,
            m.name,
            m.email,
            m.timezone,
            m.days.join(","),
            m.digest_at,
            m.daily_capacity,
            m.manager
                .map(|x| format!("  manager {x}"))
                .unwrap_or_default()
        );
        if m.away_today {
            println!("             AWAY today ({})", m.today);
        }
        for a in &m.absences {
            println!("             away {}", absence_text(a));
        }
    }
    Ok(())
}

pub async fn away(app: &App, id: &str, from: NaiveDate, to: NaiveDate, note: &str) -> Result<()> {
    let absence = absences::away(
        app,
        id,
        from,
        to,
        note.trim(),
        &super::by_whom(),
        Utc::now(),
    )
    .await?;
    println!(
        "{id} away {}: gets no new call tasks then; open ones move to colleagues (the running daemon does it at once)",
        absence_text(&absence)
    );
    Ok(())
}

pub async fn back(app: &App, id: &str) -> Result<()> {
    let now = Utc::now();
    for absence in absences::back(app, id, now).await? {
        println!(
            "{id} is back from today; ended the absence {}",
            absence_text(&absence)
        );
    }
    let today = absences::today_of(app, id, now);
    if let Some(still) = Absences::load(app).await?.on(id, today) {
        println!("note: {id} is still away {}", absence_text(still));
    }
    Ok(())
}
