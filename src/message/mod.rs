//! Building what people read: the email a customer or a staff member gets,
//! and the pages behind the links.
//!
//! [`templates`] loads and renders the per-language template files;
//! [`greeting`] makes the salutation; [`plain_text`] turns the rendered
//! Markdown into the text part; [`render`] gives a campaign's template its
//! values (vouchers, links, dates as people read them); [`compose`] builds
//! the MIME message with its headers; [`dkim`] signs it.

pub mod compose;
pub mod dkim;
pub mod greeting;
pub mod plain_text;
pub mod render;
pub mod templates;
