//! The dashboard: a web page at `/` that shows the agent forest live and acts on it.
//!
//! Its assets are compiled into the binary (no CDN, nothing fetched at run time) and served
//! with a strict Content-Security-Policy (scripts only from this origin, no inline script, no
//! framing). A person opens it with a one-time login code (`fracta dashboard` asks the API
//! for one with the admin token): the page trades the code (`POST /dashboard/session`) for an
//! HttpOnly, SameSite=Strict session cookie and a CSRF token, so the admin token never sits in
//! the page or its URL. The `/v1` API then takes the cookie in place of the admin token, and a
//! state-changing call also needs the CSRF token as `X-CSRF-Token`. Sessions are kept in
//! `.fracta/dashboard-sessions.json` (mode 0600) so a page outlives a restart of `serve`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fracta_api::{LoginBody, LoginCode, SessionView};
use serde::{Deserialize, Serialize};

use crate::http::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "fracta_session";
/// How long a login code works (once).
pub const CODE_TTL: Duration = Duration::from_secs(120);
/// How long a session lasts.
pub const SESSION_TTL_SECS: i64 = 12 * 3600;
/// At most this many codes wait to be used (older ones are dropped first).
const MAX_CODES: usize = 64;

pub const INDEX_HTML: &str = include_str!("../assets/index.html");
pub const APP_JS: &str = include_str!("../assets/app.js");
pub const APP_CSS: &str = include_str!("../assets/app.css");

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSession {
    csrf: String,
    /// Unix seconds.
    expires: i64,
}

/// Login codes and sessions.
pub struct DashboardAuth {
    codes: Mutex<Vec<(String, Instant)>>,
    sessions: Mutex<HashMap<String, StoredSession>>,
    /// Where sessions are kept across restarts (none: in memory only).
    file: Option<PathBuf>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn new_secret() -> Result<String, ApiError> {
    fracta_core::secret::new_token().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no random token: {e}"),
        )
    })
}

/// How the caller of a `/v1` route proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authn {
    AdminToken,
    Session,
}

impl DashboardAuth {
    /// Sessions kept in `file` (read now, if it exists), or in memory only.
    pub fn new(file: Option<PathBuf>) -> DashboardAuth {
        let sessions: HashMap<String, StoredSession> = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let now = now_secs();
        DashboardAuth {
            codes: Mutex::new(Vec::new()),
            sessions: Mutex::new(
                sessions
                    .into_iter()
                    .filter(|(_, s)| s.expires > now)
                    .collect(),
            ),
            file,
        }
    }

    /// A fresh one-time login code.
    pub fn new_code(&self) -> Result<LoginCode, ApiError> {
        let code = new_secret()?;
        if let Ok(mut codes) = self.codes.lock() {
            let now = Instant::now();
            codes.retain(|(_, at)| now.duration_since(*at) < CODE_TTL);
            if codes.len() >= MAX_CODES {
                codes.remove(0);
            }
            codes.push((code.clone(), now));
        }
        Ok(LoginCode {
            code,
            expires_in_secs: CODE_TTL.as_secs(),
        })
    }

    /// Use up a code: whether it was valid.
    fn take_code(&self, code: &str) -> bool {
        let Ok(mut codes) = self.codes.lock() else {
            return false;
        };
        let now = Instant::now();
        codes.retain(|(_, at)| now.duration_since(*at) < CODE_TTL);
        match codes
            .iter()
            .position(|(c, _)| constant_time_eq(c.as_bytes(), code.as_bytes()))
        {
            Some(i) => {
                codes.remove(i);
                true
            }
            None => false,
        }
    }

    fn save(&self, sessions: &HashMap<String, StoredSession>) {
        let Some(file) = &self.file else { return };
        let Ok(text) = serde_json::to_string(sessions) else {
            return;
        };
        if let Err(e) = write_private(file, &text) {
            tracing::warn!("cannot keep dashboard sessions in {}: {e}", file.display());
        }
    }

