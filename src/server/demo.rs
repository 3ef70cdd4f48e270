//! The demo data set: realistic events and admin-session records,
//! deterministic for a given seed and anchor time.

use super::store::{self, Db, NewAdminSession, NewEvent};
use crate::errors::AppResult;
use crate::models::{Initiator, InitiatorKind};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const DAY_MICROS: i64 = 86_400_000_000;
pub const SPAN_DAYS: i64 = 90;

struct Person {
    id: u32,
    name: &'static str,
    email: &'static str,
}

/// Roles of the demo's people in the systems they work in.
const DEMO_ROLES: [&str; 4] = ["admin", "editor", "support", "finance"];

const PEOPLE: [Person; 12] = [
    Person {
        id: 1,
        name: "Ada Kowalski",
        email: "ada.kowalski@northwind.example",
    },
    Person {
        id: 2,
        name: "Bruno Silva",
        email: "bruno.silva@northwind.example",
    },
    Person {
        id: 3,
        name: "Chiara Rossi",
        email: "chiara.rossi@northwind.example",
    },
    Person {
        id: 4,
        name: "Dmitri Volkov",
        email: "dmitri.volkov@northwind.example",
    },
    Person {
        id: 5,
        name: "Elif Yilmaz",
        email: "elif.yilmaz@northwind.example",
    },
    Person {
        id: 6,
        name: "Farah Haddad",
        email: "farah.haddad@northwind.example",
    },
    Person {
        id: 7,
        name: "Gustav Lindqvist",
        email: "gustav.lindqvist@northwind.example",
    },
    Person {
        id: 8,
        name: "Hana Sato",
        email: "hana.sato@northwind.example",
    },
    Person {
        id: 9,
        name: "Ivan Petrenko",
        email: "ivan.petrenko@northwind.example",
    },
    Person {
        id: 10,
        name: "Julia Meyer",
        email: "julia.meyer@northwind.example",
    },
    Person {
        id: 11,
        name: "Kwame Mensah",
        email: "kwame.mensah@northwind.example",
    },
    Person {
        id: 12,
        name: "Lucía Fernández",
        email: "lucia.fernandez@northwind.example",
    },
];

const API_CLIENTS: [&str; 3] = ["billing-service", "crm-sync", "mail-gateway"];

const TABLES: [&str; 9] = [
    "customers",
    "invoices",
    "orders",
    "products",
    "subscriptions",
    "tickets",
    "users",
    "settings",
    "email_templates",
];

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

const URLS: [(&str, &str); 8] = [
    ("/activity-log", "WEB"),
    ("/activity-log?page=2", "WEB"),
    ("/activity-log?size=100", "WEB"),
    ("/admin-sessions", "WEB"),
    ("/settings/users", "WEB"),
    ("/api/list_events", "API"),
    ("/api/export_events", "API"),
    ("/api/v1/events", "API"),
];

const LOREM: &str = "Payment terms were renegotiated after the quarterly review. \
The customer asked for consolidated invoicing across all subsidiaries, \
with a single billing contact and net-45 terms. Legal approved the change \
on the condition that the credit limit is reviewed every six months.";

/// What the demo set should hold.
#[derive(Debug, Clone, Copy)]
pub struct DemoSpec {
    pub seed: u64,
    pub events: u32,
    pub sessions: u32,
    /// The newest possible time (microseconds); the data spans the 90 days before.
    pub anchor: i64,
}

/// The demo events, oldest first (so ids grow with time, as in a live log).
pub fn events(spec: &DemoSpec) -> Vec<NewEvent> {
    events_iter(spec).collect()
}

/// The demo events, oldest first, made one at a time (for large sets).
pub fn events_iter(spec: &DemoSpec) -> impl Iterator<Item = NewEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut times: Vec<i64> = (0..spec.events)
        .map(|_| spec.anchor - rng.gen_range(0..SPAN_DAYS * DAY_MICROS))
        .collect();
    times.sort_unstable();
    let ips: Vec<IpAddr> = (0..PEOPLE.len() + API_CLIENTS.len() + 4)
        .map(|i| random_ip(&mut rng, i))
        .collect();
    times.into_iter().map(move |t| event(&mut rng, t, &ips))
}

