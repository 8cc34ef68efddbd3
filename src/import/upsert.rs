//! Parsed rows → customer writes: finding the customer a row means, applying
//! the row's columns, and the rules that keep objections in force.
//!
//! Consent and objections: a "yes" gives consent to someone who has none;
//! a "no" withdraws it and, for someone who had it, records an objection
//! (with the row's `consent_source`). An objection — from this import, the
//! link in an email, `customers unsubscribe` or `customers do-not-call` —
//! is never undone by "yes": only a consent *date* later than the
//! objection lifts it. The report lists both the rows that lifted one and
//! the rows whose "yes" an objection overrode.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::columns::Field;
use super::row::{Consent, Row};
use super::{AttributeChange, ImportReport};
use crate::domain::{Attributes, Channel, Customer, Email, NewObjection, Objection, Tags};
use crate::store::{CustomerWrite, NewEvent, Store};

pub fn external_id_suppression_key(external_id: &str) -> String {
    format!("external_id:{}", crate::domain::sha256_hex(external_id))
}

/// What every row of one import shares.
pub struct Batch<'a> {
    pub dry_run: bool,
    pub default_consent_source: &'a str,
    /// Who runs the import (recorded with the objections a "no" makes).
    pub recorded_by: &'a str,
    /// The file's name, for history entries ("line 7 of kunden.csv").
    pub file: &'a str,
    pub now: DateTime<Utc>,
}

/// Looks up the chunk's existing customers and turns each row into a write.
pub async fn plan_chunk(
    store: &Store,
    chunk: &[Row],
    batch: &Batch<'_>,
    report: &mut ImportReport,
) -> Result<Vec<CustomerWrite>> {
    let ext_ids: Vec<String> = chunk.iter().filter_map(|r| r.external_id.clone()).collect();
    let emails: Vec<String> = chunk
        .iter()
        .filter_map(|r| r.email.clone().flatten().map(|e| e.as_str().to_string()))
        .collect();
    let existing = store.customers_by_keys(&ext_ids, &emails).await?;
    let by_ext: HashMap<&str, &Customer> = existing
        .iter()
        .filter_map(|c| c.external_id.as_deref().map(|k| (k, c)))
        .collect();
    let by_email: HashMap<&str, &Customer> = existing
        .iter()
        .filter_map(|c| c.email.as_deref().map(|k| (k, c)))
        .collect();
    let mut objections: HashMap<i64, Vec<Objection>> = HashMap::new();
    let ids: Vec<i64> = existing.iter().map(|c| c.id).collect();
    for o in store.active_objections(&ids).await? {
        objections.entry(o.customer_id).or_default().push(o);
    }
    let mut keys: Vec<String> = ext_ids
        .iter()
        .map(|k| external_id_suppression_key(k))
        .collect();
    keys.extend(
        chunk
            .iter()
            .filter_map(|r| r.email.clone().flatten().map(|e| e.suppression_key())),
    );
    let suppressed = store.suppressed_keys(&keys).await?;

    let mut writes = Vec::with_capacity(chunk.len());
    // Emails taken by earlier rows of this chunk (not yet in the database).
    let mut taken: HashSet<String> = HashSet::new();
    for row in chunk {
        let email = row.email.clone().flatten();
        let matched = match (&row.external_id, &email) {
            (Some(ext), _) if by_ext.contains_key(ext.as_str()) => Some(by_ext[ext.as_str()]),
            (_, Some(e)) => by_email.get(e.as_str()).copied(),
            _ => None,
        };
        if let (Some(c), Some(ext)) = (matched, &row.external_id)
            && c.external_id.as_ref().is_some_and(|have| have != ext)
        {
            report.rejected.push((
                row.line,
                format!(
                    "email {} already belongs to the customer with external_id \"{}\"",
                    c.email.clone().unwrap_or_default(),
                    c.external_id.clone().unwrap_or_default()
                ),
            ));
            continue;
        }
        if let (Some(new_email), Some(owner)) = (
            &email,
            by_email.get(email.as_ref().map(Email::as_str).unwrap_or("")),
        ) && matched.is_some_and(|m| m.id != owner.id)
        {
            report.rejected.push((
                row.line,
                format!(
                    "email {new_email} already belongs to another customer (id {})",
                    owner.id
                ),
            ));
            continue;
        }
        let is_suppressed = row
            .external_id
            .as_ref()
            .is_some_and(|k| suppressed.contains(&external_id_suppression_key(k)))
            || email
                .as_ref()
                .is_some_and(|e| suppressed.contains(&e.suppression_key()));
        if matched.is_none() && is_suppressed {
            report.forgotten.push(row.line);
            continue;
        }
        let (before, is_new) = match matched {
            Some(c) => (c.clone(), false),
            None => (
                Customer {
                    created_at: batch.now,
                    updated_at: batch.now,
                    ..Customer::default()
                },
                true,
            ),
        };
        let in_force = objections.get(&before.id).map(Vec::as_slice).unwrap_or(&[]);
        let mut write = apply(before.clone(), row, in_force, batch, report);
        let after = &write.customer;
        if let Some(email) = after
            .email
            .as_ref()
            .filter(|e| before.email.as_ref() != Some(*e))
            && !taken.insert(email.clone())
        {
            report.rejected.push((
                row.line,
                format!("email {email} is used by another row of this file"),
            ));
            continue;
        }
        if !is_new && !batch.dry_run {
            report.changes.extend(changes(&before, after));
        }
        if is_new {
            report.imported += 1;
            write.events.insert(
                0,
                NewEvent::new(
                    "imported",
                    format!("created from import line {} of {}", row.line, batch.file),
                ),
            );
            writes.push(write);
        } else if *after == before && write.objections.is_empty() && write.lifted.is_empty() {
            report.unchanged += 1;
        } else {
            report.updated += 1;
            write.customer.updated_at = batch.now;
            writes.push(write);
        }
    }
    Ok(writes)
}

