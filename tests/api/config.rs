use auditdeck::server::config::{AppConfig, APP_KEYS};

fn table_at<'a>(doc: &'a toml::Table, path: &[&str]) -> &'a toml::Table {
    let mut table = doc;
    for key in path {
        table = table
            .get(*key)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("missing table {key}"));
    }
    table
}

#[test]
fn leptos_toml_agrees_with_cargo_toml_on_shared_keys() {
    let cargo: toml::Table = std::fs::read_to_string("Cargo.toml")
        .unwrap()
        .parse()
        .unwrap();
    let leptos: toml::Table = std::fs::read_to_string("Leptos.toml")
        .unwrap()
        .parse()
        .unwrap();
    let build = table_at(&cargo, &["package", "metadata", "leptos"]);
    let runtime = table_at(&leptos, &["package", "metadata", "leptos"]);
    let shared: Vec<&String> = runtime.keys().filter(|k| build.contains_key(*k)).collect();
    for key in [
        "output-name",
        "site-root",
        "site-pkg-dir",
        "site-addr",
        "reload-port",
    ] {
        assert!(
            shared.iter().any(|k| *k == key),
            "{key} must be in both files"
        );
    }
    for key in shared {
        assert_eq!(
            build[key], runtime[key],
            "Cargo.toml and Leptos.toml disagree on {key}"
        );
    }
}

#[test]
fn leptos_toml_app_section_is_complete_and_valid() {
    let text = std::fs::read_to_string("Leptos.toml").unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let app = table_at(&doc, &["auditdeck"]);
    for key in APP_KEYS {
        assert!(app.contains_key(key), "Leptos.toml lacks [auditdeck] {key}");
    }
    let config = AppConfig::from_toml_and_env(&text, |_| None).unwrap();
    assert_eq!(config.ingest_max_batch, 1000);
    assert_eq!(config.api_reads_per_minute, 600);
    assert!(!config.demo_data);
}

#[test]
fn readme_documents_every_key_and_env_var() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    for key in APP_KEYS {
        assert!(readme.contains(&format!("`{key}`")), "README lacks {key}");
        let var = auditdeck::server::config::env_var_for(key);
        assert!(readme.contains(&var), "README lacks {var}");
    }
}

#[test]
fn compile_time_output_name_matches_cargo_toml() {
    // Without it, pages would load `<name>_bg.wasm`, which cargo-leptos does not write.
    let cargo: toml::Table = std::fs::read_to_string("Cargo.toml")
        .unwrap()
        .parse()
        .unwrap();
    let build = table_at(&cargo, &["package", "metadata", "leptos"]);
    assert_eq!(
        option_env!("LEPTOS_OUTPUT_NAME"),
        build["output-name"].as_str(),
        ".cargo/config.toml [env] LEPTOS_OUTPUT_NAME must equal output-name"
    );
}
