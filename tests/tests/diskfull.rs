//! A full disk: the real collector on a small file system that fills up. It must
//! refuse what it cannot store (never a 2xx for it), say so on `/healthz`, and keep
//! everything it acknowledged, through a restart.
//!
//! Needs root to mount a 24 MiB tmpfs (CI runs as root); elsewhere it says why it
//! did not run.

use std::{collections::HashSet, path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, Result};
use clicktrail_e2e::Collector;
use serde_json::json;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_honestly_and_loses_nothing() -> Result<()> {
    let point = std::env::temp_dir().join(format!("clicktrail-full-{}", std::process::id()));
    std::fs::create_dir_all(&point)?;
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&point)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir(&point);
        eprintln!("diskfull: not run: mounting a tmpfs needs root");
        return Ok(());
    }
    let _mount = Mount(point.clone());
    // Room to give back once the disk is full.
    let filler = point.join("filler");
    std::fs::write(&filler, vec![0u8; 6 << 20])?;
    let small_disk = [
        ("CLICKTRAIL_MIN_FREE_MB", "1"),
        ("CLICKTRAIL_RATE_LIMIT_SITE", "0"),
    ];
    let c = Collector::launch_with(tempfile::tempdir_in(&point)?, &small_disk).await?;
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/healthz", c.url)).send().await?;
    assert_eq!(health.status().as_u16(), 200, "healthy while there is room");
    let url = format!("{}/collect", c.url);
    let mut acked = HashSet::new();
    let (mut refused, mut wrong) = (0u32, Vec::new());
    let padding = "x".repeat(200);
    for n in 0u64..20_000 {
        let ids: Vec<String> = (0..50).map(|e| format!("{n:028x}{e:04x}")).collect();
        let t = now_ms();
        let events: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                json!({"id": id, "k": "custom", "t": t, "seq": i, "path": "/full",
                                  "name": "fill", "props": {"pad": padding, "n": n}})
            })
            .collect();
        let body = json!({"v": 1, "site": "demo", "sid": format!("{n:032x}"), "sent": t, "events": events});
        let resp = http.post(&url).body(body.to_string()).send().await?;
        let status = resp.status();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        if status.is_success() {
            acked.extend(ids);
        } else {
            refused += 1;
            if !(status.as_u16() == 500 && answer["error"] == "storage_failed"
                || status.as_u16() == 503)
            {
                wrong.push(format!("{status} {answer}"));
            }
            if refused >= 20 {
                break;
            }
        }
    }
    assert!(
        refused >= 20,
        "the disk never filled ({} events stored)",
        acked.len()
    );
    assert!(
        wrong.is_empty(),
        "refusals must be 500 storage_failed or 503: {wrong:?}"
    );
    let health = http.get(format!("{}/healthz", c.url)).send().await?;
    assert_eq!(
        health.status().as_u16(),
        503,
        "healthz must not say ok on a full disk"
    );
    let health: serde_json::Value = health.json().await?;
    assert_eq!(health["status"], "failing", "{health}");

    // Space comes back; restart (as an operator would) and count.
    std::fs::remove_file(&filler)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dir = c.kill().await?;
    let c = Collector::launch_with(dir, &small_disk)
        .await
        .context("restart after the disk filled")?;
    let db = c.stop().await?;
    let conn = analyzer::open_read_only(&db)?;
    let mut stmt = conn.prepare("SELECT event_id FROM events WHERE path = '/full'")?;
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    let lost = acked.difference(&stored).count();
    println!(
        "disk full: {} events acknowledged, {refused} batches refused (500/503), {} stored after restart, {lost} lost",
        acked.len(),
        stored.len()
    );
    assert_eq!(lost, 0, "acknowledged events lost");
    Ok(())
}
