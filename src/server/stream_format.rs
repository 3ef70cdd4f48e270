//! What a stream sends, byte for byte: pure functions, tested against the
//! specifications they follow.
//!
//! - **Signed webhooks** as the Standard Webhooks specification says:
//!   `webhook-signature: v1,<base64 of HMAC-SHA256("id.timestamp.body")>`,
//!   keyed by the bytes of a `whsec_` secret (base64 after the prefix);
//!   during a rotation both secrets sign, space-separated.
//! - **Splunk HEC**: one envelope per event (`time` in seconds with
//!   microseconds, `host`, `source`, `sourcetype`, `event`), concatenated.
//! - **Syslog**: RFC 5424 messages (facility log audit, severity
//!   informational) with the event's id and chain hash as structured data,
//!   framed by octet counting (RFC 6587) for TCP.
//!
//! Each event goes as its JSON Lines export line (the ingest shape with the
//! id), given here as text so it is embedded as it is, not re-encoded.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A webhook signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Reads `whsec_<base64>`; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = BASE64
            .decode(text.trim().strip_prefix(SECRET_PREFIX)?)
            .ok()?;
        (!bytes.is_empty()).then_some(Self(bytes))
    }

    /// `whsec_<base64>`, as shown once and stored.
    pub fn encode(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    /// The base64 signature of one message.
    fn sign(&self, content: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(content);
        BASE64.encode(mac.finalize().into_bytes())
    }
}

