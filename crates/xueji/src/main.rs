//! `xueji`: the one binary of the national student status system (see API.md for the contract).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

mod bench;
mod bench_dock;
mod node;
mod promote;

use clap::{Args, Parser, Subcommand};
use xueji_app::{App, Clock, Db};

#[derive(Parser)]
#[command(name = "xueji", version, about = "全国中小学生学籍信息管理系统")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DbArgs {
    /// SQLite database file.
    #[arg(long, value_name = "PATH", conflicts_with = "database_url")]
    db: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`.
    #[arg(long, value_name = "URL", env = "XUEJI_DATABASE_URL")]
    database_url: Option<String>,
}

impl DbArgs {
    fn url(&self, default_path: &str) -> String {
        if let Some(p) = &self.db {
            return format!("sqlite://{}", p.display());
        }
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{default_path}"))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Creates (if absent) a demo database, loads the demo dataset, and serves it.
    Demo {
        #[arg(long, value_name = "PATH", default_value = "./xueji-demo.db")]
        db: PathBuf,
        #[arg(
            long,
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:8080",
            env = "XUEJI_ADDR"
        )]
        addr: String,
        #[command(flatten)]
        accounts: AccountArgs,
    },
    /// Serves an existing database.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        #[arg(
            long,
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:8080",
            env = "XUEJI_ADDR"
        )]
        addr: String,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        accounts: AccountArgs,
    },
    /// Creates or upgrades the schema (idempotent).
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Loads a dataset without serving.
    Seed {
        #[command(subcommand)]
        what: SeedWhat,
    },
    /// Runs the province-scale benchmark scenarios (docs/performance.md) and prints each figure
    /// beside the bare database's own.
    Bench {
        /// Students in the generated province (河南).
        #[arg(long, default_value_t = 10_000_000)]
        students: usize,
        /// Schools in the province (default: one per ~667 students, 15,000 at 10 million).
        #[arg(long, default_value_t = 0)]
        schools: usize,
        /// Rows run through the import scenario (default: a tenth of the students).
        #[arg(long, default_value_t = 0)]
        import_rows: usize,
        /// Transfers generated for the work-list scenario (default: a tenth of the students).
        #[arg(long, default_value_t = 0)]
        list_transfers: usize,
        /// Complete transfers run through the HTTP API by the workflow scenario.
        #[arg(long, default_value_t = 2000)]
        transfers: usize,
        /// Concurrent HTTP clients of the workflow scenario.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Concurrent keep-alive HTTP clients of the lookup scenario.
        #[arg(long, default_value_t = 64)]
        lookup_clients: usize,
        /// Seconds each lookup measurement runs.
        #[arg(long, default_value_t = 15)]
        lookup_secs: u64,
        /// Scenarios to run, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "import,lookup,lists,workflow,start"
        )]
        scenarios: Vec<String>,
        /// A fresh SQLite file path (default: a temporary file).
        #[arg(long, value_name = "PATH", conflicts_with = "database_url")]
        db: Option<PathBuf>,
        /// `postgres://…` server: the run creates and then drops its own database there.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// SQLite `synchronous=NORMAL` instead of the default FULL.
        #[arg(long)]
        normal: bool,
        /// Keep the generated database after the run (its URL is printed).
        #[arg(long)]
        keep: bool,
    },
    /// 对接 exchange speed: live event delay hub → provincial node, and the drain of a backlog.
    BenchDock {
        /// Events piled up while the node is away.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Transfers filed while the node syncs (at most the 96 demo students of two 北京 schools).
        #[arg(long, default_value_t = 90)]
        live: usize,
    },
    /// Writes an online, consistent copy of an SQLite database to a new file.
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// The new file to write (must not exist).
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Imports data files.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// 升级/毕业 at the year's switch: every enrolled student moves up one grade, the final grades
    /// graduate; refused (listing the students) while any of them has an open business.
    Promote {
        /// The school year that begins, e.g. 2026.
        #[arg(long)]
        year: i32,
        /// Only the schools of this region subtree (6-digit code).
        #[arg(long, value_name = "CODE")]
        region: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        what: AuditWhat,
    },
}

