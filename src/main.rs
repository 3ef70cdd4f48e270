//! The `auditdeck` command: serves the dashboard, and holds the admin tasks.

use auditdeck::integrity::VerifyMode;
use auditdeck::models::Role;
use auditdeck::server::config::Config;
use auditdeck::server::state::AppState;
use auditdeck::server::{api_keys, auth, backup, demo, maintenance, recorder, router, store};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "auditdeck",
    version,
    about = "Audit trail service with an admin dashboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard and the ingest API (the default).
    Serve,
    /// Create the database when missing and fill it with the demo data set.
    /// Refuses a database that already holds events.
    Demo {
        /// Random seed: the same seed gives the same data.
        #[arg(long)]
        seed: Option<u64>,
        /// Number of audit events.
        #[arg(long)]
        events: Option<u32>,
        /// Number of admin-session records.
        #[arg(long)]
        sessions: Option<u32>,
    },
    /// Create an API key for the ingest API and print it. It is shown only once.
    CreateApiKey {
        /// What the key is for, e.g. the name of the sending system.
        #[arg(long)]
        label: String,
        /// What it may do: events:write (the default), events:read,
        /// sessions:read; repeat the flag or separate with commas.
        #[arg(long = "scope", value_delimiter = ',', default_value = "events:write")]
        scopes: Vec<String>,
    },
    /// Create a user (e.g. the first admin). The password comes from the
    /// environment variable AUDITDECK_PASSWORD; without it one is generated
    /// and printed once.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Full name, as shown in the dashboard.
        #[arg(long)]
        name: String,
        /// viewer, auditor or admin.
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Create the database when missing and run the migrations.
    Migrate,
    /// Walk the hash chain and report whether the log is intact, or the first
    /// entries that do not match. Exits with status 2 when it is broken.
    Verify {
        /// Start from the newest checkpoint an earlier verification
        /// confirmed, instead of the start of the chain.
        #[arg(long)]
        quick: bool,
        /// A checkpoint file kept elsewhere (from `auditdeck checkpoints` or
        /// the dashboard): the chain must still pass through each one.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<std::path::PathBuf>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print every checkpoint as JSON Lines, to keep somewhere else.
    Checkpoints {
        /// Write a checkpoint of the chain's head first.
        #[arg(long)]
        new: bool,
    },
    /// Write a verified backup of the database to DEST (a file for SQLite,
    /// with DEST.sha256 beside it; a pg_dump folder for PostgreSQL) while
    /// the server keeps running. Prints the head it covers.
    Backup {
        /// Where to write it; must not exist yet.
        dest: std::path::PathBuf,
    },
    /// Restore a backup into the configured database (stop the server
    /// first). The backup's checksums and chain are verified before, the
    /// restored database after; a database that holds events is refused
    /// unless --force.
    Restore {
        /// A file (SQLite) or folder (PostgreSQL) `auditdeck backup` wrote.
        src: std::path::PathBuf,
        /// Replace a database that already holds events.
        #[arg(long)]
        force: bool,
        /// A checkpoint file kept elsewhere: the restored chain must still
        /// pass through each one.
        #[arg(long, value_name = "FILE")]
        checkpoints: Option<std::path::PathBuf>,
    },
    /// Apply the retention policy now (the server does this every hour).
    Retention,
    /// Print the API's OpenAPI 3.1 document (as served at
    /// /api/v1/openapi.json), for client generators.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("auditdeck: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.app.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auditdeck: {e}");
            if e == Broken.to_string() {
                ExitCode::from(BROKEN)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn print_openapi() -> Result<(), String> {
    let doc = auditdeck::server::openapi::document();
    println!("{}", doc.to_pretty_json().map_err(|e| e.to_string())?);
    Ok(())
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    // Needs no database: printed before one is opened (or created).
    if let Command::Openapi = command {
        return print_openapi();
    }
    // Opens the database itself, and only once it has checked the backup.
    if let Command::Restore {
        src,
        force,
        checkpoints,
    } = command
    {
        return restore(&config.app.database_url, &src, force, checkpoints).await;
    }
    let db = store::open(&config.app.database_url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", config.app.database_url))?;
    let db = match config.app.clock_start {
        Some(at) => {
            tracing::warn!(
                "clock-start is set: this server's clock is shifted to start at {}",
                auditdeck::models::format_rfc3339(at)
            );
            db.with_clock(auditdeck::server::clock::Clock::starting_at(at))
        }
        None => db,
    };
    let result = match command {
        Command::Serve => serve(config, db.clone()).await,
        Command::Demo {
            seed,
            events,
            sessions,
        } => {
            let spec = demo::DemoSpec {
                seed: seed.unwrap_or(config.app.demo_seed),
                events: events.unwrap_or(config.app.demo_events),
                sessions: sessions.unwrap_or(config.app.demo_sessions),
                anchor: db.now(),
            };
            load_demo(&db, &spec).await
        }
        Command::CreateApiKey { label, scopes } => {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let (id, key) = api_keys::create_with_scopes(&db, &label, &scopes)
                .await
                .map_err(|e| e.to_string())?;
            println!("API key {id} ({label}) created. It is shown only this once:");
            println!("{key}");
            Ok(())
        }
        Command::CreateUser {
            username,
            email,
            name,
            role,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| format!("role: \"{role}\" is not one of viewer, auditor, admin"))?;
            let (password, generated) = match std::env::var("AUDITDECK_PASSWORD") {
                Ok(p) if !p.is_empty() => (p, false),
                _ => (auth::generate_password(), true),
            };
            let form = auth::UserForm {
                username: &username,
                email: &email,
                name: &name,
                role,
                password: &password,
            };
            auth::create_user(&db, None, &cli_client(), form)
                .await
                .map_err(|e| e.to_string())?;
            println!("user {username} ({}) created", role.as_str());
            if generated {
                println!("password (shown once): {password}");
            }
            Ok(())
        }
        Command::Migrate => {
            println!("database {} is migrated", config.app.database_url);
            Ok(())
        }
        Command::Verify {
            quick,
            checkpoints,
            json,
        } => verify(&db, quick, checkpoints, json).await,
        Command::Checkpoints { new } => {
            if new {
                store::write_checkpoint(&db, "periodic")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            for c in store::list_checkpoints(&db)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("{}", maintenance::checkpoint_line(&c));
            }
            Ok(())
        }
        Command::Openapi => print_openapi(),
        Command::Restore { .. } => unreachable!("restore runs before the database is opened"),
        Command::Backup { dest } => {
            let report = backup::run_backup(&db, &config.app.database_url, &dest, "command")
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "backup verified: {} ({}, sha256 {}) in {:.1} s",
                report.path.display(),
                auditdeck::models::format_bytes(report.bytes),
                report.sha256,
                report.seconds
            );
            println!(
                "head #{} chain {} ({} entries, {} events walked)",
                report.copy.head_id,
                report.copy.chain_hash,
                report.copy.entries,
                report.copy.events
            );
            Ok(())
        }
        Command::Retention => {
            let (policy, _) = maintenance::effective_policy(&db, &config.app)
                .await
                .map_err(|e| e.to_string())?;
            match store::apply_retention(&db, &policy, db.now())
                .await
                .map_err(|e| e.to_string())?
            {
                None => println!("retention: the policy keeps every event ({})", policy.describe()),
                Some(outcome) => println!(
                    "retention run {}: {}, {} events removed in {} transactions (longest {} ms); retention cut at #{}",
                    outcome.run.id,
                    outcome.run.status,
                    outcome.run.removed,
                    outcome.chunks,
                    outcome.longest_chunk.as_millis(),
                    outcome.cut_id
                ),
            }
            Ok(())
        }
    };
    db.close().await;
    result
}

fn read_checkpoints(
    path: Option<std::path::PathBuf>,
) -> Result<Vec<auditdeck::server::chain::Expected>, String> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            maintenance::parse_checkpoints(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => Ok(Vec::new()),
    }
}