fn random_ip(rng: &mut ChaCha8Rng, i: usize) -> IpAddr {
    if i % 5 == 4 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            rng.gen(),
            rng.gen(),
            0,
            0,
            0,
            rng.gen_range(1..0xffff),
        ))
    } else {
        match i % 3 {
            0 => IpAddr::V4(Ipv4Addr::new(
                10,
                rng.gen(),
                rng.gen(),
                rng.gen_range(1..255),
            )),
            1 => IpAddr::V4(Ipv4Addr::new(192, 168, rng.gen(), rng.gen_range(1..255))),
            _ => IpAddr::V4(Ipv4Addr::new(203, 0, 113, rng.gen_range(1..255))),
        }
    }
}

fn event(rng: &mut ChaCha8Rng, occurred_at: i64, ips: &[IpAddr]) -> NewEvent {
    let roll = rng.gen_range(0..100);
    let action = match roll {
        0..=34 => "UPDATE",
        35..=54 => "CREATE",
        55..=64 => "LOGIN",
        65..=69 => "LOGOUT",
        70..=73 => "LOGIN_FAILED",
        74..=79 => "DELETE",
        80..=83 => "EXPORT",
        84..=89 => "GENERATE",
        90..=95 => "SEND",
        _ => "PUBLISH",
    };
    // Who plausibly does this: (user, API key, system, portal) weights.
    let weights: [u32; 4] = match action {
        "LOGIN" | "LOGOUT" | "LOGIN_FAILED" | "EXPORT" => [1, 0, 0, 0],
        "PUBLISH" => [8, 0, 0, 2],
        "GENERATE" | "SEND" => [3, 4, 3, 0],
        "DELETE" => [7, 1, 2, 0],
        _ => [75, 15, 4, 6],
    };
    let (initiator, ip) = initiator(rng, weights, ips);
    let table = *TABLES.choose(rng).unwrap_or(&"customers");
    let key = rng.gen_range(1..5000).to_string();
    let actor = initiator.display_name();
    let user_agent = initiator
        .email
        .as_ref()
        .map(|_| USER_AGENTS[rng.gen_range(0..4)].to_string())
        .or_else(|| {
            (initiator.kind == InitiatorKind::ApiKey)
                .then(|| USER_AGENTS[rng.gen_range(4..6)].to_string())
        });

    let (table_name, primary_key, description, before, after) = match action {
        "LOGIN" => (None, None, format!("{actor} signed in"), None, None),
        "LOGOUT" => (None, None, format!("{actor} signed out"), None, None),
        "LOGIN_FAILED" => (
            None,
            None,
            format!(
                "Failed sign-in for {}: wrong password",
                initiator.email.as_deref().unwrap_or("unknown")
            ),
            None,
            None,
        ),
        "EXPORT" => (
            Some(table),
            None,
            format!(
                "Exported {} rows of {table} as CSV",
                rng.gen_range(10..20_000)
            ),
            None,
            None,
        ),
        "CREATE" => {
            let after = record(rng, table, &key);
            (
                Some(table),
                Some(key.clone()),
                format!("Created {} #{key}", singular(table)),
                None,
                Some(after),
            )
        }
        "DELETE" => {
            let before = record(rng, table, &key);
            (
                Some(table),
                Some(key.clone()),
                format!("Deleted {} #{key}", singular(table)),
                Some(before),
                None,
            )
        }
        "UPDATE" => {
            let before = record(rng, table, &key);
            let after = modify(rng, &before);
            (
                Some(table),
                Some(key.clone()),
                format!("Updated {} #{key}", singular(table)),
                Some(before),
                Some(after),
            )
        }
        "GENERATE" => (
            Some("invoices"),
            Some(key.clone()),
            format!("Generated invoice PDF #{key}"),
            None,
            None,
        ),
        "SEND" => (
            Some("email_templates"),
            Some(key.clone()),
            format!(
                "Sent email \"{}\" to customer #{key}",
                ["Welcome", "Invoice due", "Password reset"][rng.gen_range(0..3)]
            ),
            None,
            None,
        ),
        _ => (
            Some("products"),
            Some(key.clone()),
            format!("Published product page #{key}"),
            None,
            None,
        ),
    };

    NewEvent {
        occurred_at,
        ip,
        initiator,
        action: action.into(),
        table_name: table_name.map(str::to_string),
        primary_key,
        description,
        before: before.map(|v: Value| v.to_string()),
        after: after.map(|v: Value| v.to_string()),
        user_agent,
        request_id: Some(format!("req-{:016x}", rng.gen::<u64>())),
        session_id: None,
    }
}

