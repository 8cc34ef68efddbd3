//! One extractor per kind of link in an email: each checks the signed,
//! expiring token in the path once, for its own purpose, and hands the
//! handler what the link is for, with the working set that checked it. A
//! link that does not work never reaches a handler: it is a [`PageError`].

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::Utc;

use super::AppState;
use super::error::{Cause, PageError};
use crate::app::App;
use crate::config::{CampaignKind, Staff};
use crate::message::render::SAMPLE_TOKEN;
use crate::store::Signup;
use crate::tokens::{Purpose, TokenError};

/// The working set and the token in the path.
async fn token(parts: &mut Parts, state: &AppState) -> Result<(Arc<App>, String), PageError> {
    let app = state.shared.current();
    match Path::<String>::from_request_parts(parts, state).await {
        Ok(Path(token)) => Ok((app, token)),
        Err(rejection) => Err(PageError::new(&app, Cause::Path(rejection))),
    }
}

/// `/t/…`: the call task a staff member's link is for.
pub struct TaskLink {
    pub app: Arc<App>,
    pub task: i64,
}

impl FromRequestParts<AppState> for TaskLink {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let (app, token) = token(parts, state).await?;
        match app.signer.verify(&token, Purpose::Task, Utc::now()) {
            Ok(task) => Ok(TaskLink { app, task }),
            Err(e) => Err(PageError::new(&app, Cause::Link(e))),
        }
    }
}

/// `/a/…`: the run an approval link is for and the approver it was sent to
/// (none for links from before approvers had their own). A link of someone
/// who is no approver any more does not work.
pub struct ApprovalLink {
    pub app: Arc<App>,
    pub run: i64,
    pub approver: Option<Staff>,
}

impl FromRequestParts<AppState> for ApprovalLink {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let (app, token) = token(parts, state).await?;
        let refused = |e| PageError::new(&app, Cause::Link(e));
        let (run, holder) = app
            .signer
            .verify_holder(&token, Purpose::Approval, Utc::now())
            .map_err(refused)?;
        let approver = match holder {
            None => None,
            Some(holder) => Some(
                app.settings()
                    .staff
                    .iter()
                    .find(|s| s.id == holder)
                    .cloned()
                    .ok_or_else(|| refused(TokenError::WrongPurpose))?,
            ),
        };
        Ok(ApprovalLink { app, run, approver })
    }
}

/// `/u/…`: whom an unsubscribe link is for.
pub struct UnsubscribeLink {
    pub app: Arc<App>,
    pub reader: Unsubscriber,
}

pub enum Unsubscriber {
    /// The link in an approval request's sample: it acts on nobody.
    Sample,
    /// A customer, and the kind of email the link came with (`None`: a link
    /// from before links named their kind, which stands for every email).
    Customer { id: i64, kind: Option<CampaignKind> },
}

impl FromRequestParts<AppState> for UnsubscribeLink {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let (app, token) = token(parts, state).await?;
        if token == SAMPLE_TOKEN {
            return Ok(UnsubscribeLink {
                app,
                reader: Unsubscriber::Sample,
            });
        }
        let refused = |e| PageError::new(&app, Cause::Link(e));
        let (id, holder) = app
            .signer
            .verify_holder(&token, Purpose::Unsubscribe, Utc::now())
            .map_err(refused)?;
        let kind = match holder {
            None => None,
            Some(kind) => {
                Some(CampaignKind::parse(&kind).ok_or_else(|| refused(TokenError::Malformed))?)
            }
        };
        Ok(UnsubscribeLink {
            app,
            reader: Unsubscriber::Customer { id, kind },
        })
    }
}

/// `/c/…`: the sign-up a confirmation link is for. Unconfirmed sign-ups are
/// deleted after a week: their link is as expired.
pub struct ConfirmLink {
    pub app: Arc<App>,
    pub signup: Signup,
}

impl FromRequestParts<AppState> for ConfirmLink {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let (app, token) = token(parts, state).await?;
        let id = app
            .signer
            .verify(&token, Purpose::Confirm, Utc::now())
            .map_err(|e| PageError::new(&app, Cause::Link(e)))?;
        match app.store.signup(id).await {
            Ok(Some(signup)) => Ok(ConfirmLink { app, signup }),
            Ok(None) => Err(PageError::new(&app, Cause::Link(TokenError::Expired))),
            Err(e) => Err(PageError::new(&app, Cause::Failed(e))),
        }
    }
}
