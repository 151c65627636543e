//! `xueji serve --mode province`: the provincial node's sync loop with the hub (对接).
//!
//! Each round: deliver the queued messages (oldest first, each with its own idempotency key, so
//! a message repeated after a crash or a lost answer is answered from the hub's first answer and
//! applied once), then read the feed from the stored cursor, store the page and the new cursor in
//! one transaction, and acknowledge it. Failures back off exponentially (0.5 s doubling to 30 s);
//! an empty feed is polled every `POLL`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use xueji_app::App;
use xueji_app::dock::{self, DockFeed, DockKey};

const POLL: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Events read per request.
const PAGE: i64 = 500;

/// Reads the node's key file (Base64 of the 32-byte Ed25519 seed); creates it when absent.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<DockKey> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        return dock::key_from_secret_b64(&text)
            .with_context(|| format!("{}: not a Base64 Ed25519 seed", path.display()));
    }
    let key = dock::new_key();
    write_private(path, &format!("{}\n", dock::secret_b64(&key)))
        .with_context(|| format!("writing key file {}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

pub struct Node {
    pub app: App,
    pub hub: String,
    pub province: String,
    pub key: DockKey,
    pub client: reqwest::Client,
    /// The hub's public key (Base64), given out of band: every answer must carry its signature.
    pub hub_key: Option<String>,
}

impl Node {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        idem: Option<&str>,
        body: &[u8],
    ) -> anyhow::Result<(u16, String)> {
        let ts = chrono::Utc::now().timestamp();
        let method_s = method.as_str().to_string();
        let headers = dock::sign_request(
            &self.key,
            &self.province,
            method.as_str(),
            path,
            ts,
            idem,
            body,
        );
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.hub))
            .timeout(Duration::from_secs(30));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        if !body.is_empty() {
            r = r
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let res = r.send().await?;
        let status = res.status().as_u16();
        let header = |n: &str| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (rts, rsig) = (
            header(dock::HEADER_TIMESTAMP),
            header(dock::HEADER_SIGNATURE),
        );
        let text = res.text().await?;
        if let Some(hub_key) = &self.hub_key {
            let req = dock::DockRequest {
                method: method_s.as_str(),
                path_and_query: path,
                province: Some(&self.province),
                timestamp: None,
                signature: None,
                idem_key: idem,
                body,
            };
            let ok = match (&rts, &rsig) {
                (Some(ts), Some(sig)) => dock::verify_text(
                    hub_key,
                    &dock::response_base_string(status, &req, ts, text.as_bytes()),
                    sig,
                ),
                _ => false,
            };
            if !ok {
                bail!("answer to {path} does not carry the hub's signature ({status})");
            }
        }
        Ok((status, text))
    }

    /// One round; returns whether more events are waiting at the hub.
    async fn round(&self) -> anyhow::Result<bool> {
        for m in self.app.node_pending().await? {
            let (status, text) = self
                .send(
                    reqwest::Method::POST,
                    &m.path,
                    Some(&m.idem_key),
                    m.body.as_bytes(),
                )
                .await?;
            if status >= 500 || status == 401 || (status == 409 && text.contains("正在处理")) {
                // Not an answer to keep: the hub failed, refused the signature (clock, key), or
                // is still running the first copy. Retry with the same key.
                bail!("message {} to the hub: {status} {text}", m.idem_key);
            }
            tracing::info!(key = %m.idem_key, status, "delivered to the hub");
            self.app.node_answered(m.id, status, &text).await?;
        }
        let cursor = self.app.node_status().await?.feed_cursor;
        let path = format!("/api/dock/v1/events?after={cursor}&limit={PAGE}");
        let (status, text) = self.send(reqwest::Method::GET, &path, None, b"").await?;
        if status != 200 {
            bail!("feed: {status} {text}");
        }
        let feed: DockFeed = serde_json::from_str(&text).context("feed JSON")?;
        if feed.events.is_empty() {
            self.app.node_store_events(&[], cursor).await?;
            self.follow_roll().await?;
            return Ok(false);
        }
        self.app
            .node_store_events(&feed.events, feed.next_after)
            .await?;
        let body = serde_json::json!({ "through": feed.next_after }).to_string();
        let (status, text) = self
            .send(
                reqwest::Method::POST,
                "/api/dock/v1/events/ack",
                Some(&format!("ack-{}", feed.next_after)),
                body.as_bytes(),
            )
            .await?;
        if status != 200 {
            bail!("ack: {status} {text}");
        }
        tracing::debug!(through = feed.next_after, "feed stored and acknowledged");
        self.follow_roll().await?;
        Ok(feed.more)
    }

    /// Applies the roll changes the stored events called for, in their order: a student pulled
    /// out of the province's school is marked transferred out; one pulled into it is enrolled
    /// from the hub's signed file (fetched here, verified with the pinned key). Each change is
    /// applied once, in one transaction with its `applied` mark; after a crash the pending ones
    /// are taken up again. A failure to fetch stops the round (retried with backoff) so the
    /// changes keep their order.
    async fn follow_roll(&self) -> anyhow::Result<()> {
        for task in self.app.node_roll_pending().await? {
            let file = if task.direction == "in" {
                let path = format!("/api/dock/v1/transfers/{}/file", task.transfer_id);
                let (status, text) = self.send(reqwest::Method::GET, &path, None, b"").await?;
                if status != 200 {
                    bail!(
                        "signed file of transfer {}: {status} {text}",
                        task.transfer_id
                    );
                }
                Some(
                    serde_json::from_str::<dock::SignedDocument>(&text)
                        .context("signed file JSON")?,
                )
            } else {
                None
            };
            let outcome = self
                .app
                .node_roll_apply(&task, file.as_ref(), self.hub_key.as_deref())
                .await?;
            tracing::info!(transfer_id = task.transfer_id, %outcome, "roll follows the hub");
        }
        Ok(())
    }

    pub async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.round().await {
                Ok(more) => {
                    backoff = BACKOFF_MIN;
                    if !more {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "sync with the hub failed");
                    let _ = self.app.node_sync_failed(&e.to_string()).await;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// The hub's alert: every minute, a warning for each docked province whose system has not read
/// its feed for `XUEJI_DOCK_ALERT_MINUTES` while events wait (also shown on the page 对接管理).
/// With `XUEJI_DOCK_MESSAGE_KEEP_DAYS` set (at least 180), it also prunes the message log of
/// older entries once a day (audited); unset, the log is kept without limit.
pub async fn alert_loop(app: App) {
    let keep_days = std::env::var("XUEJI_DOCK_MESSAGE_KEEP_DAYS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok());
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut minutes = 0u64;
    loop {
        tick.tick().await;
        if let Some(days) = keep_days
            && minutes.is_multiple_of(24 * 60)
        {
            match app.dock_prune_messages(days).await {
                Ok(removed) => tracing::info!(removed, keep_days = days, "dock message log pruned"),
                Err(e) => tracing::warn!(error = %e, "dock message log not pruned"),
            }
        }
        minutes += 1;
        match app.dock_overdue().await {
            Ok(list) => {
                for p in list {
                    tracing::warn!(
                        province = %p.province,
                        backlog = p.backlog,
                        last_fetch_at = ?p.last_fetch_at,
                        "对接告警: {} has not fetched its feed for more than {} minutes",
                        p.name,
                        dock::alert_minutes()
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "dock alert check failed"),
        }
    }
}
