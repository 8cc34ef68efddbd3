//! `outreach check`: the config loaded and validated (that already happened
//! before we get here, or the command failed with every problem listed);
//! what is left is showing the admin what will happen next.

use anyhow::Result;
use chrono::Utc;

use crate::config::Config;

pub fn run(config: &Config) -> Result<()> {
    let s = &config.settings;
    let tz = config.resolved.timezone;
    println!("{}: configuration is valid", config.path.display());
    println!(
        "  {} campaign(s), {} check-in rule(s), {} staff, {} voucher pool(s)",
        s.campaigns.len(),
        s.checkins.len(),
        s.staff.len(),
        s.voucher_pools.len()
    );
    let ids = s
        .campaigns
        .iter()
        .map(|c| c.id.as_str())
        .chain(s.checkins.iter().map(|c| c.id.as_str()));
    let now = Utc::now();
    for id in ids {
        match config.resolved.schedules.get(id) {
            Some(schedule) => {
                let next: Vec<String> = schedule
                    .upcoming(now, 3)
                    .iter()
                    .map(|t| {
                        t.with_timezone(&tz)
                            .format("%a %Y-%m-%d %H:%M %Z")
                            .to_string()
                    })
                    .collect();
                println!(
                    "  {id} ({}): next {}",
                    schedule.expression(),
                    next.join(", ")
                );
            }
            None => println!("  {id}: triggered by customer data, not a schedule"),
        }
    }
    Ok(())
}
