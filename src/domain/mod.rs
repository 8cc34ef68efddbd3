//! Values parsed once at the edge (config, CSV, URLs) so the rest of the code
//! never handles a raw string that means an email, a schedule or a limit.

mod closed_days;
mod customer;
mod date;
mod email;
mod limits;
mod locale;
mod objection;
mod schedule;
mod state;

pub use closed_days::{ClosedDays, GERMAN_FEDERAL_HOLIDAYS, easter_sunday, german_federal_holiday};
pub use customer::{Attributes, Customer, Salutation, Tags};
pub use date::{DATE_FORMS, parse_date};
pub use email::Email;
pub use limits::{FrequencyCap, QuietHours, parse_clock, parse_duration, sha256_hex};
pub use locale::{LocalText, reader_locale};
pub use objection::{Channel, NewObjection, Objection};
pub use schedule::Schedule;
pub use state::{CallOutcome, MessageState, RuleKind, RunState};
