//! Runtime configuration: `Leptos.toml`, read at start.
//!
//! The `[package.metadata.leptos]` table holds Leptos' own keys (site address,
//! site root, ...), which `LEPTOS_*` environment variables override. The
//! `[auditdeck]` table holds ours; each key is overridden by the environment
//! variable `AUDITDECK_` + the key in upper case with `-` as `_`
//! (`database-url` -> `AUDITDECK_DATABASE_URL`). `DATABASE_URL` is honoured
//! too when `AUDITDECK_DATABASE_URL` is not set.

use leptos::config::LeptosOptions;
use std::path::Path;

pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub leptos: LeptosOptions,
    pub app: AppConfig,
}

/// The `[auditdeck]` table of Leptos.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// `sqlite://path/to/file.db`.
    pub database_url: String,
    /// Fill an empty database with the demo data set at start.
    pub demo_data: bool,
    pub demo_seed: u64,
    pub demo_events: u32,
    pub demo_sessions: u32,
    /// Largest ingest request body accepted, in bytes (413 beyond it).
    pub ingest_max_body_bytes: usize,
    /// Most events accepted in one ingest batch.
    pub ingest_max_batch: usize,
    /// Read API requests each key may make per minute (a token bucket that
    /// holds a minute's worth and refills continuously); 429 beyond it.
    pub api_reads_per_minute: u32,
    /// tracing filter, e.g. `info` or `auditdeck=debug,info`.
    pub log: String,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Failed sign-ins counted over this many minutes.
    pub login_window_minutes: u32,
    /// Failed sign-ins allowed per account within the window.
    pub login_max_failures_per_account: u32,
    /// Failed sign-ins allowed per IP address within the window.
    pub login_max_failures_per_ip: u32,
    /// Record every signed-in request in Admin Sessions.
    pub record_admin_sessions: bool,
    /// The retention policy until an admin sets one in Settings:
    /// `retention-days` (0 keeps events forever) and `retention-by-action`
    /// (`LOGIN=30, EXPORT=forever`).
    pub retention: crate::integrity::RetentionPolicy,
    /// For tests and demonstrations: the server's clock reads this instant
    /// (microseconds) at start and runs on from it. `None`: the system clock.
    pub clock_start: Option<i64>,
    /// Scheduled backups (`backup-folder`, `backup-every-minutes`,
    /// `backup-keep`); `None` when no folder is set.
    pub backup: Option<BackupSchedule>,
}

/// Where and how often the server writes its scheduled backups.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSchedule {
    pub folder: std::path::PathBuf,
    pub every_minutes: u32,
    /// Backups kept in the folder (the oldest beyond it are removed).
    pub keep: u32,
}

impl BackupSchedule {
    pub fn every_micros(&self) -> i64 {
        i64::from(self.every_minutes) * 60_000_000
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/auditdeck.db".into(),
            demo_data: false,
            demo_seed: 42,
            demo_events: 100_000,
            demo_sessions: 20_000,
            ingest_max_body_bytes: 4 * 1024 * 1024,
            ingest_max_batch: 1000,
            api_reads_per_minute: 600,
            log: "info".into(),
            session_idle_minutes: 60,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            login_window_minutes: 15,
            login_max_failures_per_account: 5,
            login_max_failures_per_ip: 20,
            record_admin_sessions: true,
            retention: crate::integrity::RetentionPolicy::default(),
            clock_start: None,
            backup: None,
        }
    }
}

/// Every key of the `[auditdeck]` table, as written in Leptos.toml.
pub const APP_KEYS: [&str; 22] = [
    "database-url",
    "demo-data",
    "demo-seed",
    "demo-events",
    "demo-sessions",
    "ingest-max-body-bytes",
    "ingest-max-batch",
    "api-reads-per-minute",
    "log",
    "session-idle-minutes",
    "secure-cookies",
    "trusted-proxies",
    "login-window-minutes",
    "login-max-failures-per-account",
    "login-max-failures-per-ip",
    "record-admin-sessions",
    "retention-days",
    "retention-by-action",
    "clock-start",
    "backup-folder",
    "backup-every-minutes",
    "backup-keep",
];

