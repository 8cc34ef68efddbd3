//! Values parsed once at the edge (config, CSV, URLs) so the rest of the code
//! never handles a raw string that means an email, a schedule or a limit.

mod customer;
mod email;
mod limits;
mod schedule;
mod state;

pub use customer::{Attributes, Customer, Tags};
pub use email::Email;
pub use limits::{FrequencyCap, QuietHours, parse_clock, parse_duration, sha256_hex};
pub use schedule::Schedule;
pub use state::{MessageState, RunState};
