//! Running an audit on a collector that holds the DuckDB file.
//!
//! DuckDB allows one read-write process per file, so while the collector runs, the CLI
//! (`analyzer --collector URL …`) cannot open the file: it posts the
//! [`AuditRequest`] as JSON to the collector's `POST {URL}/api/audit`, which runs the
//! same [`crate::run`] on its own connection and answers with the [`Report`] JSON.
//! A non-2xx answer carries `{"error": CODE, "message": "..."}` and becomes
//! [`Error::Remote`]; a collector that cannot be reached becomes [`Error::Unreachable`].
//! Saved funnels travel the same way (`/api/funnels`, [`Remote::saved_funnels`]).
//!
//! The collector's `/api/*` wants an API token: a [`Remote`] with one sends
//! `Authorization: Bearer TOKEN` on every call, and a 401 answer becomes
//! [`Error::Unauthorized`], which says how to pass one. The token never appears in an
//! error or in `Debug` output.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, de::DeserializeOwned};

use crate::saved::{FunnelsAction, SavedFunnel};
use crate::{AuditRequest, Error, Report};

/// The path of the audit endpoint on a collector.
pub const AUDIT_PATH: &str = "/api/audit";

/// The path of the saved funnels endpoint on a collector.
pub const FUNNELS_PATH: &str = "/api/funnels";

/// The body of a collector's error answer.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

/// The answer of every `/api/funnels` call: the site's funnels afterwards.
#[derive(Deserialize)]
struct FunnelsBody {
    funnels: Vec<SavedFunnel>,
}

/// A running collector: its base URL (e.g. `http://127.0.0.1:8080`) and the API token
/// to send, if any.
#[derive(Clone)]
pub struct Remote {
    base_url: String,
    token: Option<String>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Remote {
    /// The collector at `base_url`, without a token.
    pub fn new(base_url: &str) -> Self {
        Remote {
            base_url: base_url.to_owned(),
            token: None,
        }
    }

    /// Sends `token` as `Authorization: Bearer TOKEN` on every call; `None`, or a
    /// token that is empty after trimming, sends none.
    #[must_use]
    pub fn with_token(mut self, token: Option<&str>) -> Self {
        self.token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        self
    }

    /// Asks the collector to run `req` (`POST /api/audit`).
    pub fn run(&self, req: &AuditRequest) -> Result<Report, Error> {
        self.call(Method::POST, AUDIT_PATH, &[], Some(req), "a report")
    }

    /// Lists, saves or deletes saved funnels on the collector:
    /// `GET /api/funnels?site=S`, `POST /api/funnels` (a [`SavedFunnel`]),
    /// `DELETE /api/funnels/NAME?site=S`. Each answers `{"funnels": [...]}`.
    pub fn saved_funnels(&self, action: &FunnelsAction) -> Result<Vec<SavedFunnel>, Error> {
        let body: FunnelsBody = match action {
            FunnelsAction::List { site } => {
                let query: Vec<(&str, &str)> = site.iter().map(|s| ("site", s.as_str())).collect();
                self.call::<(), _>(Method::GET, FUNNELS_PATH, &query, None, "funnels")?
            }
            FunnelsAction::Save(funnel) => {
                self.call(Method::POST, FUNNELS_PATH, &[], Some(funnel), "funnels")?
            }
            FunnelsAction::Delete { site, name } => {
                // The name goes into the path: only a valid one is sent.
                crate::saved::check_name(name)?;
                self.call::<(), _>(
                    Method::DELETE,
                    &format!("{FUNNELS_PATH}/{name}"),
                    &[("site", site)],
                    None,
                    "funnels",
                )?
            }
        };
        Ok(body.funnels)
    }

    /// The `Authorization` header for the token, marked sensitive (left out of
    /// `Debug`); a token that cannot be a header value is refused without quoting it.
    fn authorization(&self) -> Result<Option<HeaderValue>, Error> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        let bad = || Error::BadParam {
            name: "token",
            reason: "an API token is printable ASCII without spaces; check --token or \
                     CLICKTRAIL_TOKEN"
                .to_owned(),
        };
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// One JSON call: `method` on the base URL + `path` with `query` and an optional
    /// JSON body; a 2xx answer is parsed as `T` (`what` names it in errors), a 401
    /// becomes [`Error::Unauthorized`], any other [`Error::Remote`].
    fn call<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&B>,
        what: &str,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.base_url.trim_end_matches('/'));
        let unreachable = |detail: String| Error::Unreachable {
            url: url.clone(),
            detail,
        };
        let authorization = self.authorization()?;
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| unreachable(chain(&e)))?;
        let mut request = client.request(method, &url).query(query);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|e| unreachable(chain(&e)))?;
        let status = response.status();
        let text = response.text().map_err(|e| unreachable(chain(&e)))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| unreachable(format!("the answer is not {what}: {e}")));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                token_sent: self.token.is_some(),
            });
        }
        Err(remote_error(status, &text))
    }
}