fn initiator(
    rng: &mut ChaCha8Rng,
    weights: [u32; 4],
    ips: &[IpAddr],
) -> (Initiator, Option<IpAddr>) {
    let total: u32 = weights.iter().sum();
    let mut pick = rng.gen_range(0..total);
    let kind = weights
        .iter()
        .position(|w| {
            if pick < *w {
                true
            } else {
                pick -= w;
                false
            }
        })
        .unwrap_or(0);
    match kind {
        0 => {
            let i = rng.gen_range(0..PEOPLE.len());
            let p = &PEOPLE[i];
            let user = Initiator {
                kind: InitiatorKind::User,
                id: Some(p.id.to_string()),
                name: Some(p.name.into()),
                email: Some(p.email.into()),
                role: Some(DEMO_ROLES[i % DEMO_ROLES.len()].into()),
            };
            (user, Some(ips[i]))
        }
        1 => {
            let i = rng.gen_range(0..API_CLIENTS.len());
            let key = Initiator {
                kind: InitiatorKind::ApiKey,
                id: Some(format!("{}", i + 1)),
                name: Some(API_CLIENTS[i].into()),
                email: None,
                role: Some("integration".into()),
            };
            (key, Some(ips[PEOPLE.len() + i]))
        }
        2 => {
            let system = Initiator {
                kind: InitiatorKind::System,
                id: None,
                name: None,
                email: None,
                role: None,
            };
            (system, None)
        }
        _ => {
            let portal = Initiator {
                kind: InitiatorKind::Portal,
                id: None,
                name: Some("Customer portal".into()),
                email: None,
                role: Some("customer".into()),
            };
            (portal, Some(ips[ips.len() - 1]))
        }
    }
}

fn singular(table: &str) -> &str {
    table
        .strip_suffix("ies")
        .map(|_| "entry")
        .unwrap_or_else(|| table.trim_end_matches('s'))
}

fn record(rng: &mut ChaCha8Rng, table: &str, key: &str) -> Value {
    let status = ["active", "pending", "suspended", "closed"][rng.gen_range(0..4)];
    let owner = PEOPLE[rng.gen_range(0..PEOPLE.len())].name;
    let team = ["sales", "support", "finance"][rng.gen_range(0..3)];
    let tag_count = rng.gen_range(0..3);
    let tags: Vec<&str> = ["priority", "eu", "renewal", "trial"]
        .choose_multiple(rng, tag_count)
        .copied()
        .collect();
    let city = ["Lisbon", "Oslo", "Nairobi", "Osaka"][rng.gen_range(0..4)];
    let zip = format!("{:05}", rng.gen_range(1000..99999));
    json!({
        "id": key.parse::<u64>().unwrap_or(0),
        "table": table,
        "status": status,
        "amount": f64::from(rng.gen_range(100..100_000)) / 100.0,
        "owner": { "name": owner, "team": team },
        "tags": tags,
        "address": { "city": city, "zip": zip },
        "notes": LOREM,
    })
}

fn modify(rng: &mut ChaCha8Rng, before: &Value) -> Value {
    let mut after = before.clone();
    let Some(obj) = after.as_object_mut() else {
        return after;
    };
    match rng.gen_range(0..4) {
        0 => {
            obj.insert(
                "status".into(),
                json!(["active", "pending", "suspended", "closed"][rng.gen_range(0..4)]),
            );
        }
        1 => {
            obj.insert(
                "amount".into(),
                json!(f64::from(rng.gen_range(100..100_000)) / 100.0),
            );
            obj.insert("currency".into(), json!("EUR"));
        }
        2 => {
            if let Some(addr) = obj.get_mut("address").and_then(Value::as_object_mut) {
                addr.insert("city".into(), json!("Montevideo"));
            }
            obj.remove("tags");
        }
        _ => {
            obj.insert(
                "notes".into(),
                json!(
                    LOREM
                        .replace("net-45", "net-30")
                        .replace("six months", "quarter")
                        + " Follow-up call scheduled."
                ),
            );
        }
    }
    after
}

