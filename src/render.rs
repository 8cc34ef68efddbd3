//! What one customer gets for one campaign: the template rendered with the
//! customer, the business, the voucher and a signed unsubscribe link, and the
//! email built from it. Used alike by delivery, `preview`, approval samples
//! and `check`, so what is previewed is exactly what is sent.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::{Value, context};

use crate::app::App;
use crate::config::Campaign;
use crate::context::{business_value, customer_value_on};
use crate::domain::Customer;
use crate::greeting::greeting;
use crate::templates::Rendered;
use crate::tokens::Purpose;

/// Unsubscribe links stay valid this long: people unsubscribe from old mails too.
const UNSUBSCRIBE_VALID_DAYS: i64 = 730;

/// A voucher as shown to the customer.
pub struct VoucherShown {
    pub code: String,
    pub value: String,
    pub expires: Option<NaiveDate>,
}

pub fn unsubscribe_url(app: &App, customer_id: i64, now: DateTime<Utc>) -> String {
    let token = app.signer.sign(
        Purpose::Unsubscribe,
        customer_id,
        now + Duration::days(UNSUBSCRIBE_VALID_DAYS),
    );
    app.link(&format!("/u/{token}"))
}

/// A date as the customer's locale writes it.
pub fn local_date(date: NaiveDate, locale: &str) -> String {
    match locale {
        "de" => date.format("%d.%m.%Y").to_string(),
        _ => date.format("%-d %B %Y").to_string(),
    }
}

pub fn render_campaign(
    app: &App,
    campaign: &Campaign,
    customer: &Customer,
    run_id: i64,
    voucher: Option<&VoucherShown>,
    now: DateTime<Utc>,
) -> Result<(Rendered, String)> {
    let locale = customer.locale.as_deref();
    let shown_locale = locale
        .filter(|l| {
            app.templates
                .locales(&campaign.template)
                .iter()
                .any(|x| x == l)
        })
        .unwrap_or(&app.settings().business.locale);
    let voucher_value = match voucher {
        Some(v) => context! {
            code => &v.code,
            value => &v.value,
            expires => v.expires.map(|d| local_date(d, shown_locale)),
        },
        None => Value::UNDEFINED,
    };
    let unsubscribe = unsubscribe_url(app, customer.id, now);
    // Date-dependent values (years as customer) as of the business's day at `now`.
    let today = now
        .with_timezone(&app.config.resolved.timezone)
        .date_naive();
    let mut ctx = context! {
        customer => customer_value_on(customer, today),
        greeting => greeting(customer, shown_locale, app.settings().business.address_form),
        business => business_value(&app.settings().business),
        unsubscribe_url => &unsubscribe,
        run => context! { id => run_id, campaign => &campaign.id },
    };
    if voucher.is_some() {
        ctx = context! { voucher => voucher_value, ..ctx };
    }
    let rendered = app
        .templates
        .render_email(&campaign.template, locale, &ctx)
        .with_context(|| format!("campaign {}: template {}", campaign.id, campaign.template))?;
    Ok((rendered, unsubscribe))
}

/// The voucher of a planned message, with what the pool says about it.
pub async fn voucher_for(
    app: &App,
    campaign: &Campaign,
    code: Option<&str>,
) -> Result<Option<VoucherShown>> {
    let (Some(pool_id), Some(code)) = (&campaign.voucher_pool, code) else {
        return Ok(None);
    };
    let pool = app
        .settings()
        .voucher_pools
        .iter()
        .find(|p| &p.id == pool_id);
    Ok(Some(VoucherShown {
        code: code.to_string(),
        value: pool.map(|p| p.value.clone()).unwrap_or_default(),
        expires: app.store.voucher_expiry(pool_id, code).await?,
    }))
}

/// A sample voucher for previews of voucher campaigns without a real code.
pub fn sample_voucher(app: &App, campaign: &Campaign, now: DateTime<Utc>) -> Option<VoucherShown> {
    let pool = app
        .settings()
        .voucher_pools
        .iter()
        .find(|p| Some(&p.id) == campaign.voucher_pool.as_ref())?;
    Some(VoucherShown {
        code: pool.pattern.clone().unwrap_or_else(|| "MUSTER-1234".into()),
        value: pool.value.clone(),
        expires: Some(
            now.with_timezone(&app.config.resolved.timezone)
                .date_naive()
                + chrono::Days::new(u64::from(pool.valid_days)),
        ),
    })
}