/// The environment variable that overrides a key.
pub fn env_var_for(key: &str) -> String {
    format!("AUDITDECK_{}", key.to_uppercase().replace('-', "_"))
}

impl AppConfig {
    /// Reads the `[auditdeck]` table of a TOML text, then applies overrides
    /// from `env` (a lookup such as `std::env::var`).
    pub fn from_toml_and_env(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("Leptos.toml: {e}"))?;
        let table = match doc.get("auditdeck") {
            Some(toml::Value::Table(t)) => t.clone(),
            Some(_) => return Err("Leptos.toml: [auditdeck] must be a table".into()),
            None => toml::Table::new(),
        };
        for key in table.keys() {
            if !APP_KEYS.contains(&key.as_str()) {
                return Err(format!("Leptos.toml: unknown key [auditdeck] {key}"));
            }
        }
        let mut config = Self::default();
        let value = |key: &str| -> Option<String> {
            let from_env = env(&env_var_for(key)).or_else(|| {
                (key == "database-url")
                    .then(|| env("DATABASE_URL"))
                    .flatten()
            });
            from_env.or_else(|| {
                table.get(key).map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
        };
        fn parse<T: std::str::FromStr>(key: &str, raw: String) -> Result<T, String> {
            raw.trim()
                .parse()
                .map_err(|_| format!("configuration {key}: \"{raw}\" is not valid"))
        }
        if let Some(v) = value("database-url") {
            config.database_url = v;
        }
        if let Some(v) = value("demo-data") {
            config.demo_data = parse("demo-data", v)?;
        }
        if let Some(v) = value("demo-seed") {
            config.demo_seed = parse("demo-seed", v)?;
        }
        if let Some(v) = value("demo-events") {
            config.demo_events = parse("demo-events", v)?;
        }
        if let Some(v) = value("demo-sessions") {
            config.demo_sessions = parse("demo-sessions", v)?;
        }
        if let Some(v) = value("ingest-max-body-bytes") {
            config.ingest_max_body_bytes = parse("ingest-max-body-bytes", v)?;
        }
        if let Some(v) = value("ingest-max-batch") {
            config.ingest_max_batch = parse("ingest-max-batch", v)?;
        }
        if let Some(v) = value("api-reads-per-minute") {
            config.api_reads_per_minute = parse("api-reads-per-minute", v)?;
        }
        if let Some(v) = value("log") {
            config.log = v;
        }
        if let Some(v) = value("session-idle-minutes") {
            config.session_idle_minutes = parse("session-idle-minutes", v)?;
        }
        if let Some(v) = value("secure-cookies") {
            config.secure_cookies = parse("secure-cookies", v)?;
        }
        if let Some(v) = value("trusted-proxies") {
            config.trusted_proxies = parse_proxies(&v)?;
        }
        if let Some(v) = value("login-window-minutes") {
            config.login_window_minutes = parse("login-window-minutes", v)?;
        }
        if let Some(v) = value("login-max-failures-per-account") {
            config.login_max_failures_per_account = parse("login-max-failures-per-account", v)?;
        }
        if let Some(v) = value("login-max-failures-per-ip") {
            config.login_max_failures_per_ip = parse("login-max-failures-per-ip", v)?;
        }
        if let Some(v) = value("record-admin-sessions") {
            config.record_admin_sessions = parse("record-admin-sessions", v)?;
        }
        if let Some(v) = value("retention-days") {
            config.retention.keep_days = match parse::<u32>("retention-days", v)? {
                0 => None,
                days => Some(days),
            };
        }
        if let Some(v) = value("retention-by-action") {
            config.retention.by_action = crate::integrity::RetentionPolicy::parse_by_action(&v)
                .map_err(|e| format!("configuration retention-by-action: {e}"))?;
        }
        if let Some(v) = value("clock-start").filter(|v| !v.trim().is_empty()) {
            config.clock_start = Some(
                super::clock::parse_instant(&v)
                    .map_err(|e| format!("configuration clock-start: {e}"))?,
            );
        }
        if let Some(folder) = value("backup-folder").filter(|v| !v.trim().is_empty()) {
            let mut schedule = BackupSchedule {
                folder: folder.trim().into(),
                every_minutes: 1440,
                keep: 7,
            };
            if let Some(v) = value("backup-every-minutes") {
                schedule.every_minutes = parse("backup-every-minutes", v)?;
            }
            if let Some(v) = value("backup-keep") {
                schedule.keep = parse("backup-keep", v)?;
            }
            if schedule.every_minutes == 0 {
                return Err("configuration backup-every-minutes: must be at least 1".into());
            }
            if schedule.keep == 0 {
                return Err("configuration backup-keep: must be at least 1".into());
            }
            config.backup = Some(schedule);
        }
        config
            .retention
            .validate()
            .map_err(|e| format!("configuration retention: {e}"))?;
        if config.session_idle_minutes == 0 {
            return Err("configuration session-idle-minutes: must be at least 1".into());
        }
        if config.ingest_max_batch == 0 {
            return Err("configuration ingest-max-batch: must be at least 1".into());
        }
        if config.api_reads_per_minute == 0 {
            return Err("configuration api-reads-per-minute: must be at least 1".into());
        }
        Ok(config)
    }
}

/// `trusted-proxies`: addresses or CIDR ranges, separated by commas (in TOML
/// also an array of strings, which arrives here as its TOML text).
fn parse_proxies(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|item| item.trim().trim_matches('"').trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("configuration trusted-proxies: \"{item}\" is not an IP address or CIDR range")
                })
        })
        .collect()
}

