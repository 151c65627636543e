//! Scenario "lookup": `GET /api/v1/students/{no}` over HTTP by `clients` concurrent keep-alive
//! clients signed in as the province's authority (so every student is in scope, and the
//! identity number comes back masked), against a bare axum route in the same process that
//! runs only the point query by student number on the same read pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use serde_json::{Value, json};
use xueji_app::{App, Db, on_pool};

use super::dataset::Province;
use super::{peak_rss_mb, percentile, reset_peak_rss, rss_mb};

type BareRow = (i64, String, String, String, Option<String>);

/// The bare route: the point query and a JSON answer, no sign-in, no scope, no history.
async fn bare(State(db): State<Db>, Path(no): Path<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let row: Result<Option<BareRow>, sqlx::Error> = on_pool!(db.read(), p => sqlx::query_as(
        "SELECT id, student_no, name, status, grade FROM students WHERE student_no = $1"
    ).bind(no).fetch_optional(p).await);
    match row {
        Ok(Some((id, no, name, status, grade))) => axum::Json(json!({
            "id": id, "student_no": no, "name": name, "status": status, "grade": grade
        }))
        .into_response(),
        Ok(None) => axum::http::StatusCode::NOT_FOUND.into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(super) struct Figures {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub errors: usize,
}

/// `clients` tasks GET `url(key)` for `secs` seconds (after a one-second warm-up).
pub(super) async fn hammer(
    client: &reqwest::Client,
    token: Option<&str>,
    make_url: Arc<dyn Fn(&str) -> String + Send + Sync>,
    keys: Arc<Vec<String>>,
    clients: usize,
    secs: u64,
) -> anyhow::Result<Figures> {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs(secs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for t in 0..clients {
        let (client, keys, next, make_url) =
            (client.clone(), keys.clone(), next.clone(), make_url.clone());
        let token = token.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut i = t * 7919;
            loop {
                let now = Instant::now();
                if now >= stop_at {
                    break;
                }
                i ^= next
                    .fetch_add(1, Ordering::Relaxed)
                    .wrapping_mul(2_654_435_761);
                let key = &keys[i % keys.len()];
                let mut req = client.get(make_url(key));
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let ok = match req.send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        ok && r.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if now >= warm_until {
                    lat.push(now.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    Ok(Figures {
        rps: lat.len() as f64 / secs as f64,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        errors,
    })
}

pub async fn run(
    app: &App,
    db: &Db,
    province: &Province,
    clients: usize,
    secs: u64,
) -> anyhow::Result<()> {
    let keys = Arc::new(province.sample_nos.clone());
    anyhow::ensure!(!keys.is_empty(), "no students to look up");
    let server = xueji_web::Server::start(app.clone(), "127.0.0.1:0").await?;
    let base = server.url();
    let bare_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_base = format!("http://{}", bare_listener.local_addr()?);
    let bare_router = axum::Router::new()
        .route("/bare/{no}", axum::routing::get(bare))
        .with_state(db.clone());
    let bare_server = tokio::spawn(async move { axum::serve(bare_listener, bare_router).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let token = super::login(&client, &base, "edu410000").await?;
    // The answer must be what users rely on: found, and masked.
    let one: Value = client
        .get(format!("{base}/api/v1/students/{}", keys[0]))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(
        one["id_number"].is_null() && one["id_number_masked"].is_string(),
        "lookup answer not masked: {}",
        one.get("id_number_masked").unwrap_or(&Value::Null)
    );

    // Both routes read the same students on the same pool, but each reader connection has its
    // own page cache and the API runs first: unwarmed, it paid the caches' filling (page faults,
    // pages read in) that the bare route then found done. A short unmeasured run of each first.
    for (url, token) in [
        (format!("{base}/api/v1/students/"), Some(token.as_str())),
        (format!("{bare_base}/bare/"), None),
    ] {
        hammer(
            &client,
            token,
            Arc::new(move |k: &str| format!("{url}{k}")),
            keys.clone(),
            clients,
            1,
        )
        .await?;
    }

    reset_peak_rss();
    let b = base.clone();
    let api = hammer(
        &client,
        Some(&token),
        Arc::new(move |k: &str| format!("{b}/api/v1/students/{k}")),
        keys.clone(),
        clients,
        secs,
    )
    .await?;
    let api_peak = peak_rss_mb();
    let bb = bare_base.clone();
    let bare = hammer(
        &client,
        None,
        Arc::new(move |k: &str| format!("{bb}/bare/{k}")),
        keys.clone(),
        clients,
        secs,
    )
    .await?;
    bare_server.abort();
    server.stop().await?;
    println!();
    println!(
        "lookup (HTTP GET /api/v1/students/{{no}}, {clients} keep-alive clients, {secs}s each, {} keys):",
        keys.len()
    );
    println!(
        "  API  requests/s {:>9.0}   p50 {:.2} ms  p99 {:.2} ms  errors {}",
        api.rps, api.p50, api.p99, api.errors
    );
    println!(
        "  bare requests/s {:>9.0}   p50 {:.2} ms  p99 {:.2} ms  errors {}   (point query only)",
        bare.rps, bare.p50, bare.p99, bare.errors
    );
    println!("  API / bare       {:>9.1} %", 100.0 * api.rps / bare.rps);
    println!(
        "  peak RSS during the API run {api_peak:.0} MB (now {:.0} MB; SQLite page cache up to 64 MB per connection)",
        rss_mb()
    );
    anyhow::ensure!(
        api.errors == 0 && bare.errors == 0,
        "lookups failed: {} API, {} bare",
        api.errors,
        bare.errors
    );
    Ok(())
}
