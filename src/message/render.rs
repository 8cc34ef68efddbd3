//! What one customer gets for one campaign: the template rendered with the
//! customer, the business, the voucher and a signed unsubscribe link, and the
//! email built from it. Used alike by delivery, `preview` and approval
//! samples, so what is previewed is exactly what is sent — except that a
//! sample's unsubscribe link acts on nobody.

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::{Value, context};

use crate::app::App;
use crate::config::{Campaign, CampaignKind, Config};
use crate::context::{business_value, customer_value_on};
use crate::domain::Customer;
use crate::domain::LocalText;
use crate::message::greeting::greeting;
use crate::message::templates::{Fragment, Rendered};
use crate::tokens::Purpose;

/// Unsubscribe links stay valid this long: people unsubscribe from old mails too.
const UNSUBSCRIBE_VALID_DAYS: i64 = 730;

/// The token in the unsubscribe link of a sample shown to approvers: it
/// stands for no customer, and the unsubscribe page says so.
pub const SAMPLE_TOKEN: &str = "sample";

/// A voucher as shown to the customer.
pub struct VoucherShown {
    pub code: String,
    /// What it is worth, in the customer's language.
    pub value: LocalText,
    pub expires: Option<NaiveDate>,
}

/// The customer's own unsubscribe link, signed for them, naming the kind
/// of email it comes with: the link opens their preferences, and a
/// one-click unsubscribe (RFC 8058) with it ends only that kind.
pub fn unsubscribe_url(
    app: &App,
    customer_id: i64,
    kind: CampaignKind,
    now: DateTime<Utc>,
) -> String {
    let token = app.signer.sign_for(
        Purpose::Unsubscribe,
        customer_id,
        kind.as_str(),
        now + Duration::days(UNSUBSCRIBE_VALID_DAYS),
    );
    app.link(&format!("/u/{token}"))
}

/// The unsubscribe link of a sample: it acts on nobody.
pub fn sample_unsubscribe_url(app: &App) -> String {
    app.link(&format!("/u/{SAMPLE_TOKEN}"))
}

/// A date as the reader's locale writes it.
pub fn local_date(date: NaiveDate, locale: &str) -> String {
    match locale {
        "de" => date.format("%d.%m.%Y").to_string(),
        _ => date.format("%-d %B %Y").to_string(),
    }
}

/// A moment as the reader's locale writes it, in the business time zone.
pub fn local_datetime(config: &Config, at: DateTime<Utc>, locale: &str) -> String {
    let local = at.with_timezone(&config.resolved.timezone);
    let time = local.format("%H:%M");
    match locale {
        "de" => format!("{}, {time} Uhr", local_date(local.date_naive(), locale)),
        _ => format!("{}, {time}", local_date(local.date_naive(), locale)),
    }
}

/// The customer email of a campaign, with `unsubscribe` as its unsubscribe link.
pub fn render_campaign(
    app: &App,
    campaign: &Campaign,
    customer: &Customer,
    run_id: i64,
    voucher: Option<&VoucherShown>,
    unsubscribe: &str,
    now: DateTime<Utc>,
) -> Result<Rendered> {
    let (ctx, locale) =
        campaign_context(app, campaign, customer, run_id, voucher, unsubscribe, now);
    with_campaign(campaign, || {
        app.templates
            .render_email(&campaign.template, Some(&locale), &ctx)
    })
}

/// A campaign's email as a sample for approvers: its body and footer, with
/// the sample's unsubscribe link, which acts on nobody.
pub fn render_sample(
    app: &App,
    campaign: &Campaign,
    customer: &Customer,
    run_id: i64,
    voucher: Option<&VoucherShown>,
    now: DateTime<Utc>,
) -> Result<(Rendered, Fragment)> {
    let unsubscribe = sample_unsubscribe_url(app);
    let (ctx, locale) =
        campaign_context(app, campaign, customer, run_id, voucher, &unsubscribe, now);
    with_campaign(campaign, || {
        app.templates
            .render_email_parts(&campaign.template, Some(&locale), &ctx)
    })
}

/// A rendering's error with the campaign and template it was for.
fn with_campaign<T>(campaign: &Campaign, render: impl FnOnce() -> Result<T>) -> Result<T> {
    render().with_context(|| format!("campaign {}: template {}", campaign.id, campaign.template))
}

/// What a campaign's template sees for one customer, and the language the
/// customer gets it in.
fn campaign_context(
    app: &App,
    campaign: &Campaign,
    customer: &Customer,
    run_id: i64,
    voucher: Option<&VoucherShown>,
    unsubscribe: &str,
    now: DateTime<Utc>,
) -> (Value, String) {
    let business = &app.settings().business;
    let locale = app
        .templates
        .locale_for(&campaign.template, "md", customer.locale.as_deref());
    // Date-dependent values (years as customer) as of the business's day at `now`.
    let today = now
        .with_timezone(&app.config.resolved.timezone)
        .date_naive();
    let mut ctx = context! {
        customer => customer_value_on(customer, today),
        greeting => greeting(customer, &locale, business.address_form),
        business => business_value(business),
        unsubscribe_url => unsubscribe,
        run => context! { id => run_id, campaign => &campaign.id },
    };
    if let Some(v) = voucher {
        ctx = context! {
            voucher => context! {
                code => &v.code,
                value => v.value.get(Some(&locale), &business.locale),
                expires => v.expires.map(|d| local_date(d, &locale)),
            },
            ..ctx
        };
    }
    (ctx, locale)
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
        value: pool
            .map(|p| p.value.clone())
            .unwrap_or(LocalText::Same(String::new())),
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
