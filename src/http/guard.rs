//! What every response carries and which POSTs are refused, in one layer
//! over the router rather than in each page.
//!
//! Pages hold personal data behind a token in the URL: they must not be
//! cached, leak the URL as a referrer, be framed (clickjacking) or run
//! anything but their own inline style. A POST from another site (a form
//! on an attacker's page, submitted in the staff member's browser) is
//! refused before it reaches a handler, whatever the page; only `/u/` takes
//! POSTs from anywhere, because RFC 8058 one-click unsubscribes come from
//! mail providers, and `/s` decides itself (the sign-up form may be on the
//! business's own website: `signup.allowed_origins`).

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The layer: refuses cross-site POSTs and adds the headers.
pub async fn pages(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST
        && !request.uri().path().starts_with("/u/")
        && request.uri().path() != "/s"
        && let Some(why) = cross_site(
            request.headers(),
            &state.shared.current().settings().business.base_url,
            &[],
        )
    {
        tracing::warn!(path = %request.uri().path(), why, "cross-site POST refused");
        let page = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not allowed</title></head>\
                    <body><p>This form can only be sent from its own page. / Dieses Formular kann nur von seiner eigenen Seite aus gesendet werden.</p></body></html>";
        let mut response = (StatusCode::FORBIDDEN, Html(page)).into_response();
        protect(&mut response);
        return response;
    }
    let mut response = next.run(request).await;
    protect(&mut response);
    response
}

fn protect(response: &mut Response) {
    let headers = response.headers_mut();
    let set = [
        (header::CACHE_CONTROL, "no-store"),
        // Under it browsers send the page's own form with `Origin: null`:
        // `Sec-Fetch-Site` tells that post from one from anywhere.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CSP),
    ];
    for (name, value) in set {
        headers
            .entry::<HeaderName>(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

/// Why a request comes from another site, if it does; a site whose origin
/// is in `also` (the sign-up form's allowed websites) is not another site.
/// Browsers say where a request is from in `Sec-Fetch-Site` (which a page
/// cannot set) and `Origin`; a request with neither (curl, a mail client's
/// one-click, an old browser) is taken as it is.
pub fn cross_site(headers: &HeaderMap, base_url: &str, also: &[String]) -> Option<&'static str> {
    let fetch_site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    if fetch_site == Some(b"same-origin") {
        return None;
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("null"));
    if origin.is_some_and(|o| also.iter().any(|a| a == o)) {
        return None;
    }
    match fetch_site {
        Some(b"cross-site") => return Some("Sec-Fetch-Site: cross-site"),
        Some(b"same-site") => return Some("Sec-Fetch-Site: same-site (another origin)"),
        _ => {}
    }
    let origin = origin?;
    let ours = url::Url::parse(base_url)
        .ok()
        .map(|u| u.origin().ascii_serialization());
    // Behind a reverse proxy that keeps the Host header, the page's origin
    // is whatever the browser addressed, also if base_url says otherwise.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same = ours.is_some_and(|o| o.eq_ignore_ascii_case(origin))
        || host.is_some_and(|h| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(h))
        });
    (!same).then_some("Origin of another site")
}