    /// A new session: (id, csrf token).
    fn open(&self) -> Result<(String, String), ApiError> {
        let (id, csrf) = (new_secret()?, new_secret()?);
        if let Ok(mut s) = self.sessions.lock() {
            let now = now_secs();
            s.retain(|_, v| v.expires > now);
            s.insert(
                id.clone(),
                StoredSession {
                    csrf: csrf.clone(),
                    expires: now + SESSION_TTL_SECS,
                },
            );
            self.save(&s);
        }
        Ok((id, csrf))
    }

    /// The CSRF token of a live session.
    fn csrf_of(&self, id: &str) -> Option<String> {
        let s = self.sessions.lock().ok()?;
        let (_, v) = s
            .iter()
            .find(|(k, _)| constant_time_eq(k.as_bytes(), id.as_bytes()))?;
        (v.expires > now_secs()).then(|| v.csrf.clone())
    }

    fn close(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
            self.save(&s);
        }
    }

    /// Check a `/v1` request: the admin token, or a session cookie (plus, unless the method
    /// is safe, its CSRF token and a same-origin `Origin`).
    pub fn check(&self, admin_token: &str, req: &Request) -> Result<Authn, ApiError> {
        let headers = req.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(t) = bearer {
            return if constant_time_eq(t.as_bytes(), admin_token.as_bytes()) {
                Ok(Authn::AdminToken)
            } else {
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized: this is not the control plane's admin token (agents' gateway tokens are for /mcp only)",
                ))
            };
        }
        let Some(sid) = session_cookie(headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send `Authorization: Bearer TOKEN` with the control plane's token (in .fracta/serve.json), or open the dashboard with `fracta dashboard`",
            ));
        };
        let Some(csrf) = self.csrf_of(&sid) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized: the dashboard session is unknown or has expired; run `fracta dashboard` for a new login link",
            ));
        };
        if !req.method().is_safe() {
            same_origin(headers)?;
            if !csrf_given(headers, &csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden: a dashboard call that changes something needs the session's CSRF token in `X-CSRF-Token`",
                ));
            }
        }
        Ok(Authn::Session)
    }
}

/// Whether the request's `X-CSRF-Token` is the session's `csrf`.
fn csrf_given(headers: &HeaderMap, csrf: &str) -> bool {
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    constant_time_eq(given.as_bytes(), csrf.as_bytes())
}

/// Write `text` to `path` readable by the owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    crate::discovery::write_private(path, &path.with_extension("json.tmp"), text.as_bytes())
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id in the request's `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A browser's cross-site request names another origin: refuse it (a `fetch` from a page on
/// another site, or a DNS-rebound name).
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    if !host.is_empty() && origin_host == host {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("forbidden: a request from origin {origin} is not the dashboard's own"),
        ))
    }
}

/// The page, its assets and the login exchange (the API it calls is `/v1`'s). The session
/// calls are in the OpenAPI document; the page and its assets are not API.
pub fn pages(auth: std::sync::Arc<DashboardAuth>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .route("/dashboard/session", post(login).get(session))
        .route("/dashboard/logout", post(logout))
        .with_state(auth)
        .layer(axum::middleware::from_fn(security_headers))
}

/// The headers every dashboard answer carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn set_cookie(value: &str, max_age: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("fracta_session=; Path=/; Max-Age=0"))
}

/// `POST /dashboard/session`: a login code for a session cookie and its CSRF token.
pub async fn login(
    State(auth): State<std::sync::Arc<DashboardAuth>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<LoginBody>,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    if !auth.take_code(body.code.trim()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized: this login code is unknown, used or expired (a code works once, for two minutes); run `fracta dashboard` for a new one",
        ));
    }
    let (sid, csrf) = auth.open()?;
    let mut res = axum::Json(SessionView { csrf_token: csrf }).into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&sid, SESSION_TTL_SECS));
    Ok(res)
}