/// The `webhook-signature` header of a message: `v1,<sig>` for each secret
/// (the new one first during a rotation), space-separated.
pub fn webhook_signature(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    secrets
        .iter()
        .map(|s| format!("v1,{}", s.sign(&content)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a `webhook-signature` header holds a valid signature of the
/// message by `secret` (what a receiver checks).
pub fn webhook_signature_valid(
    secret: &WebhookSecret,
    header: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> bool {
    let expected = webhook_signature(std::slice::from_ref(secret), msg_id, timestamp, body);
    header.split(' ').any(|sig| {
        sig.len() == expected.len()
            && sig
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// A JSON array of event lines, the body of one webhook batch.
pub fn json_array(lines: &[&str]) -> Vec<u8> {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(line.trim_end().as_bytes());
    }
    body.push(b']');
    body
}

/// Seconds since the epoch with microseconds, as HEC's `time` takes it.
fn epoch_seconds(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

/// One Splunk HEC event envelope around an event line.
pub fn hec_event(line: &str, occurred_at: i64, host: &str) -> String {
    format!(
        "{{\"time\":{},\"host\":{},\"source\":\"auditdeck\",\"sourcetype\":\"auditdeck:event\",\"event\":{}}}",
        epoch_seconds(occurred_at),
        serde_json::Value::String(host.to_string()),
        line.trim_end()
    )
}

/// What a syslog message says of its event.
pub struct SyslogEvent<'a> {
    pub id: i64,
    pub occurred_at: i64,
    pub action: &'a str,
    pub chain_hash: Option<&'a str>,
    /// The event's JSON line: the message.
    pub line: &'a str,
}

/// The structured-data id of Auditdeck's parameters (an enterprise number
/// is not registered; RFC 5424 allows `name@number` ids for private use,
/// and 32473 is the number reserved for documentation by RFC 5612).
const SD_ID: &str = "auditdeck@32473";
/// Facility 13 (log audit) × 8 + severity 6 (informational).
const PRIORITY: u8 = 13 * 8 + 6;

/// A structured-data parameter value: `"`, `\` and `]` escaped (RFC 5424
/// §6.3.3).
fn sd_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable US-ASCII without spaces, at most `max` long, or
/// the nil value `-`.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() {
        "-".into()
    } else {
        clean
    }
}

/// One RFC 5424 message, framed for TCP by octet counting (RFC 6587 §3.4.1):
/// `LEN SP <PRI>1 TIMESTAMP HOSTNAME auditdeck - ACTION [sd] BOM JSON`.
pub fn syslog_frame(event: &SyslogEvent<'_>, hostname: &str) -> Vec<u8> {
    let mut sd = format!("[{SD_ID} id=\"{}\"", event.id);
    if let Some(hash) = event.chain_hash {
        sd.push_str(&format!(" chain_hash=\"{}\"", sd_value(hash)));
    }
    sd.push_str(&format!(" action=\"{}\"]", sd_value(event.action)));
    let mut message = format!(
        "<{PRIORITY}>1 {} {} auditdeck - {} {sd} ",
        crate::models::format_rfc3339(event.occurred_at),
        header_field(hostname, 255),
        header_field(event.action, 32),
    )
    .into_bytes();
    message.extend_from_slice("\u{feff}".as_bytes());
    message.extend_from_slice(event.line.trim_end().as_bytes());
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(&message);
    frame
}

/// The `{"text": …}` body of a chat incoming webhook (Slack and the chat
/// tools that take its shape): one line per event, at most `max` lines.
pub fn slack_text(lines: &[String], max: usize) -> Vec<u8> {
    let mut text: Vec<&str> = lines.iter().take(max).map(String::as_str).collect();
    let more;
    if lines.len() > max {
        more = format!("… and {} more", lines.len() - max);
        text.push(&more);
    }
    serde_json::json!({ "text": text.join("\n") })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification (and of its
    /// reference libraries).
    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = webhook_signature(
            std::slice::from_ref(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(webhook_signature_valid(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body
        ));
        // Any change to id, time or body breaks it.
        assert!(!webhook_signature_valid(
            &secret,
            &sig,
            "msg_other",
            1614265330,
            body
        ));
        assert!(!webhook_signature_valid(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body
        ));
        assert!(!webhook_signature_valid(
            &secret,
            &sig,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232315}"#
        ));
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_and_either_verifies() {
        let (new, old) = (WebhookSecret::generate(), WebhookSecret::generate());
        assert_ne!(new, old);
        let header = webhook_signature(&[new.clone(), old.clone()], "m1", 5, b"[]");
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
        assert!(webhook_signature_valid(&new, &header, "m1", 5, b"[]"));
        assert!(webhook_signature_valid(&old, &header, "m1", 5, b"[]"));
        assert!(!webhook_signature_valid(
            &WebhookSecret::generate(),
            &header,
            "m1",
            5,
            b"[]"
        ));
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let s = WebhookSecret::generate();
        let text = s.encode();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text), Some(s));
        for bad in [
            "",
            "whsec_",
            "whsec_***",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert_eq!(WebhookSecret::parse(bad), None, "{bad}");
        }
        assert_eq!(
            format!("{:?}", WebhookSecret::generate()),
            "WebhookSecret(…)"
        );
    }

    #[test]
    fn a_batch_is_a_json_array_of_the_lines_as_they_are() {
        let body = json_array(&["{\"id\":1}\n", "{\"id\":2}"]);
        assert_eq!(body, br#"[{"id":1},{"id":2}]"#);
        assert_eq!(json_array(&[]), b"[]");
    }

    #[test]
    fn hec_envelopes_carry_the_time_in_seconds_and_the_event_as_sent() {
        let e = hec_event(
            r#"{"id":17,"action":"DELETE"}"#,
            1_764_490_364_120_000,
            "audit \"1\"",
        );
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["time"].to_string(), "1764490364.12");
        assert!(e.contains("\"time\":1764490364.120000,"), "{e}");
        assert_eq!(v["host"], "audit \"1\"");
        assert_eq!(v["sourcetype"], "auditdeck:event");
        assert_eq!(v["event"]["id"], 17);
        // Before the epoch too.
        assert_eq!(epoch_seconds(-1), "-1.999999");
    }

    #[test]
    fn syslog_frames_are_rfc_5424_with_octet_counting() {
        let frame = syslog_frame(
            &SyslogEvent {
                id: 42,
                occurred_at: 1_764_490_364_120_000,
                action: "ROLE_CHANGE",
                chain_hash: Some("ab\"]\\"),
                line: "{\"id\":42}\n",
            },
            "audit host",
        );
        let text = String::from_utf8(frame).unwrap();
        let (len, message) = text.split_once(' ').unwrap();
        assert_eq!(
            len.parse::<usize>().unwrap(),
            message.len(),
            "octet count in bytes"
        );
        assert!(
            message.starts_with(
                "<110>1 2025-11-30T08:12:44.120000Z audithost auditdeck - ROLE_CHANGE \
                 [auditdeck@32473 id=\"42\" chain_hash=\"ab\\\"\\]\\\\\" action=\"ROLE_CHANGE\"] \u{feff}{\"id\":42}"
            ),
            "{message}"
        );
        assert!(!message.ends_with('\n'));
        let bare = syslog_frame(
            &SyslogEvent {
                id: 1,
                occurred_at: 0,
                action: "",
                chain_hash: None,
                line: "{}",
            },
            "",
        );
        let bare = String::from_utf8(bare).unwrap();
        assert!(
            bare.contains(" - auditdeck - - [auditdeck@32473 id=\"1\" action=\"\"] "),
            "{bare}"
        );
    }

    #[test]
    fn chat_text_lists_the_events_and_says_how_many_more() {
        let lines: Vec<String> = (1..=4).map(|i| format!("event {i}")).collect();
        let v: serde_json::Value = serde_json::from_slice(&slack_text(&lines, 3)).unwrap();
        assert_eq!(v["text"], "event 1\nevent 2\nevent 3\n… and 1 more");
        let v: serde_json::Value = serde_json::from_slice(&slack_text(&lines[..1], 3)).unwrap();
        assert_eq!(v["text"], "event 1");
    }
}
