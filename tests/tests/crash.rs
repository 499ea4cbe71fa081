//! Nothing acknowledged is ever lost: the real collector process under load from
//! concurrent clients is killed with SIGKILL (no drain, no checkpoint) five times and
//! restarted on the same DuckDB file; every event it answered 200 for must be there.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;
use clicktrail_e2e::Collector;
use serde_json::json;

const ROUNDS: u32 = 5;
const CLIENTS: u32 = 8;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9() -> Result<()> {
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut sent_total = 0u64;
    let mut dir = None;
    for round in 0..ROUNDS {
        let c = match dir.take() {
            None => Collector::start().await?,
            Some(d) => Collector::launch(d).await?,
        };
        let url = format!("{}/collect", c.url);
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (url, acked) = (url.clone(), acked.clone());
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut sent = 0u64;
                for n in 0u64.. {
                    let ids: Vec<String> = (0..5)
                        .map(|e| format!("{round:04x}{client:04x}{n:020x}{e:04x}"))
                        .collect();
                    let t = now_ms();
                    let events: Vec<_> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| json!({"id": id, "k": "click", "t": t, "seq": i, "path": "/crash", "sel": "button#go"}))
                        .collect();
                    let body = json!({"v": 1, "site": "demo", "sid": format!("{round:08x}{client:08x}{n:016x}"),
                                      "sent": t, "events": events});
                    sent += 5;
                    match http.post(&url).body(body.to_string()).send().await {
                        Ok(r) if r.status().is_success() => {
                            acked.lock().unwrap().extend(ids);
                        }
                        Ok(_) => {}
                        Err(_) => break, // killed
                    }
                }
                sent
            }));
        }
        tokio::time::sleep(Duration::from_millis(1200 + u64::from(round) * 250)).await;
        dir = Some(c.kill().await?);
        for h in clients {
            sent_total += h.await?;
        }
    }
    let c = Collector::launch(dir.take().expect("a folder")).await?;
    let db = c.stop().await?;
    let conn = analyzer::open_read_only(&db)?;
    let mut stmt = conn.prepare("SELECT event_id FROM events WHERE path = '/crash'")?;
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<&String> = acked.difference(&stored).take(5).collect();
    println!(
        "kill -9 x{ROUNDS}: {sent_total} events sent, {} acknowledged, {} stored, {} lost",
        acked.len(),
        stored.len(),
        acked.difference(&stored).count()
    );
    assert!(
        acked.len() > 1000,
        "the load reached the collector ({})",
        acked.len()
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    Ok(())
}
