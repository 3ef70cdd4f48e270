//! The OpenAPI document (`GET /api/v1/openapi.json`): it describes every
//! `/api/v1` route with its scope and error answers, its examples are the
//! server's own answers, and the README's curl examples are requests it
//! documents, answered as the README says.

use crate::common::{TestApp, TestResponse};
use auditdeck::server::api_keys;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;

async fn document(app: &TestApp) -> Value {
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    r.json()
}

/// The operation of `method` on the documented path `path` matches.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<(&'a str, &'a Value)> {
    let paths = doc["paths"].as_object()?;
    paths.iter().find_map(|(template, item)| {
        let fits = template.split('/').count() == path.split('/').count()
            && template
                .split('/')
                .zip(path.split('/'))
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()));
        let op = item.get(method.to_ascii_lowercase())?;
        fits.then_some((template.as_str(), op))
    })
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix("#/")
                .unwrap_or_else(|| panic!("{r} is not local"))
                .split('/')
                .fold(doc, |v, part| &v[part]);
            assert!(!target.is_null(), "{r} does not resolve");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Every `$ref` anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The names of the properties a schema's objects have (with `allOf`
/// parts), and the required ones.
fn properties(doc: &Value, schema: &Value) -> (Vec<String>, Vec<String>) {
    let schema = resolve(doc, schema);
    let mut names: Vec<String> = schema["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut required: Vec<String> = schema["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (n, r) = properties(doc, part);
        names.extend(n);
        required.extend(r);
    }
    (names, required)
}

/// An answer has the shape its operation documents for its status.
fn check_answer(doc: &Value, op: &Value, what: &str, r: &TestResponse) {
    let status = r.status.as_u16().to_string();
    let documented = &op["responses"][&status];
    assert!(
        !documented.is_null(),
        "{what}: answered {status}, which the document does not list ({})",
        r.text()
    );
    let documented = resolve(doc, documented);
    let Some(schema) = documented["content"]["application/json"].get("schema") else {
        return;
    };
    let body = r.json();
    let (names, required) = properties(doc, schema);
    if names.is_empty() {
        return; // any object (the document itself)
    }
    let keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
    for key in &keys {
        assert!(
            names.contains(key),
            "{what}: \"{key}\" is not in the documented answer ({names:?})"
        );
    }
    for name in &required {
        assert!(
            keys.contains(&name),
            "{what}: the answer lacks the required \"{name}\""
        );
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_describes_every_route_with_its_scope_and_errors() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    for (method, path, scope, statuses) in [
        (
            "post",
            "/api/v1/events",
            "events:write",
            &["201", "400", "401", "403", "409", "413", "415", "422"][..],
        ),
        (
            "get",
            "/api/v1/events",
            "events:read",
            &["200", "400", "401", "403", "429"][..],
        ),
        (
            "get",
            "/api/v1/events/{id}",
            "events:read",
            &["200", "400", "401", "403", "404", "429"][..],
        ),
        (
            "get",
            "/api/v1/sessions",
            "sessions:read",
            &["200", "400", "401", "403", "429"][..],
        ),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert_eq!(
            op["security"][0]["api_key"],
            serde_json::json!([scope]),
            "{method} {path}"
        );
        for status in statuses {
            let response = resolve(&doc, &op["responses"][*status]);
            assert!(response.is_object(), "{method} {path}: no {status}");
            if status.starts_with('4') {
                let schema = &response["content"]["application/json"]["schema"];
                let (names, required) = properties(&doc, schema);
                assert_eq!(
                    (names, required),
                    (vec!["error".to_string()], vec!["error".to_string()])
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 10, "{all:?}");
    for r in all {
        resolve(&doc, &serde_json::json!({ "$ref": r }));
    }

    // The Activity Log's filters are the read endpoint's parameters.
    let names: Vec<&str> = doc["paths"]["/api/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "user", "action", "table", "ip", "q", "from", "to", "range", "limit", "after", "order",
        "after_id",
    ] {
        assert!(names.contains(&name), "{name} is not documented: {names:?}");
    }
}

#[tokio::test]
async fn the_documents_error_examples_are_the_servers_own_answers() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let writer = app.api_key().await;
    let reader = api_keys::create_with_scopes(&app.db, "siem", &["events:read"])
        .await
        .unwrap()
        .1;
    let example = |path: &str, method: &str, status: &str| -> String {
        let response = resolve(&doc, &doc["paths"][path][method]["responses"][status]);
        response["content"]["application/json"]["example"]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} {status}: no example"))
            .to_string()
    };
    let send = |uri: &str, key: Option<&str>| {
        let mut request = Request::get(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        app.send(request.body(Body::empty()).unwrap())
    };

    let r = send("/api/v1/events?limit=5000", Some(&reader)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), example("/api/v1/events", "get", "400"));
    let r = send("/api/v1/events", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), example("/api/v1/events", "get", "401"));
    let r = send("/api/v1/events", Some(&writer)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error(), example("/api/v1/events", "get", "403"));
    let r = send("/api/v1/events/123456", Some(&reader)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), example("/api/v1/events/{id}", "get", "404"));

    let r = app
        .ingest(
            Some(&writer),
            r#"[{"action":"A"},{"action":"B"},{"action":"C"},{"action":"D","ip":"300.1.2.3"}]"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error(), example("/api/v1/events", "post", "400"));
    let r = app.ingest(Some(&reader), r#"{"action":"A"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.error(),
        example("/api/v1/events", "post", "403"),
        "the example's key has events:read only"
    );
}

/// A README curl command: method, path with query, headers, body, and the
/// status the README says it answers.
#[derive(Debug)]
struct Example {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    again: bool,
}

/// Splits a shell command into words (quotes kept together, `\` at a line
/// end joins lines; `$VAR` left as it is).
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// Every `curl` command in the README's shell blocks, with the `# NNN` answer
/// the comment under it gives.
fn readme_examples() -> Vec<Example> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut examples = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with("curl ") {
            i += 1;
            continue;
        }
        let mut command = String::new();
        loop {
            command.push_str(lines[i]);
            command.push('\n');
            i += 1;
            let quotes = command.matches('\'').count();
            if !command.trim_end().ends_with('\\') && quotes.is_multiple_of(2) {
                break;
            }
        }
        let comment = lines.get(i).copied().unwrap_or_default();
        let status = comment
            .strip_prefix("# ")
            .and_then(|c| c.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!("the curl example before \"{comment}\" has no `# NNN` answer")
            });
        let words = words(&command);
        let mut example = Example {
            method: "GET".into(),
            uri: String::new(),
            headers: Vec::new(),
            body: None,
            status,
            again: comment.contains("the same command again"),
        };
        let mut rest = words[1..].iter();
        while let Some(word) = rest.next() {
            match word.as_str() {
                "-sS" | "-s" | "-S" => {}
                "-H" => {
                    let (name, value) = rest.next().unwrap().split_once(':').unwrap();
                    example
                        .headers
                        .push((name.trim().to_string(), value.trim().to_string()));
                }
                "-d" | "--data" => {
                    example.body = rest.next().cloned();
                    example.method = "POST".into();
                }
                "-X" => example.method = rest.next().unwrap().clone(),
                url if url.starts_with("http") => {
                    example.uri = url
                        .split_once("://")
                        .and_then(|(_, r)| r.find('/').map(|at| r[at..].to_string()))
                        .unwrap()
                }
                other => panic!(
                    "the README's curl example has an option this test does not know: {other}"
                ),
            }
        }
        examples.push(example);
    }
    examples
}

