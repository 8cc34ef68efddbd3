//! Why a page cannot be shown, as one type with the answer each cause
//! gets: its status and the plain error page (in the business's language;
//! it says nothing about what a link was for). Handlers and link extractors
//! return a [`PageError`]; axum turns it into the response.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Value, context};

use crate::app::App;
use crate::tokens::TokenError;

/// What went wrong with a request.
#[derive(Debug)]
pub enum Cause {
    /// A link that does not work: malformed, forged, for another purpose
    /// (404), or expired (410).
    Link(TokenError),
    /// A path axum cannot read (e.g. not UTF-8 once decoded): its own 4xx.
    Path(PathRejection),
    /// A form posted from another website (403), changing nothing.
    ForeignOrigin,
    /// A form field with a value our pages never send (422, plain text that
    /// names the values allowed).
    BadField(&'static str),
    /// Anything else: logged, answered 500.
    Failed(anyhow::Error),
}

/// A [`Cause`] with the working set whose templates answer it.
pub struct PageError {
    app: Arc<App>,
    cause: Cause,
}

impl PageError {
    pub fn new(app: &Arc<App>, cause: Cause) -> Self {
        PageError {
            app: app.clone(),
            cause,
        }
    }

    /// For `map_err`: an unexpected failure, answered 500.
    pub fn failed(app: &Arc<App>) -> impl FnOnce(anyhow::Error) -> PageError + '_ {
        move |e| PageError::new(app, Cause::Failed(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        respond(&self.app, self.cause)
    }
}

/// The answer to `cause`, rendered with `app`'s templates.
pub fn respond(app: &App, cause: Cause) -> Response {
    match cause {
        Cause::Link(e) => {
            let (status, problem) = if e == TokenError::Expired {
                (StatusCode::GONE, "expired")
            } else {
                (StatusCode::NOT_FOUND, "link")
            };
            error_page(app, status, problem)
        }
        Cause::Path(rejection) => rejection.into_response(),
        Cause::ForeignOrigin => {
            tracing::info!("a post from a form on another website was refused");
            error_page(app, StatusCode::FORBIDDEN, "link")
        }
        Cause::BadField(allowed) => (StatusCode::UNPROCESSABLE_ENTITY, allowed).into_response(),
        Cause::Failed(e) => server_error(app, e),
    }
}

/// What the `error_page` template sees; `problem` is `link`, `expired` or `server`.
pub fn error_page_context(problem: &str) -> Value {
    context! { problem }
}

fn error_page(app: &App, status: StatusCode, problem: &str) -> Response {
    match app
        .templates
        .render_page("error_page", None, &error_page_context(problem))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => server_error(app, e),
    }
}

fn server_error(app: &App, e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "request failed");
    match app
        .templates
        .render_page("error_page", None, &error_page_context("server"))
    {
        Ok(html) => (StatusCode::INTERNAL_SERVER_ERROR, Html(html)).into_response(),
        // The error page itself failed (an admin's broken template): say it plainly.
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the error page failed too");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )
                .into_response()
        }
    }
}