#[derive(Subcommand)]
enum SeedWhat {
    /// The deterministic demo dataset (idempotent).
    Demo {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ImportWhat {
    /// Imports an .xlsx of students (the template's columns) into a school, reporting row by
    /// row; writes nothing when any row is wrong unless `--commit-valid`.
    Students {
        /// The .xlsx file (download the template at /api/v1/students/template.xlsx?school=CODE).
        file: PathBuf,
        /// 学校标识码 of the school the students join.
        #[arg(long, value_name = "CODE")]
        school: String,
        #[command(flatten)]
        db: DbArgs,
        /// Write the valid rows even when others are wrong.
        #[arg(long)]
        commit_valid: bool,
        /// Write rows that only look like a record on file (疑似重复), each with an open problem
        /// record, instead of refusing them.
        #[arg(long)]
        confirm_suspected: bool,
    },
}

#[derive(Subcommand)]
enum AuditWhat {
    /// Checks the hash chain; exit 0 when intact.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Removes audit rows older than N days (N ≥ 180, 网络安全法 Art. 21); the chain stays
    /// verifiable from an anchor.
    Prune {
        #[arg(long)]
        keep_days: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

const DEFAULT_DB: &str = "./xueji.db";

/// 对接: `--mode province` runs a docked province's own system, syncing with the hub.
#[derive(Args, Clone)]
struct NodeArgs {
    /// `national` (the hub, default) or `province` (a docked province's node).
    #[arg(long, default_value = "national", value_parser = ["national", "province"])]
    mode: String,
    /// The node's province code, e.g. 110000.
    #[arg(long, value_name = "CODE", required_if_eq("mode", "province"))]
    province: Option<String>,
    /// The hub's base URL, e.g. http://hub.example:8080.
    #[arg(long, value_name = "URL", required_if_eq("mode", "province"))]
    hub: Option<String>,
    /// The node's Ed25519 key file (Base64 seed); created when absent.
    #[arg(long, value_name = "FILE", required_if_eq("mode", "province"))]
    key: Option<PathBuf>,
    /// The hub's public key (Base64, from the Ministry): answers without its signature are
    /// refused. Without it the node trusts the transport.
    #[arg(long, value_name = "BASE64")]
    hub_key: Option<String>,
}

/// Account security of a serving instance (README, 账号安全).
#[derive(Args, Clone)]
struct AccountArgs {
    /// Who must use the TOTP second factor: `authority` (authority, national and the separated
    /// administrators' accounts; the default), `all`, or `none`.
    #[arg(long, value_name = "WHO", env = "XUEJI_TOTP_REQUIRED")]
    totp_required: Option<String>,
}

/// Applies the account settings and the operator's secret key (`XUEJI_SECRET_KEY`,
/// `XUEJI_SECRET_KEY_FILE`, or a key file beside the SQLite database, created when absent), then
/// encrypts any TOTP secret still stored in plaintext.
async fn secure(app: &App, url: &str, args: &AccountArgs) -> anyhow::Result<()> {
    if let Some(v) = &args.totp_required {
        let mut p = app.accounts();
        p.totp_required = xueji_app::accounts::TotpRequired::parse(v)
            .map_err(|e| anyhow::anyhow!("--totp-required: {e}"))?;
        app.set_accounts(p);
    }
    use xueji_app::secret_key::{KeySource, SecretKey};
    match SecretKey::from_env(url).map_err(|e| anyhow::anyhow!(e))? {
        Some((key, source)) => {
            match source {
                KeySource::Generated(path) => tracing::warn!(
                    path = %path.display(),
                    "generated a new secret key for TOTP secrets at rest (mode 0600); back it up \
                     apart from the database: without it enrolled second factors cannot be checked"
                ),
                KeySource::File(path) => {
                    tracing::info!(path = %path.display(), "secret key read from file")
                }
                KeySource::Env => tracing::info!("secret key read from XUEJI_SECRET_KEY"),
            }
            app.set_secret_key(key);
            let n = app.encrypt_plaintext_secrets().await?;
            if n > 0 {
                tracing::info!(count = n, "encrypted TOTP secrets stored in plaintext");
            }
        }
        None => tracing::warn!(
            "no secret key: set XUEJI_SECRET_KEY or XUEJI_SECRET_KEY_FILE (one key shared by every \
             server of this database); TOTP enrolment is refused until then"
        ),
    }
    Ok(())
}

async fn open(url: &str) -> anyhow::Result<App> {
    let db = Db::connect(url).await?;
    db.migrate().await?;
    Ok(App::new(db, Clock::system()).await?)
}

fn print_demo_banner(url: &str) {
    println!("xueji 全国中小学生学籍信息管理系统（演示）");
    println!("  网址 URL:       {url}");
    println!(
        "  演示账号 accounts (密码 password: {}):",
        xueji_app::seed::DEMO_PASSWORD
    );
    println!("    moe                      全国学籍管理员 national administrator");
    println!(
        "    sysadmin / secadmin / auditor   系统管理员 / 安全管理员 / 安全审计员（三员分立）"
    );
    println!("    edu410000 / edu410100 / edu410105   河南省 / 郑州市 / 金水区 学籍主管部门");
    println!("    edu440000 / edu440106 / edu110108   广东省 / 天河区 / 海淀区 学籍主管部门");
    println!("    4101050001-admin / 4101050001-reviewer   金水区第一小学 学籍管理员 / 审核员");
    println!("    4401060001-admin / 4401060001-reviewer   天河区第一小学 学籍管理员 / 审核员");
    println!(
        "    edu410105-leader …       河南/广东/北京各学籍主管部门的领导账号（政策要求领导确认时）"
    );
    println!(
        "    (每所学校: <学校标识码>-admin, <学校标识码>-reviewer; 每个地区: edu<行政区划代码>)"
    );
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo { db, addr, accounts } => {
            let signals = stop_signals();
            let started = Instant::now();
            let url = format!("sqlite://{}", db.display());
            let app = open(&url).await?;
            secure(&app, &url, &accounts).await?;
            let summary = app.seed_demo().await?;
            tokio::spawn(deadline_loop(app.clone()));
            let server = xueji_web::Server::start(app, &addr).await?;
            tracing::info!("listening on {}", server.url());
            println!(
                "已就绪 ready in {:.1}s: {} regions, {} schools, {} students, {} accounts",
                started.elapsed().as_secs_f64(),
                summary.regions,
                summary.schools,
                summary.students,
                summary.users
            );
            print_demo_banner(&server.url());
            wait_for_signal(signals).await;
            server.stop().await?;
        }
        Command::Serve {
            db,
            addr,
            node,
            accounts,
        } => {
            let signals = stop_signals();
            let url = db.url(DEFAULT_DB);
            let app = open(&url).await?;
            secure(&app, &url, &accounts).await?;
            tokio::spawn(deadline_loop(app.clone()));
            if node.mode != "province" {
                tokio::spawn(node::alert_loop(app.clone()));
            }
            if node.mode == "province" {
                let (Some(province), Some(hub), Some(key)) = (node.province, node.hub, node.key)
                else {
                    anyhow::bail!("--mode province needs --province, --hub and --key");
                };
                let key = node::load_or_create_key(&key)?;
                let hub = hub.trim_end_matches('/').to_string();
                app.node_init(&province, &hub).await?;
                tracing::info!(
                    province = %province, hub = %hub,
                    "province node; dock public key {}", xueji_app::dock::public_b64(&key)
                );
                let n = node::Node {
                    app: app.clone(),
                    hub,
                    province,
                    key,
                    client: reqwest::Client::builder().no_proxy().build()?,
                    hub_key: node.hub_key,
                };
                tokio::spawn(n.run());
            }
            let db = app.db.clone();
            let server = xueji_web::Server::start(app, &addr).await?;
            tracing::info!("listening on {}", server.url());
            wait_for_signal(signals).await;
            server.stop().await?;
            if let Some((now, peak)) = db.sqlite_heap() {
                // What of the resident memory is SQLite's (its page caches above all).
                tracing::info!(
                    "SQLite heap at shutdown: {:.1} MB now, {:.1} MB at its peak",
                    now as f64 / 1048576.0,
                    peak as f64 / 1048576.0
                );
            }
        }
        Command::Migrate { db } => {
            let d = Db::connect(&db.url(DEFAULT_DB)).await?;
            d.migrate().await?;
            println!("schema up to date");
        }
        Command::Seed {
            what: SeedWhat::Demo { db },
        } => {
            let app = open(&db.url(DEFAULT_DB)).await?;
            let s = app.seed_demo().await?;
            println!(
                "demo dataset: {} regions, {} schools, {} students, {} accounts",
                s.regions, s.schools, s.students, s.users
            );
        }
        Command::Bench {
            students,
            schools,
            import_rows,
            list_transfers,
            transfers,
            clients,
            lookup_clients,
            lookup_secs,
            scenarios,
            db,
            database_url,
            normal,
            keep,
        } => {
            bench::run(bench::BenchOpts {
                students,
                schools,
                import_rows,
                list_transfers,
                transfers,
                clients,
                lookup_clients,
                lookup_secs,
                scenarios,
                database_url: db
                    .map(|p| format!("sqlite://{}", p.display()))
                    .or(database_url),
                durability: if normal {
                    xueji_app::db::Durability::Normal
                } else {
                    xueji_app::db::Durability::Full
                },
                keep,
            })
            .await?;
        }
        Command::BenchDock { events, live } => bench_dock::run(events, live).await?,
        Command::Backup { db, dest } => {
            let url = db.url(DEFAULT_DB);
            let d = Db::connect(&url).await?;
            d.backup_to(&dest).await?;
            println!("backup written to {}", dest.display());
            // The copy's TOTP secrets open only with the key they were sealed under.
            let key = xueji_app::secret_key::backup_key(
                std::env::var(xueji_app::secret_key::ENV_KEY)
                    .ok()
                    .as_deref(),
                std::env::var(xueji_app::secret_key::ENV_KEY_FILE)
                    .ok()
                    .as_deref(),
                &url,
                &dest,
            )
            .map_err(anyhow::Error::msg)?;
            println!("{key}");
        }
        Command::Import {
            what:
                ImportWhat::Students {
                    file,
                    school,
                    db,
                    commit_valid,
                    confirm_suspected,
                },
        } => {
            import_students(
                &db.url(DEFAULT_DB),
                file,
                &school,
                commit_valid,
                confirm_suspected,
            )
            .await?
        }
        Command::Promote { year, region, db } => {
            promote::run(&db.url(DEFAULT_DB), year, region.as_deref()).await?
        }
        Command::Audit {
            what: AuditWhat::Verify { db },
        } => {
            let app = open(&db.url(DEFAULT_DB)).await?;
            // Every chain is checked; each broken one is named with its first broken link.
            let chains = xueji_app::audit::verify_chains(&app.db).await?;
            let rows: u64 = chains.iter().map(|c| c.rows).sum();
            let broken: Vec<String> = chains
                .iter()
                .filter_map(|c| {
                    c.broken
                        .as_ref()
                        .map(|(seq, why)| format!("chain {} at row {seq}: {why}", c.chain))
                })
                .collect();
            if !broken.is_empty() {
                anyhow::bail!("audit chain broken: {}", broken.join("; "))
            }
            println!("audit chain intact: {rows} rows in {} chains", chains.len())
        }
        Command::Audit {
            what: AuditWhat::Prune { keep_days, db },
        } => {
            let app = open(&db.url(DEFAULT_DB)).await?;
            let r = app.prune_audit(keep_days).await?;
            match r.anchor_seq {
                Some(seq) => println!(
                    "audit rows removed: {} (older than {keep_days} days); chain anchored at row {seq}",
                    r.removed
                ),
                None => println!("no audit rows older than {keep_days} days"),
            }
        }
    }
    Ok(())
}

/// Runs the deadline job (reminders, escalation, 逾期视为同意) at start and every ten minutes.
async fn deadline_loop(app: App) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        match app.process_deadlines().await {
            Ok(r) if r != xueji_app::deadlines::DeadlineReport::default() => {
                tracing::info!(?r, "deadline job")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "deadline job failed"),
        }
        // 封存: accounts unused for six months (2025 Measures).
        match app.seal_inactive_accounts().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sealed = n, "sealed unused accounts"),
            Err(e) => tracing::warn!(error = %e, "sealing job failed"),
        }
    }
}