#[tokio::test]
async fn the_readmes_curl_examples_are_documented_requests_answered_as_the_readme_says() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let key = api_keys::create_with_scopes(
        &app.db,
        "readme",
        &["events:write", "events:read", "sessions:read"],
    )
    .await
    .unwrap()
    .1;
    let examples = readme_examples();
    assert!(examples.len() >= 4, "{examples:?}");
    for example in &examples {
        let what = format!("{} {}", example.method, example.uri);
        let (path, query) = example.uri.split_once('?').unwrap_or((&example.uri, ""));
        let (template, op) = operation(&doc, &example.method, path)
            .unwrap_or_else(|| panic!("{what}: not an operation of the document"));
        let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
        let documented = |name: &str, place: &str| {
            parameters.iter().any(|p| {
                p["in"] == place
                    && p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap();
            assert!(
                documented(name, "query"),
                "{what}: {name} is not a parameter of {template}"
            );
        }
        let mut request = Request::builder()
            .method(example.method.as_str())
            .uri(&example.uri);
        for (name, value) in &example.headers {
            match name.to_ascii_lowercase().as_str() {
                "authorization" => {
                    assert!(value.starts_with("Bearer $"), "{what}: {value}");
                    request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
                    continue;
                }
                "content-type" => assert!(
                    op["requestBody"]["content"].get(value).is_some(),
                    "{what}: {value} is not a documented body type"
                ),
                other => assert!(
                    documented(other, "header"),
                    "{what}: the header {name} is not documented"
                ),
            }
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &example.body {
            serde_json::from_str::<Value>(body)
                .unwrap_or_else(|e| panic!("{what}: the body is not JSON: {e}"));
            assert!(
                op["requestBody"].is_object(),
                "{what}: the document has no body"
            );
        }
        let body = || {
            example
                .body
                .clone()
                .map(Body::from)
                .unwrap_or_else(Body::empty)
        };
        let first = app.send(request.body(body()).unwrap()).await;
        assert_eq!(
            first.status.as_u16(),
            example.status,
            "{what}: {}",
            first.text()
        );
        check_answer(&doc, op, &what, &first);
        if example.again {
            let mut again = Request::builder()
                .method(example.method.as_str())
                .uri(&example.uri);
            for (name, value) in &example.headers {
                let value = if name.eq_ignore_ascii_case("authorization") {
                    format!("Bearer {key}")
                } else {
                    value.clone()
                };
                again = again.header(name.as_str(), value);
            }
            let second = app.send(again.body(body()).unwrap()).await;
            assert_eq!(second.status, first.status, "{what}, again");
            assert_eq!(
                second.json(),
                first.json(),
                "{what}, again: the same answer"
            );
        }
    }
}
