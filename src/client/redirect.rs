//! Redirects: the hop the application's hook sees, and where a redirect response leads.

use bytes::Bytes;
use http::{header, Response, StatusCode, Uri};

/// One redirect the client is about to follow, as [`ClientBuilder::on_redirect`](super::ClientBuilder::on_redirect) sees it.
#[derive(Debug, Clone, Copy)]
pub struct RedirectHop<'a> {
    pub(super) number: usize,
    pub(super) response: &'a Response<Bytes>,
    pub(super) from: &'a Uri,
    pub(super) to: &'a Uri,
}

impl<'a> RedirectHop<'a> {
    /// Which redirect this is: 1 for the first.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The redirect's status (301, 302, 303, 307 or 308).
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The whole redirect response: headers (`Location`, `Set-Cookie`, …) and up to
    /// [`HandshakeLimits::max_error_body`](crate::HandshakeLimits::max_error_body) bytes of body.
    pub fn response(&self) -> &'a Response<Bytes> {
        self.response
    }

    /// The URL that answered with the redirect (without user info).
    pub fn from(&self) -> &'a Uri {
        self.from
    }

    /// The URL the client goes to next: the `Location`, resolved against [`from`](Self::from),
    /// with `http`/`https` taken as `ws`/`wss`, and without user info.
    pub fn to(&self) -> &'a Uri {
        self.to
    }
}

/// The URL to follow for a redirect response, resolved against `base`.
pub(super) fn redirect_target(response: &Response<Bytes>, base: &Uri) -> Option<Uri> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    let target: Uri = location.parse().ok()?;
    let uri = if target.scheme().is_some() {
        target
    } else {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = target.path_and_query().cloned();
        Uri::from_parts(parts).ok()?
    };
    let scheme = match uri.scheme_str() {
        Some("http") => "ws",
        Some("https") => "wss",
        Some("ws") => "ws",
        Some("wss") => "wss",
        _ => return None,
    };
    let mut parts = uri.into_parts();
    parts.scheme = scheme.parse().ok();
    Uri::from_parts(parts).ok()
}