/// `GET /dashboard/session`: the CSRF token of the cookie's session (a reloaded page).
pub async fn session(
    State(auth): State<std::sync::Arc<DashboardAuth>>,
    headers: HeaderMap,
) -> Result<axum::Json<SessionView>, ApiError> {
    let csrf = session_cookie(&headers)
        .and_then(|sid| auth.csrf_of(&sid))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized: no dashboard session; run `fracta dashboard` for a login link",
            )
        })?;
    Ok(axum::Json(SessionView { csrf_token: csrf }))
}

/// `POST /dashboard/logout`: end the session (needs its CSRF token).
pub async fn logout(
    State(auth): State<std::sync::Arc<DashboardAuth>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin(&headers)?;
    let sid = session_cookie(&headers).unwrap_or_default();
    let csrf = auth.csrf_of(&sid).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized: no dashboard session",
        )
    })?;
    if !csrf_given(&headers, &csrf) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: logging out needs the session's CSRF token in `X-CSRF-Token`",
        ));
    }
    auth.close(&sid);
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    Ok(res)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri("/v1/agents");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn a_code_works_once_and_its_session_needs_csrf_to_change_things() {
        let auth = DashboardAuth::new(None);
        let code = auth.new_code().unwrap().code;
        assert!(auth.take_code(&code));
        assert!(!auth.take_code(&code), "single use");
        let (sid, csrf) = auth.open().unwrap();
        let cookie = format!("other=1; {COOKIE}={sid}");
        assert_eq!(
            auth.check("admin", &req("GET", &[("cookie", &cookie)]))
                .ok(),
            Some(Authn::Session)
        );
        let no_csrf = auth.check("admin", &req("POST", &[("cookie", &cookie)]));
        assert_eq!(no_csrf.err().unwrap().status(), StatusCode::FORBIDDEN);
        let with = auth.check(
            "admin",
            &req("POST", &[("cookie", &cookie), ("x-csrf-token", &csrf)]),
        );
        assert_eq!(with.ok(), Some(Authn::Session));
        let cross = auth.check(
            "admin",
            &req(
                "POST",
                &[
                    ("cookie", &cookie),
                    ("x-csrf-token", &csrf),
                    ("host", "127.0.0.1:1"),
                    ("origin", "http://evil.example"),
                ],
            ),
        );
        assert_eq!(cross.err().unwrap().status(), StatusCode::FORBIDDEN);
        let forged = auth.check("admin", &req("GET", &[("cookie", "fracta_session=forged")]));
        assert_eq!(forged.err().unwrap().status(), StatusCode::UNAUTHORIZED);
        let wrong_bearer = auth.check("admin", &req("GET", &[("authorization", "Bearer x")]));
        assert_eq!(
            wrong_bearer.err().unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        let admin = auth.check("admin", &req("POST", &[("authorization", "Bearer admin")]));
        assert_eq!(admin.ok(), Some(Authn::AdminToken));
    }

    #[test]
    fn a_patch_is_cut_per_file_with_its_counts() {
        let patch = "diff --git a/a.txt b/a.txt\nindex 1..2 100644\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n-old\n+new\n+more\ndiff --git a/dir/b c.md b/dir/b c.md\nnew file mode 100644\n--- /dev/null\n+++ b/dir/b c.md\n@@ -0,0 +1 @@\n+x\n";
        let files = crate::http::split_patch(patch);
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].path.as_str(), files[0].added, files[0].removed),
            ("a.txt", 2, 1)
        );
        assert!(files[0].patch.starts_with("diff --git a/a.txt"));
        assert!(files[0].patch.ends_with("+more\n"));
        assert_eq!(
            (files[1].path.as_str(), files[1].added, files[1].removed),
            ("dir/b c.md", 1, 0)
        );
    }

    #[test]
    fn sessions_outlive_a_restart_in_their_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dashboard-sessions.json");
        let (sid, csrf) = DashboardAuth::new(Some(file.clone())).open().unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&file).unwrap().permissions(),
        ) & 0o777;
        assert_eq!(mode, 0o600);
        let again = DashboardAuth::new(Some(file));
        assert_eq!(again.csrf_of(&sid), Some(csrf));
    }
}