/// Asks the collector at `base_url` to run `req`, without a token:
/// `Remote::new(base_url).run(req)`.
pub fn run_remote(base_url: &str, req: &AuditRequest) -> Result<Report, Error> {
    Remote::new(base_url).run(req)
}

/// Saved funnels on the collector at `base_url`, without a token:
/// `Remote::new(base_url).saved_funnels(action)`.
pub fn saved_funnels_remote(
    base_url: &str,
    action: &FunnelsAction,
) -> Result<Vec<SavedFunnel>, Error> {
    Remote::new(base_url).saved_funnels(action)
}

/// [`Error::Remote`] from a non-2xx answer: the collector's `{"error", "message"}`,
/// else the status and the start of the body.
fn remote_error(status: reqwest::StatusCode, text: &str) -> Error {
    let (code, message) = match serde_json::from_str::<ErrorBody>(text) {
        Ok(b) => (b.error, b.message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "_"),
            text.chars().take(200).collect::<String>().trim().to_owned(),
        ),
    };
    Error::Remote {
        status: status.as_u16(),
        code,
        message,
    }
}

/// An error and its causes on one line (reqwest's own message omits the cause).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;
    use crate::Scope;

    /// What [`serve_once`] received.
    struct Received {
        request_line: String,
        /// Header lines as sent, without the line end.
        headers: Vec<String>,
        body: String,
    }

    impl Received {
        /// The value of header `name`, if it was sent.
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim())
            })
        }
    }

    /// Serves one request with `status` and `body`; returns the URL and a handle
    /// yielding what it received.
    fn serve_once(status: &'static str, body: String) -> (String, thread::JoinHandle<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                headers.push(line.trim_end().to_owned());
            }
            let mut request = vec![0; length];
            reader.read_exact(&mut request).unwrap();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            Received {
                request_line,
                headers,
                body: String::from_utf8(request).unwrap(),
            }
        });
        (url, handle)
    }

    fn request() -> AuditRequest {
        AuditRequest::Screens {
            scope: Scope {
                site: Some("shop".into()),
                ..Scope::default()
            },
            top_next: 2,
        }
    }

    #[test]
    fn posts_the_request_and_reads_the_report() {
        let report = r#"{"audit":"screens","scope":{"site":"shop","since_ms":null,"until_ms":null},"sessions":4,"screens":[]}"#;
        let (url, server) = serve_once("200 OK", report.to_owned());
        let got = run_remote(&url, &request()).unwrap();
        assert_eq!(got.sessions(), 4);
        assert!(
            !got.scope().include_bots,
            "absent in an older report: false"
        );
        let got = server.join().unwrap();
        assert!(
            got.request_line.starts_with("POST /api/audit "),
            "{}",
            got.request_line
        );
        assert_eq!(
            serde_json::from_str::<AuditRequest>(&got.body).unwrap(),
            request()
        );
        // A request that leaves bots out reads as before (older collectors reject
        // unknown fields).
        assert!(!got.body.contains("include_bots"), "{}", got.body);
        assert_eq!(got.header("authorization"), None);
    }

    #[test]
    fn every_call_sends_the_token_as_a_bearer() {
        let report = r#"{"audit":"screens","scope":{"site":"shop","since_ms":null,"until_ms":null,"include_bots":false},"sessions":1,"screens":[]}"#;
        let (url, server) = serve_once("200 OK", report.to_owned());
        let remote = Remote::new(&url).with_token(Some(" s3cret-Token_1 "));
        remote.run(&request()).unwrap();
        let got = server.join().unwrap();
        assert_eq!(got.header("authorization"), Some("Bearer s3cret-Token_1"));

        let funnels = r#"{"funnels":[]}"#;
        for action in [
            FunnelsAction::List { site: None },
            FunnelsAction::Delete {
                site: "shop".into(),
                name: "checkout".into(),
            },
        ] {
            let (url, server) = serve_once("200 OK", funnels.to_owned());
            let remote = Remote::new(&url).with_token(Some("s3cret-Token_1"));
            assert!(remote.saved_funnels(&action).unwrap().is_empty());
            let got = server.join().unwrap();
            assert_eq!(got.header("authorization"), Some("Bearer s3cret-Token_1"));
        }

        // Empty is none; the token is never shown.
        let (url, server) = serve_once("200 OK", funnels.to_owned());
        let remote = Remote::new(&url).with_token(Some("  "));
        remote
            .saved_funnels(&FunnelsAction::List { site: None })
            .unwrap();
        assert_eq!(server.join().unwrap().header("authorization"), None);
        let remote = Remote::new("http://127.0.0.1:9").with_token(Some("s3cret-Token_1"));
        assert!(!format!("{remote:?}").contains("s3cret"), "{remote:?}");
        let err = Remote::new("http://127.0.0.1:9")
            .with_token(Some("s3cret\nX-Evil: 1"))
            .run(&request())
            .unwrap_err();
        assert!(
            matches!(err, Error::BadParam { name: "token", .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn a_401_says_how_to_pass_a_token_and_403_404_keep_the_collectors_message() {
        let body = r#"{"error":"unauthorized","message":"missing bearer token"}"#;
        let (url, _server) = serve_once("401 Unauthorized", body.to_owned());
        let err = run_remote(&url, &request()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the collector needs an API token: pass --token or set CLICKTRAIL_TOKEN \
             (create one with `clicktrail tokens create --user NAME`)"
        );
        assert_eq!(err.code(), "unauthorized");

        let (url, _server) = serve_once("401 Unauthorized", body.to_owned());
        let err = Remote::new(&url)
            .with_token(Some("s3cret-Token_1"))
            .saved_funnels(&FunnelsAction::List { site: None })
            .unwrap_err();
        assert!(
            matches!(err, Error::Unauthorized { token_sent: true }),
            "{err}"
        );
        assert!(
            err.to_string().contains("did not accept the API token"),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");

        let body = r#"{"error":"forbidden","message":"token of alice may not read site shop"}"#;
        let (url, _server) = serve_once("403 Forbidden", body.to_owned());
        let err = Remote::new(&url)
            .with_token(Some("s3cret-Token_1"))
            .run(&request())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the collector answered 403 forbidden: token of alice may not read site shop"
        );
        let (url, _server) = serve_once("404 Not Found", "no such route".to_owned());
        let err = run_remote(&url, &request()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the collector answered 404 not_found: no such route"
        );
    }

    #[test]
    fn error_answers_show_code_and_message() {
        let body = r#"{"error":"bad_step","message":"bad step `x`: expected TYPE:VALUE"}"#;
        let (url, _server) = serve_once("400 Bad Request", body.to_owned());
        let err = run_remote(&url, &request()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the collector answered 400 bad_step: bad step `x`: expected TYPE:VALUE"
        );

        let (url, _server) = serve_once("502 Bad Gateway", "upstream down".to_owned());
        let err = run_remote(&url, &request()).unwrap_err();
        assert!(
            matches!(&err, Error::Remote { status: 502, code, message } if code == "bad_gateway" && message == "upstream down"),
            "{err}"
        );
    }

    #[test]
    fn an_unreachable_collector_is_named() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = run_remote(&format!("http://127.0.0.1:{port}"), &request()).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("127.0.0.1:{port}/api/audit")),
            "{err}"
        );
    }
}
