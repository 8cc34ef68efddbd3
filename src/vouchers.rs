//! Voucher pools: codes imported (`outreach import vouchers`) or generated
//! from a pattern, each given to at most one customer, at most
//! `per_customer` per customer and pool. When an imported pool runs dry the
//! affected messages are suppressed ("pool exhausted") and the admin gets one
//! email about it.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Days, Utc};
use rand::Rng;
use tracing::warn;

use crate::app::App;
use crate::config::VoucherPool;
use crate::store::Occasion;

/// Codes from the pattern alphabet: no 0/O or 1/I, which people misread.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn pool<'a>(app: &'a App, id: &str) -> Result<&'a VoucherPool> {
    app.settings()
        .voucher_pools
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| anyhow!("unknown voucher pool \"{id}\""))
}

/// A code for this customer, or why none can be had: "pool exhausted" (no
/// codes left) or "already received a code …" (their share taken).
///
/// With an `occasion` (a campaign on an anniversary) the customer gets one
/// code per occasion, whichever run of it gets there first; `per_customer`
/// counts the codes given without one.
pub async fn assign(
    app: &App,
    pool_id: &str,
    customer_id: i64,
    occasion: Option<&Occasion<'_>>,
    now: DateTime<Utc>,
) -> Result<Result<String, String>> {
    let pool = pool(app, pool_id)?;
    match occasion {
        Some(occasion) => {
            if let Some((code, run)) = app
                .store
                .occasion_code(pool_id, customer_id, occasion.key)
                .await?
            {
                return Ok(if run == Some(occasion.run_id) {
                    Ok(code)
                } else {
                    Err(format!(
                        "already received a code for this occasion{}",
                        run.map(|r| format!(" (run {r})")).unwrap_or_default()
                    ))
                });
            }
        }
        None => {
            if let Some(code) = app.store.unused_code_of(pool_id, customer_id).await? {
                return Ok(Ok(code));
            }
            if app.store.codes_held(pool_id, customer_id).await? >= i64::from(pool.per_customer) {
                return Ok(Err(format!("already received a code from pool {pool_id}")));
            }
        }
    }
    // Valid from the business's day (not the UTC date, a day behind before 01:00/02:00 in Berlin).
    let today = now
        .with_timezone(&app.config.resolved.timezone)
        .date_naive();
    let expires = today + Days::new(u64::from(pool.valid_days));
    if let Some(code) = app
        .store
        .claim_code(pool_id, customer_id, expires, occasion, now)
        .await?
    {
        return Ok(Ok(code));
    }
    if let Some(pattern) = &pool.pattern {
        for _ in 0..10 {
            let code = generate(pattern);
            if app
                .store
                .insert_assigned_code(pool_id, &code, customer_id, expires, occasion, now)
                .await?
            {
                return Ok(Ok(code));
            }
        }
        bail!(
            "voucher pool {pool_id}: could not generate an unused code in 10 tries; use a pattern with more X"
        );
    }
    notify_exhausted(app, pool_id, now).await;
    Ok(Err("pool exhausted".into()))
}

fn exhausted_notice(pool_id: &str) -> String {
    format!("pool_exhausted:{pool_id}")
}

fn generate(pattern: &str) -> String {
    let mut rng = rand::rng();
    pattern
        .chars()
        .map(|c| {
            if c == 'X' {
                ALPHABET[rng.random_range(0..ALPHABET.len())] as char
            } else {
                c
            }
        })
        .collect()
}

