//! Values parsed once at the edge (config, CSV, URLs) so the rest of the code
//! never handles a raw string that means an email, a schedule or a limit.

mod closed_days;
mod customer;
mod email;
mod limits;
mod schedule;

pub use closed_days::{ClosedDays, GERMAN_FEDERAL_HOLIDAYS, easter_sunday, german_federal_holiday};
pub use customer::{Attributes, Customer, Tags};
pub use email::Email;
pub use limits::{FrequencyCap, QuietHours, parse_clock, parse_duration, sha256_hex};
pub use schedule::Schedule;
