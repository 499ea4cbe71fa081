//! Running an audit on a collector that holds the DuckDB file.
//!
//! DuckDB allows one read-write process per file, so while the collector runs, the CLI
//! (`analyzer --collector URL …`) cannot open the file: it posts the
//! [`AuditRequest`] as JSON to the collector's `POST {URL}/api/audit`, which runs the
//! same [`crate::run`] on its own connection and answers with the [`Report`] JSON.
//! A non-2xx answer carries `{"error": CODE, "message": "..."}` and becomes
//! [`Error::Remote`]; a collector that cannot be reached becomes [`Error::Unreachable`].
//! Saved funnels travel the same way (`/api/funnels`, [`saved_funnels_remote`]).

use std::time::Duration;

use reqwest::Method;
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

/// Asks the collector at `base_url` (e.g. `http://127.0.0.1:8080`) to run `req`.
pub fn run_remote(base_url: &str, req: &AuditRequest) -> Result<Report, Error> {
    call(
        base_url,
        Method::POST,
        AUDIT_PATH,
        &[],
        Some(req),
        "a report",
    )
}

/// Lists, saves or deletes saved funnels on the collector at `base_url`:
/// `GET /api/funnels?site=S`, `POST /api/funnels` (a [`SavedFunnel`]),
/// `DELETE /api/funnels/NAME?site=S`. Each answers `{"funnels": [...]}`.
pub fn saved_funnels_remote(
    base_url: &str,
    action: &FunnelsAction,
) -> Result<Vec<SavedFunnel>, Error> {
    let body: FunnelsBody = match action {
        FunnelsAction::List { site } => {
            let query: Vec<(&str, &str)> = site.iter().map(|s| ("site", s.as_str())).collect();
            call::<(), _>(base_url, Method::GET, FUNNELS_PATH, &query, None, "funnels")?
        }
        FunnelsAction::Save(funnel) => call(
            base_url,
            Method::POST,
            FUNNELS_PATH,
            &[],
            Some(funnel),
            "funnels",
        )?,
        FunnelsAction::Delete { site, name } => {
            // The name goes into the path: only a valid one is sent.
            crate::saved::check_name(name)?;
            call::<(), _>(
                base_url,
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

/// One JSON call: `method` on `base_url` + `path` with `query` and an optional JSON
/// body; a 2xx answer is parsed as `T` (`what` names it in errors), any other becomes
/// [`Error::Remote`].
fn call<B: serde::Serialize, T: DeserializeOwned>(
    base_url: &str,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&B>,
    what: &str,
) -> Result<T, Error> {
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    let unreachable = |detail: String| Error::Unreachable {
        url: url.clone(),
        detail,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| unreachable(chain(&e)))?;
    let mut request = client.request(method, &url).query(query);
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
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
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
    Err(Error::Remote {
        status: status.as_u16(),
        code,
        message,
    })
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

    /// Serves one request with `status` and `body`; returns the URL and a handle
    /// yielding the request body it received.
    fn serve_once(
        status: &'static str,
        body: String,
    ) -> (String, thread::JoinHandle<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0;
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
            (request_line, String::from_utf8(request).unwrap())
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
        let (line, body) = server.join().unwrap();
        assert!(line.starts_with("POST /api/audit "), "{line}");
        assert_eq!(
            serde_json::from_str::<AuditRequest>(&body).unwrap(),
            request()
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