async fn notify_exhausted(app: &App, pool_id: &str, now: DateTime<Utc>) {
    let result = async {
        if !app
            .store
            .claim_notice(&exhausted_notice(pool_id), now)
            .await?
        {
            return Ok(());
        }
        let to = app.settings().business.admin_email();
        // The admin reads it in their language if they are on the staff list.
        let reader = app
            .settings()
            .staff
            .iter()
            .find(|s| to.contains(&s.email))
            .map(|s| crate::tasks::digest::staff_locale(app, s));
        let rendered = app.templates.render_staff_email(
            "voucher_pool_empty",
            reader,
            &minijinja::context! { pool => pool_id },
        )?;
        let message = crate::message::compose::staff_email(
            &app.config,
            &to,
            &rendered.subject,
            &rendered.text,
            &rendered.html,
            None,
        )?;
        let mut mailer = crate::mailer::MailerSettings::from_config(&app.config).open()?;
        match mailer.send(&message).await {
            crate::mailer::SendResult::Sent(_) => Ok(()),
            other => Err(anyhow!("{other:?}")),
        }
    }
    .await;
    if let Err(e) = result {
        warn!(pool = pool_id, error = %format!("{e:#}"), "could not send the pool-exhausted notice");
    }
}

#[derive(Debug, Default)]
pub struct VoucherImport {
    pub added: usize,
    pub rejected: Vec<(u64, String)>,
}

/// Reads codes (one per line, or a CSV column `code`) and adds them to a pool.
pub async fn import(app: &App, pool_id: &str, path: &Path) -> Result<VoucherImport> {
    pool(app, pool_id)?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read (is it UTF-8?)", path.display()))?;
    let text = text.trim_start_matches('\u{feff}');
    let mut lines = text.lines().enumerate().map(|(i, l)| (i as u64 + 1, l));
    let first = text.lines().next().unwrap_or("");
    let delimiter = if first.contains(';') { ';' } else { ',' };
    let header: Vec<String> = first
        .split(delimiter)
        .map(|h| h.trim().trim_matches('"').to_lowercase())
        .collect();
    let column = header.iter().position(|h| h == "code");
    if column.is_some() {
        lines.next();
    } else if header.len() > 1 {
        // A CSV without a `code` column: importing its rows whole would add
        // the header and every "1;ABC" as codes nobody can redeem.
        bail!(
            "{}: line 1 has several columns but none is named \"code\"; name the column with the codes \"code\", or give one code per line",
            path.display()
        );
    }
    let mut report = VoucherImport::default();
    let mut seen = std::collections::HashMap::new();
    let mut codes = Vec::new();
    let mut lines_of = Vec::new();
    for (line, raw) in lines {
        let code = match column {
            Some(i) => raw
                .split(delimiter)
                .nth(i)
                .unwrap_or("")
                .trim()
                .trim_matches('"'),
            None => raw.trim(),
        };
        if code.is_empty() {
            continue;
        }
        if code.len() > 64 || code.chars().any(char::is_whitespace) {
            report.rejected.push((
                line,
                format!("\"{code}\" is not a code (no spaces, at most 64 characters)"),
            ));
        } else if let Some(first) = seen.insert(code.to_string(), line) {
            report
                .rejected
                .push((line, format!("duplicate of line {first}")));
        } else {
            codes.push(code.to_string());
            lines_of.push(line);
        }
    }
    let existing = app.store.add_codes(pool_id, &codes, Utc::now()).await?;
    if codes.len() > existing.len() {
        // Refilled: the next time the pool runs dry, the admin hears of it again.
        app.store.clear_notice(&exhausted_notice(pool_id)).await?;
    }
    for (code, line) in codes.iter().zip(lines_of) {
        if existing.contains(code) {
            report
                .rejected
                .push((line, format!("\"{code}\" is already in pool {pool_id}")));
        } else {
            report.added += 1;
        }
    }
    report.rejected.sort_by_key(|r| r.0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_codes_follow_the_pattern() {
        let code = super::generate("LINDE-XXXX-XXXX");
        assert_eq!(code.len(), 15);
        assert!(code.starts_with("LINDE-"));
        assert_eq!(&code[10..11], "-");
        let random: String = code[6..10].chars().chain(code[11..].chars()).collect();
        assert!(
            random.chars().all(|c| super::ALPHABET.contains(&(c as u8))),
            "{code}"
        );
        assert_ne!(super::generate("XXXXXXXX"), super::generate("XXXXXXXX"));
    }
}