/// The demo admin-session records, oldest first.
pub fn sessions(spec: &DemoSpec) -> Vec<NewAdminSession> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5e55_1045);
    let mut times: Vec<i64> = (0..spec.sessions)
        .map(|_| spec.anchor - rng.gen_range(0..SPAN_DAYS * DAY_MICROS))
        .collect();
    times.sort_unstable();
    times
        .into_iter()
        .map(|t| {
            let p = &PEOPLE[rng.gen_range(0..4)];
            let (url, kind) = URLS[rng.gen_range(0..URLS.len())];
            let method = if kind == "WEB" {
                "GET"
            } else {
                ["POST", "POST", "GET"][rng.gen_range(0..3)]
            };
            let status = [200, 200, 200, 200, 200, 201, 302, 400, 403, 500][rng.gen_range(0..10)];
            NewAdminSession {
                occurred_at: t,
                // Not Auditdeck users: ids of their own, never equal to a real user's.
                user_id: Some(format!("demo:{}", p.id)),
                user_name: p.name.into(),
                user_email: p.email.into(),
                ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 0, p.id as u8))),
                url: url.into(),
                kind,
                method: method.into(),
                status,
                duration_us: rng.gen_range(300..250_000),
            }
        })
        .collect()
}

/// Fills the database with the demo set, in batches.
pub async fn load(db: &Db, spec: &DemoSpec) -> AppResult<()> {
    let mut all = events_iter(spec);
    loop {
        let chunk: Vec<NewEvent> = all.by_ref().take(5000).collect();
        if chunk.is_empty() {
            break;
        }
        store::insert_events(db, &chunk, None).await?;
    }
    for chunk in sessions(spec).chunks(5000) {
        store::insert_admin_sessions(db, chunk).await?;
    }
    store::refresh_statistics(db).await
}

/// Creates one demo user per role with a random password; returns
/// (role, username, password) for the run command to print once.
pub async fn create_users(
    db: &Db,
    client: &super::auth::ClientInfo,
) -> AppResult<Vec<(crate::models::Role, String, String)>> {
    use crate::models::Role;
    let mut created = Vec::new();
    for (username, name, role) in [
        ("admin", "Avery Admin", Role::Admin),
        ("auditor", "Aubrey Auditor", Role::Auditor),
        ("viewer", "Vic Viewer", Role::Viewer),
    ] {
        let password = super::auth::generate_password();
        let email = format!("{username}@auditdeck.example");
        let form = super::auth::UserForm {
            username,
            email: &email,
            name,
            role,
            password: &password,
        };
        super::auth::create_user(db, None, client, form).await?;
        created.push((role, username.to_string(), password));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn spec(seed: u64) -> DemoSpec {
        DemoSpec {
            seed,
            events: 3000,
            sessions: 200,
            anchor: 1_761_566_400_000_000,
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        assert_eq!(events(&spec(1)), events(&spec(1)));
        assert_eq!(sessions(&spec(1)), sessions(&spec(1)));
        assert_ne!(events(&spec(1)), events(&spec(2)));
    }

    #[test]
    fn data_is_varied_and_within_ninety_days() {
        let s = spec(3);
        let evs = events(&s);
        assert_eq!(evs.len(), 3000);
        assert!(evs.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at));
        assert!(evs.iter().all(
            |e| e.occurred_at <= s.anchor && e.occurred_at > s.anchor - SPAN_DAYS * DAY_MICROS
        ));
        let actions: HashSet<&str> = evs.iter().map(|e| e.action.as_str()).collect();
        for a in crate::models::COMMON_ACTIONS
            .iter()
            .chain(&["GENERATE", "SEND", "PUBLISH"])
        {
            assert!(actions.contains(a), "missing action {a}");
        }
        let kinds: HashSet<InitiatorKind> = evs.iter().map(|e| e.initiator.kind).collect();
        assert_eq!(kinds.len(), 4);
        let users: HashSet<_> = evs
            .iter()
            .filter_map(|e| e.initiator.email.clone())
            .collect();
        assert_eq!(users.len(), 12);
        let tables: HashSet<_> = evs.iter().filter_map(|e| e.table_name.clone()).collect();
        assert!(tables.len() >= 6);
        let update = evs
            .iter()
            .find(|e| e.action == "UPDATE")
            .expect("an update");
        let before: Value = serde_json::from_str(update.before.as_deref().unwrap()).unwrap();
        let after: Value = serde_json::from_str(update.after.as_deref().unwrap()).unwrap();
        assert_ne!(before, after);
        assert!(before["owner"].is_object());
        assert!(evs.iter().any(|e| matches!(e.ip, Some(IpAddr::V6(_)))));
        // Initiators fit their actions: only people sign in, out, or export.
        assert!(evs
            .iter()
            .filter(|e| ["LOGIN", "LOGOUT", "LOGIN_FAILED", "EXPORT"].contains(&e.action.as_str()))
            .all(|e| e.initiator.kind == InitiatorKind::User));
    }
}