/// `xueji import students`: the row report on stdout, progress on stderr every 10,000 rows.
async fn import_students(
    url: &str,
    file: PathBuf,
    school: &str,
    commit_valid: bool,
    confirm_suspected: bool,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use xueji_app::import::{Commit, ImportOptions, ImportPhase, ImportProgress, XlsxSource};

    if !file.is_file() {
        anyhow::bail!("no such file: {}", file.display());
    }
    let app = open(url).await?;
    let started = Instant::now();
    let printed = [AtomicU64::new(0), AtomicU64::new(0)];
    let progress = |p: ImportProgress| {
        let (i, word) = match p.phase {
            ImportPhase::Validating => (0, "校验 validated"),
            ImportPhase::Writing => (1, "写入 written"),
        };
        let bucket = p.done / 10_000;
        if bucket > printed[i].load(Ordering::Relaxed)
            || (p.done == p.total && !p.done.is_multiple_of(10_000))
        {
            printed[i].store(
                bucket.max(printed[i].load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            eprintln!(
                "{word} {}/{} rows ({:.1}s)",
                p.done,
                p.total,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let opts = ImportOptions {
        commit: if commit_valid {
            Commit::ValidRows
        } else {
            Commit::IfAllValid
        },
        confirm_suspected,
    };
    let report = app
        .import_students_as_operator(school, XlsxSource::Path(file), opts, &progress)
        .await?;
    for e in &report.errors {
        println!("第{}行\t{}（{}）\t{}", e.row, e.column, e.cell, e.message);
    }
    if report.errors_total > report.errors.len() as u64 {
        println!(
            "……另有{}处错误未列出",
            report.errors_total - report.errors.len() as u64
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "共{}行：有效{}行，有误{}行，已写入{}行 | rows {}, valid {}, invalid {}, written {} in {:.1}s ({:.0} rows/s)",
        report.rows,
        report.valid,
        report.invalid,
        report.written,
        report.rows,
        report.valid,
        report.invalid,
        report.written,
        secs,
        report.rows as f64 / secs.max(0.001)
    );
    if report.invalid > 0 && !commit_valid {
        anyhow::bail!(
            "{} of {} rows are invalid; nothing written (fix them, or pass --commit-valid to write the {} valid rows)",
            report.invalid,
            report.rows,
            report.valid
        );
    }
    if report.written == 0 && report.valid == 0 {
        anyhow::bail!("no valid rows; nothing written");
    }
    Ok(())
}

/// The stop signals, installed before the server announces it is ready: a SIGTERM that arrives
/// right after the ready line must stop it gracefully, not kill it.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
}

fn stop_signals() -> StopSignals {
    StopSignals {
        term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
    }
}

async fn wait_for_signal(mut signals: StopSignals) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match signals.term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A benchmark's bulk loads are slow statements by design: sqlx's warnings would drown its
    // figures.
    let default_log = match cli.command {
        Command::Bench { .. } | Command::BenchDock { .. } => "info,sqlx=error",
        _ => "info,sqlx=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XUEJI_LOG")
                .unwrap_or_else(|_| default_log.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xueji: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xueji: {e:#}");
            ExitCode::FAILURE
        }
    }
}