impl Config {
    /// Loads the configuration file named by `AUDITDECK_CONFIG` (default
    /// `Leptos.toml`) with the environment's overrides.
    pub fn load() -> Result<Self, String> {
        let path =
            std::env::var("AUDITDECK_CONFIG").unwrap_or_else(|_| DEFAULT_CONFIG_FILE.to_string());
        Self::load_from(Path::new(&path))
    }

    pub fn load_from(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let app = AppConfig::from_toml_and_env(&text, |k| std::env::var(k).ok())?;
        let leptos = leptos::config::get_configuration(Some(&path.to_string_lossy()))
            .map_err(|e| format!("{}: {e}", path.display()))?
            .leptos_options;
        Ok(Self {
            leptos: with_hashes_if_built(leptos),
            app,
        })
    }
}

/// `hash-files` only when the build wrote the file that names the hashes
/// (beside the server's binary): a binary built without cargo-leptos would
/// otherwise fail on the first page, which looks the names up there.
fn with_hashes_if_built(mut options: LeptosOptions) -> LeptosOptions {
    if options.hash_files {
        let written = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(options.hash_file.as_ref())))
            .is_some_and(|file| file.is_file());
        if !written {
            tracing::warn!(
                "hash-files is set but the build wrote no {}: serving unhashed file names",
                options.hash_file
            );
            options.hash_files = false;
        }
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_defaults() {
        assert_eq!(
            AppConfig::from_toml_and_env("", |_| None).unwrap(),
            AppConfig::default()
        );
    }

    #[test]
    fn file_values_and_env_overrides() {
        let text = "[auditdeck]\ndatabase-url = \"sqlite://a.db\"\ndemo-data = true\ningest-max-batch = 10\n";
        let c = AppConfig::from_toml_and_env(text, |_| None).unwrap();
        assert_eq!(c.database_url, "sqlite://a.db");
        assert!(c.demo_data);
        assert_eq!(c.ingest_max_batch, 10);
        let c = AppConfig::from_toml_and_env(text, |k| match k {
            "AUDITDECK_DATABASE_URL" => Some("sqlite://b.db".into()),
            "AUDITDECK_DEMO_DATA" => Some("false".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database_url, "sqlite://b.db");
        assert!(!c.demo_data);
    }

    #[test]
    fn database_url_falls_back_to_plain_env() {
        let c = AppConfig::from_toml_and_env("", |k| {
            (k == "DATABASE_URL").then(|| "sqlite://c.db".to_string())
        })
        .unwrap();
        assert_eq!(c.database_url, "sqlite://c.db");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        assert!(
            AppConfig::from_toml_and_env("[auditdeck]\ndemo-seed = \"x\"", |_| None)
                .unwrap_err()
                .contains("demo-seed")
        );
        assert!(
            AppConfig::from_toml_and_env("[auditdeck]\ndatabse-url = \"x\"", |_| None)
                .unwrap_err()
                .contains("databse-url")
        );
        assert!(AppConfig::from_toml_and_env("", |k| {
            (k == "AUDITDECK_INGEST_MAX_BATCH").then(|| "0".to_string())
        })
        .is_err());
    }

    #[test]
    fn trusted_proxies_accept_addresses_ranges_and_arrays() {
        let c = AppConfig::from_toml_and_env(
            "[auditdeck]\ntrusted-proxies = [\"10.0.0.0/8\", \"::1\"]",
            |_| None,
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(c.trusted_proxies[0].contains(&"10.2.3.4".parse::<std::net::IpAddr>().unwrap()));
        let c = AppConfig::from_toml_and_env("", |k| {
            (k == "AUDITDECK_TRUSTED_PROXIES").then(|| "127.0.0.1, 192.168.0.0/16".to_string())
        })
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(AppConfig::from_toml_and_env("", |k| {
            (k == "AUDITDECK_TRUSTED_PROXIES").then(|| "proxy.local".to_string())
        })
        .unwrap_err()
        .contains("proxy.local"));
    }

    #[test]
    fn retention_reads_days_and_action_rules() {
        let c = AppConfig::from_toml_and_env(
            "[auditdeck]\nretention-days = 365\nretention-by-action = \"LOGIN=30, DELETE=forever\"",
            |_| None,
        )
        .unwrap();
        assert_eq!(c.retention.keep_days, Some(365));
        assert_eq!(c.retention.by_action.len(), 2);
        assert_eq!(c.retention.by_action[1].keep_days, None);
        let forever =
            AppConfig::from_toml_and_env("[auditdeck]\nretention-days = 0", |_| None).unwrap();
        assert!(!forever.retention.removes_anything());
        assert!(AppConfig::from_toml_and_env("", |k| {
            (k == "AUDITDECK_RETENTION_BY_ACTION").then(|| "LOGIN=soon".to_string())
        })
        .unwrap_err()
        .contains("retention-by-action"));
    }

    #[test]
    fn backups_are_scheduled_only_with_a_folder() {
        let off = AppConfig::from_toml_and_env("[auditdeck]\nbackup-keep = 3", |_| None).unwrap();
        assert_eq!(off.backup, None);
        let on = AppConfig::from_toml_and_env(
            "[auditdeck]\nbackup-folder = \"backups\"\nbackup-every-minutes = 60\nbackup-keep = 3",
            |_| None,
        )
        .unwrap()
        .backup
        .unwrap();
        assert_eq!(on.folder, std::path::PathBuf::from("backups"));
        assert_eq!((on.every_minutes, on.keep), (60, 3));
        assert_eq!(on.every_micros(), 3_600_000_000);
        let defaults = AppConfig::from_toml_and_env("", |k| {
            (k == "AUDITDECK_BACKUP_FOLDER").then(|| "/var/backups/auditdeck".to_string())
        })
        .unwrap()
        .backup
        .unwrap();
        assert_eq!((defaults.every_minutes, defaults.keep), (1440, 7));
        assert!(AppConfig::from_toml_and_env(
            "[auditdeck]\nbackup-folder = \"b\"\nbackup-keep = 0",
            |_| None
        )
        .unwrap_err()
        .contains("backup-keep"));
    }

    #[test]
    fn every_key_maps_to_an_env_var() {
        assert_eq!(
            env_var_for("ingest-max-body-bytes"),
            "AUDITDECK_INGEST_MAX_BODY_BYTES"
        );
        for key in APP_KEYS {
            assert!(env_var_for(key).starts_with("AUDITDECK_"));
        }
    }
}