async fn restore(
    url: &str,
    src: &std::path::Path,
    force: bool,
    checkpoints: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let external = read_checkpoints(checkpoints)?;
    let given = external.len();
    let report = backup::restore(url, src, force, external)
        .await
        .map_err(|e| format!("restore refused: {e}"))?;
    println!(
        "backup {} verified: head #{} chain {}",
        src.display(),
        report.before.head_id,
        report.before.chain_hash
    );
    println!(
        "restored into {url}{}: head #{} chain {} ({} events walked, {} checkpoints confirmed{})",
        if report.replaced_events {
            ", replacing the events it held"
        } else {
            ""
        },
        report.after.head_id,
        report.after.chain_hash,
        report.after.events,
        report.after.checkpoints_confirmed,
        if given > 0 {
            format!(
                "; of the file's {given}, {} lie beyond the backup's head and cannot be checked on it",
                report.after.checkpoints_beyond
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Exit status of `verify` when the chain is broken.
const BROKEN: u8 = 2;

async fn verify(
    db: &store::Db,
    quick: bool,
    checkpoints: Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), String> {
    let external = read_checkpoints(checkpoints)?;
    let mode = if quick {
        VerifyMode::Quick
    } else {
        VerifyMode::Full
    };
    let id = store::begin_verification(db, "command line", mode)
        .await
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let report = maintenance::run_verification(db, id, mode, external, None, &cli_client())
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!("{}", maintenance::summary(&report));
        println!(
            "walked #{}..#{} ({} events, {} tombstones) in {seconds:.1} s; head {}",
            report.start.after_id + 1,
            report.end_id,
            report.events,
            report.tombstones,
            report.end_hash
        );
        for p in &report.problems {
            println!("  problem: {}", p.describe());
        }
        if report.more_problems > 0 {
            println!("  … and {} more problems", report.more_problems);
        }
        for d in &report.deleted {
            println!("  deleted: {}", d.describe());
        }
        if report.more_deleted > 0 {
            println!("  … and {} more deleted ranges", report.more_deleted);
        }
    }
    if report.intact() {
        Ok(())
    } else {
        Err(Broken.to_string())
    }
}

/// The error `verify` ends with when the chain is broken.
struct Broken;

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the chain is broken (see the problems above)")
    }
}

async fn load_demo(db: &store::Db, spec: &demo::DemoSpec) -> Result<(), String> {
    let existing = store::count_events(db).await.map_err(|e| e.to_string())?;
    if existing > 0 {
        return Err(format!(
            "the database already holds {existing} events; demo data goes only into an empty one"
        ));
    }
    let started = std::time::Instant::now();
    demo::load(db, spec).await.map_err(|e| e.to_string())?;
    println!(
        "demo data: {} events and {} admin-session records (seed {}) in {:.1} s",
        spec.events,
        spec.sessions,
        spec.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn serve(config: Config, db: store::Db) -> Result<(), String> {
    if config.app.demo_data && store::count_events(&db).await.map_err(|e| e.to_string())? == 0 {
        let spec = demo::DemoSpec {
            seed: config.app.demo_seed,
            events: config.app.demo_events,
            sessions: config.app.demo_sessions,
            anchor: db.now(),
        };
        load_demo(&db, &spec).await?;
        let (_, key) = api_keys::create(&db, "demo")
            .await
            .map_err(|e| e.to_string())?;
        println!("demo API key (shown once): {key}");
        create_demo_users(&db).await?;
    }
    let addr = config.leptos.site_addr;
    let (recorder, writer) = recorder::spawn(db.clone(), recorder::QUEUE_CAPACITY);
    let app_config = Arc::new(config.app);
    let maintenance = maintenance::spawn_maintenance(db.clone(), app_config.clone());
    let backups = backup::spawn_backups(db.clone(), &app_config);
    let api_guard: Arc<auditdeck::server::read_api::ApiGuard> = Default::default();
    let tallies = auditdeck::server::read_api::spawn_tally_writer(db.clone(), api_guard.clone());
    let streams = auditdeck::server::streams::spawn_delivery(db.clone(), Default::default());
    let alerts = auditdeck::server::alerts::spawn_alerts(db.clone(), Default::default());
    let state = AppState {
        leptos_options: config.leptos,
        db: db.clone(),
        config: app_config,
        recorder,
        exports: Default::default(),
        api: api_guard.clone(),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("Auditdeck is serving on http://{addr}");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| e.to_string())?;
    maintenance.abort();
    if let Some(backups) = backups {
        backups.abort();
    }
    tallies.abort();
    // Leases let go, so another server takes the streams over at once.
    streams.stop().await;
    alerts.stop().await;
    // The reads of the minute under way, then what is still queued.
    auditdeck::server::read_api::write_tallies(&db, api_guard.ended(i64::MAX)).await;
    // The router and every request are gone: store what is still queued.
    let stored = writer.drained().await;
    println!("Auditdeck stopped; {stored} admin-session records stored this run");
    Ok(())
}

/// One user per role, with fresh passwords printed once.
async fn create_demo_users(db: &store::Db) -> Result<(), String> {
    let users = demo::create_users(db, &cli_client())
        .await
        .map_err(|e| e.to_string())?;
    println!("demo users (passwords shown once):");
    for (role, username, password) in users {
        println!(
            "  {:<8} username {username:<8} password {password}",
            role.as_str()
        );
    }
    Ok(())
}

/// The command line as a client, for the events it writes.
fn cli_client() -> auth::ClientInfo {
    auth::ClientInfo {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        user_agent: Some(format!("auditdeck-cli/{}", env!("CARGO_PKG_VERSION"))),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
