//! Running an audit on a collector that holds the DuckDB file.
//!
//! DuckDB allows one read-write process per file, so while the collector runs, the CLI
//! (`analyzer --collector URL …`) cannot open the file: it posts the
//! [`AuditRequest`] as JSON to the collector's `POST {URL}/api/audit`, which runs the
//! same [`crate::run`] on its own connection and answers with the [`Report`] JSON.
//! A non-2xx answer carries `{"error": CODE, "message": "..."}` and becomes
//! [`Error::Remote`]; a collector that cannot be reached becomes [`Error::Unreachable`].

use std::time::Duration;

use serde::Deserialize;

use crate::{AuditRequest, Error, Report};

/// The path of the audit endpoint on a collector.
pub const AUDIT_PATH: &str = "/api/audit";

/// The body of a collector's error answer.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

/// Asks the collector at `base_url` (e.g. `http://127.0.0.1:8080`) to run `req`.
pub fn run_remote(base_url: &str, req: &AuditRequest) -> Result<Report, Error> {
    let url = format!("{}{AUDIT_PATH}", base_url.trim_end_matches('/'));
    let unreachable = |detail: String| Error::Unreachable {
        url: url.clone(),
        detail,
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| unreachable(chain(&e)))?;
    let response = client
        .post(&url)
        .json(req)
        .send()
        .map_err(|e| unreachable(chain(&e)))?;
    let status = response.status();
    let body = response.text().map_err(|e| unreachable(chain(&e)))?;
    if status.is_success() {
        return serde_json::from_str(&body)
            .map_err(|e| unreachable(format!("the answer is not a report: {e}")));
    }
    let (code, message) = match serde_json::from_str::<ErrorBody>(&body) {
        Ok(b) => (b.error, b.message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "_"),
            body.chars().take(200).collect::<String>().trim().to_owned(),
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
                since: None,
                until: None,
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
