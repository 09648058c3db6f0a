//! The token as a browser carries it: in the address lifeboat prints at start
//! (`/?token=…`), which is exchanged at once for a cookie and a redirect to the same page
//! without the token (so it leaves the address bar and the history), and then in that
//! cookie on every page. Either is checked exactly as `Authorization: Bearer` is.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The cookie that carries the token after the first visit.
const COOKIE: &str = "lifeboat_token";

/// How a request presents its credentials.
pub enum Presented {
    /// An `Authorization` header (or the cookie, as the same bearer header).
    Header(String),
    /// `?token=` in the address: checked, then swapped for the cookie.
    Query(String),
    Nothing,
}

impl Presented {
    pub fn of(headers: &HeaderMap, query: Option<&str>) -> Presented {
        if let Some(h) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            return Presented::Header(h.to_string());
        }
        if let Some(t) = cookie(headers) {
            return Presented::Header(format!("Bearer {t}"));
        }
        match query.and_then(token_in_query) {
            Some(t) => Presented::Query(t),
            None => Presented::Nothing,
        }
    }

    /// The `Authorization` header the login checks.
    pub fn header(&self) -> Option<String> {
        match self {
            Presented::Header(h) => Some(h.clone()),
            Presented::Query(t) => Some(format!("Bearer {t}")),
            Presented::Nothing => None,
        }
    }
}

fn token_in_query(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// A 303 to `path` (without the query) that sets the cookie: the browser's next requests
/// carry the token, and its address bar no longer does. The token is hex, so it needs
/// no quoting; `HttpOnly` keeps it from scripts, `SameSite=Strict` from other sites.
pub fn exchange(path: &str, token: &str) -> Response {
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut r = StatusCode::SEE_OTHER.into_response();
    let location = if path.starts_with('/') { path } else { "/" };
    if let (Ok(loc), Ok(c)) = (
        HeaderValue::from_str(location),
        HeaderValue::from_str(&cookie),
    ) {
        r.headers_mut().insert(header::LOCATION, loc);
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// The address to open the page at, token included, for a server listening on `addr`
/// (an unspecified address is shown as loopback, which it includes).
pub fn start_url(addr: std::net::SocketAddr, token: &str) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/?token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_header_then_the_cookie_then_the_address() {
        let mut h = HeaderMap::new();
        assert!(matches!(Presented::of(&h, None), Presented::Nothing));
        let q = Presented::of(&h, Some("a=1&token=abc%20d"));
        assert!(matches!(&q, Presented::Query(t) if t == "abc d"));
        assert_eq!(q.header().as_deref(), Some("Bearer abc d"));
        h.insert(header::COOKIE, "x=1; lifeboat_token=feed".parse().unwrap());
        let c = Presented::of(&h, Some("token=abc"));
        assert_eq!(c.header().as_deref(), Some("Bearer feed"));
        h.insert(header::AUTHORIZATION, "Basic eDp5".parse().unwrap());
        assert_eq!(
            Presented::of(&h, Some("token=abc")).header().as_deref(),
            Some("Basic eDp5")
        );
    }

    #[test]
    fn the_printed_address_opens_on_loopback() {
        let url = start_url("0.0.0.0:8080".parse().unwrap(), "t0k");
        assert_eq!(url, "http://127.0.0.1:8080/?token=t0k");
    }
}
