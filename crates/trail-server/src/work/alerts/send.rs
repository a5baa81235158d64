//! One attempt to deliver one message to one destination: webhooks signed per the
//! Standard Webhooks specification (every secret during a rotation), Slack and
//! Discord incoming-webhook shapes, mail through the SMTP settings. Addresses on
//! loopback, private, link-local and other internal networks are refused unless the
//! configuration allows them; the address checked is the one connected to.

use serde_json::Value;
use trail_store::alerts::{Delivery, Destination};

use super::message;
use crate::work::{
    outbound::{self, resolve, Unusable},
    Services,
};

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(u16),
    /// Worth another attempt later (network error, 5xx, 429, other 4xx).
    Failed {
        code: Option<u16>,
        error: String,
    },
    /// Never worth retrying: the destination is gone (410) or refused here.
    Gone {
        code: Option<u16>,
        error: String,
    },
}

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 24] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// One attempt.
pub async fn attempt(st: &Services, dest: &Destination, d: &Delivery) -> Outcome {
    let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
    if dest.kind == "email" {
        return mail(st, dest, &payload).await;
    }
    let Some(url) = dest.url.as_deref() else {
        return Outcome::Gone { code: None, error: "the destination has no URL".into() };
    };
    let (url, addr) = match resolve(url, st.config.alerts.allow_private_destinations, "[alerts]").await {
        Ok(x) => x,
        Err(Unusable::Refused(error)) => return Outcome::Gone { code: None, error },
        Err(Unusable::Unresolved(error)) => return Outcome::Failed { code: None, error },
    };
    let body = message::body(&dest.kind, &payload).to_string();
    let timeout = st.config.alerts.timeout;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = match outbound::client(&host, addr, timeout, "Trail-Alerts/1") {
        Ok(c) => c,
        Err(error) => return Outcome::Failed { code: None, error },
    };
    let mut req = client.post(url).header("content-type", "application/json");
    if dest.kind == "webhook" {
        let id = format!("msg_{}", d.id);
        let ts = (st.clock)().0.div_euclid(1_000_000);
        let mut sigs = Vec::new();
        for secret in &dest.secrets {
            match standardwebhooks::Webhook::new(secret).and_then(|w| w.sign(&id, ts, body.as_bytes())) {
                Ok(s) => sigs.push(s),
                Err(e) => return Outcome::Gone { code: None, error: format!("signing secret unusable: {e}") },
            }
        }
        req = req
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sigs.join(" "));
    }
    match req.body(body).send().await {
        Ok(r) => {
            let code = r.status().as_u16();
            let text: String = r.text().await.unwrap_or_default().chars().take(300).collect();
            match code {
                200..=299 => Outcome::Delivered(code),
                410 => {
                    Outcome::Gone { code: Some(code), error: format!("410 Gone: the destination is disabled. {text}") }
                }
                _ => Outcome::Failed { code: Some(code), error: format!("HTTP {code}: {text}") },
            }
        }
        // Without the URL: a Slack or Discord URL holds its secret in the path.
        Err(e) => Outcome::Failed { code: None, error: e.without_url().to_string() },
    }
}

/// An alert by mail through `[exports.smtp]`.
async fn mail(st: &Services, dest: &Destination, payload: &Value) -> Outcome {
    use lettre::{message::Mailbox, Message, Transport};
    let Some(smtp) = st.config.exports.smtp.clone() else {
        return Outcome::Failed { code: None, error: "no SMTP server is configured ([exports.smtp])".into() };
    };
    let (subject, text) = message::mail(payload);
    let mut messages = Vec::new();
    for r in &dest.recipients {
        let built = (|| -> Result<Message, String> {
            let from: Mailbox = smtp.from.parse().map_err(|e| format!("smtp from: {e}"))?;
            let to: Mailbox = r.parse().map_err(|e| format!("recipient {r}: {e}"))?;
            Message::builder().from(from).to(to).subject(subject.clone()).body(text.clone()).map_err(|e| e.to_string())
        })();
        match built {
            Ok(m) => messages.push(m),
            Err(e) => return Outcome::Gone { code: None, error: e },
        }
    }
    let timeout = st.config.alerts.timeout;
    let sent = tokio::task::spawn_blocking(move || {
        let t = crate::work::mail::transport(&smtp, timeout)?;
        for m in &messages {
            t.send(m).map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    })
    .await;
    match sent {
        Ok(Ok(())) => Outcome::Delivered(250),
        Ok(Err(e)) => Outcome::Failed { code: None, error: e },
        Err(e) => Outcome::Failed { code: None, error: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_destinations_are_refused_unless_allowed() {
        let e = resolve("http://127.0.0.1:9/hook", false, "[alerts]").await.unwrap_err();
        assert!(matches!(&e, Unusable::Refused(m) if m.contains("internal")), "{e}");
        assert!(resolve("http://127.0.0.1:9/hook", true, "[alerts]").await.is_ok());
        assert!(
            matches!(resolve("ftp://example.com/", true, "[alerts]").await, Err(Unusable::Refused(m)) if m.contains("http"))
        );
        let nowhere = resolve("http://no-such-host.invalid/x", true, "[alerts]").await;
        assert!(matches!(nowhere, Err(Unusable::Unresolved(_))), "{nowhere:?}");
        assert!(new_secret().starts_with("whsec_"));
        assert!(standardwebhooks::Webhook::new(&new_secret()).is_ok());
    }
}
