//! Values parsed once at the edge (config, CSV, URLs) so the rest of the code
//! never handles a raw string that means an email, a schedule or a limit.

mod customer;
mod email;
mod limits;
mod locale;
mod schedule;

pub use customer::{Attributes, Customer, Tags};
pub use email::Email;
pub use limits::{FrequencyCap, QuietHours, parse_clock, parse_duration, sha256_hex};
pub use locale::{LocalText, reader_locale};
pub use schedule::Schedule;