/// The watched values that differ between two versions of a customer.
fn changes(before: &Customer, after: &Customer) -> Vec<AttributeChange> {
    let change = |field: &str, old: Option<String>, new: Option<String>| {
        (old != new).then(|| AttributeChange {
            customer_id: before.id,
            field: field.to_string(),
            old,
            new,
        })
    };
    let mut out: Vec<AttributeChange> = [
        change("tier", before.tier.clone(), after.tier.clone()),
        change(
            "points",
            Some(before.points.to_string()),
            Some(after.points.to_string()),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let keys: BTreeSet<&String> = before
        .attributes
        .0
        .keys()
        .chain(after.attributes.0.keys())
        .collect();
    for key in keys {
        out.extend(change(
            key,
            before.attributes.0.get(key).cloned(),
            after.attributes.0.get(key).cloned(),
        ));
    }
    out
}

/// The text field a column of that field fills (`None`: not a text field).
fn text_slot(c: &mut Customer, field: Field) -> Option<&mut Option<String>> {
    Some(match field {
        Field::Name => &mut c.name,
        Field::FirstName => &mut c.first_name,
        Field::LastName => &mut c.last_name,
        Field::Company => &mut c.company,
        Field::Note => &mut c.note,
        Field::Phone => &mut c.phone,
        Field::Locale => &mut c.locale,
        Field::Timezone => &mut c.timezone,
        Field::Owner => &mut c.owner,
        Field::Tier => &mut c.tier,
        _ => return None,
    })
}

/// Applies a row's present columns to a customer with the objections in
/// force for them.
fn apply(
    mut c: Customer,
    row: &Row,
    in_force: &[Objection],
    batch: &Batch<'_>,
    report: &mut ImportReport,
) -> CustomerWrite {
    let mut events = Vec::new();
    let existing = c.id != 0;
    if let Some(ext) = &row.external_id {
        c.external_id = Some(ext.clone());
    }
    if let Some(email) = &row.email {
        let new = email.as_ref().map(|e| e.as_str().to_string());
        if existing && new != c.email {
            events.push(NewEvent::new(
                "changed",
                format!(
                    "email: {} → {}",
                    c.email.as_deref().unwrap_or("-"),
                    new.as_deref().unwrap_or("-")
                ),
            ));
            c.bad_address_at = None;
        }
        c.email = new;
    }
    for (field, value) in &row.text {
        let Some(slot) = text_slot(&mut c, *field) else {
            continue; // consent_source goes with consent below
        };
        if *field == Field::Tier && existing && slot != value {
            events.push(NewEvent::new(
                "changed",
                format!(
                    "tier: {} → {}",
                    slot.as_deref().unwrap_or("-"),
                    value.as_deref().unwrap_or("-")
                ),
            ));
        }
        *slot = value.clone();
    }
    if let Some(salutation) = row.salutation {
        c.salutation = salutation;
    }
    if let Some(business) = row.is_business {
        c.is_business = business;
    }
    if let Some(tags) = &row.tags {
        c.tags = Tags(tags.clone());
    }
    for (field, value) in &row.dates {
        match field {
            Field::CustomerSince => c.customer_since = *value,
            _ => c.birthday = *value,
        }
    }
    if let Some(points) = row.points {
        c.points = points;
    }
    if !row.attributes.is_empty() {
        let mut attrs = c.attributes.0.clone();
        for (k, v) in &row.attributes {
            if v.is_empty() {
                attrs.remove(k);
            } else {
                let old = attrs.insert(k.clone(), v.clone());
                if existing && old.as_deref() != Some(v.as_str()) {
                    events.push(NewEvent::new(
                        "changed",
                        format!("{k}: {} → {v}", old.as_deref().unwrap_or("-")),
                    ));
                }
            }
        }
        c.attributes = Attributes(attrs);
    }
    // The objections are the record: a row that lost their effect (an
    // unsubscribe that landed between another import's read and write) gets
    // it back.
    for o in in_force.iter().filter(|o| o.kind.is_none()) {
        match o.channel {
            Channel::Email => {
                c.unsubscribed_at.get_or_insert(o.at);
            }
            Channel::Phone => c.do_not_call = true,
        }
    }
    let mut write = CustomerWrite {
        customer: c,
        events,
        objections: Vec::new(),
        lifted: Vec::new(),
    };
    let mut rules = Consenting {
        row,
        in_force,
        batch,
        report,
        write: &mut write,
    };
    rules.email();
    rules.phone();
    write
}

/// The consent columns of one row against the objections in force.
struct Consenting<'a, 'b> {
    row: &'a Row,
    in_force: &'a [Objection],
    batch: &'a Batch<'b>,
    report: &'a mut ImportReport,
    write: &'a mut CustomerWrite,
}

impl Consenting<'_, '_> {
    fn source(&self) -> String {
        self.row
            .text(Field::ConsentSource)
            .map(str::to_string)
            .unwrap_or_else(|| self.batch.default_consent_source.to_string())
    }

    fn here(&self) -> String {
        format!("import line {} of {}", self.row.line, self.batch.file)
    }

    fn event(&mut self, kind: &str, detail: String) {
        self.write.events.push(NewEvent::new(kind, detail));
    }

    fn objection(&mut self, channel: Channel) {
        let objection = NewObjection {
            channel,
            kind: None,
            at: self.batch.now,
            recorded_by: self.batch.recorded_by.to_string(),
            source: format!("{} ({})", self.here(), self.source()),
            note: None,
        };
        self.event(channel.event_kind(), objection.describe());
        self.write.objections.push(objection);
    }

    /// A flag changed on a customer who existed before the import.
    fn changed(&mut self, field: &str, value: bool) {
        if self.write.customer.id != 0 {
            let detail = format!("{field}: {}", if value { "yes" } else { "no" });
            self.event("changed", detail);
        }
    }

    /// Lifts the objections of `channel` older than a consent dated `day`;
    /// the others stay and are listed.
    fn lift(&mut self, channel: Channel, day: NaiveDate, what: &str) {
        let at = day.and_time(NaiveTime::MIN).and_utc();
        let in_force = self.in_force;
        let (older, newer): (Vec<&Objection>, Vec<&Objection>) = in_force
            .iter()
            .filter(|o| o.channel == channel)
            .partition(|o| o.at < at);
        for o in newer {
            self.report.kept.push((
                self.row.line,
                format!(
                    "{what} dated {day} is not later than the objection of {}; it stays in force",
                    o.when_and_how()
                ),
            ));
        }
        for o in older {
            let because = format!("{what} dated {day} in {}", self.here());
            self.event(
                "resubscribed",
                format!("{because} lifts the objection of {}", o.when_and_how()),
            );
            self.write.lifted.push((o.id, because));
            self.report.resubscribed.push((
                self.row.line,
                format!(
                    "{what} dated {day} is later than the objection of {}: lifted",
                    o.when_and_how()
                ),
            ));
        }
    }

    fn email(&mut self) {
        let Some(consent) = self.row.consent else {
            return;
        };
        let in_force = self.in_force;
        let everything = in_force
            .iter()
            .find(|o| o.channel == Channel::Email && o.kind.is_none());
        let source = self.source();
        match consent {
            Consent::Yes => match everything {
                Some(o) => self.report.kept.push((
                    self.row.line,
                    format!(
                        "says yes to email, but the customer objected on {}; only the date of a newer consent (instead of yes) re-subscribes",
                        o.when_and_how()
                    ),
                )),
                None if !self.write.customer.consent => self.give_consent(self.batch.now, source),
                None => {}
            },
            Consent::Since(day) => {
                let at = day.and_time(NaiveTime::MIN).and_utc();
                self.lift(Channel::Email, day, "consent");
                match everything {
                    Some(o) if o.at >= at => return,
                    Some(_) => self.write.customer.unsubscribed_at = None,
                    None => {}
                }
                let c = &self.write.customer;
                if !c.consent || c.consent_at != Some(at) {
                    self.give_consent(at, source);
                }
            }
            Consent::No => {
                let c = &mut self.write.customer;
                let had = c.consent;
                c.consent = false;
                c.consent_source = Some(source.clone());
                if had {
                    let detail = format!("{} says no (source: {source})", self.here());
                    self.event("consent_withdrawn", detail);
                    if everything.is_none() {
                        self.write
                            .customer
                            .unsubscribed_at
                            .get_or_insert(self.batch.now);
                        self.objection(Channel::Email);
                    }
                }
            }
        }
    }

    fn give_consent(&mut self, at: DateTime<Utc>, source: String) {
        let c = &mut self.write.customer;
        c.consent = true;
        c.consent_at = Some(at);
        let detail = format!("email consent of {} (source: {source})", at.date_naive());
        c.consent_source = Some(source);
        self.event("consent_given", detail);
    }

    fn phone(&mut self) {
        let in_force = self.in_force;
        let mut objection = in_force.iter().find(|o| o.channel == Channel::Phone);
        match self.row.phone_consent {
            Some(Consent::Since(day)) => {
                let at = day.and_time(NaiveTime::MIN).and_utc();
                self.lift(Channel::Phone, day, "phone consent");
                if objection.is_some_and(|o| o.at < at) {
                    objection = None;
                    self.write.customer.do_not_call = false;
                    self.changed("do_not_call", false);
                }
                if !self.write.customer.phone_consent {
                    self.write.customer.phone_consent = true;
                    self.changed("phone_consent", true);
                }
            }
            Some(consent) => {
                let yes = consent == Consent::Yes;
                if self.write.customer.phone_consent != yes {
                    self.write.customer.phone_consent = yes;
                    self.changed("phone_consent", yes);
                }
            }
            None => {}
        }
        match (self.row.do_not_call, self.write.customer.do_not_call) {
            (Some(true), false) => {
                self.write.customer.do_not_call = true;
                self.objection(Channel::Phone);
            }
            (Some(false), true) => match objection {
                Some(o) => self.report.kept.push((
                    self.row.line,
                    format!(
                        "says do_not_call no, but the customer objected to calls on {}; only a phone_consent dated after it allows calls again",
                        o.when_and_how()
                    ),
                )),
                None => {
                    self.write.customer.do_not_call = false;
                    self.changed("do_not_call", false);
                }
            },
            _ => {}
        }
    }
}
