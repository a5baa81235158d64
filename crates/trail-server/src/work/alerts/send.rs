//! One attempt to deliver one message to one destination: webhooks signed per the
//! Standard Webhooks specification (every secret during a rotation), Slack and
//! Discord incoming-webhook shapes, mail through the SMTP settings. Addresses on
//! loopback, private, link-local and other internal networks are refused unless the
//! configuration allows them; the address checked is the one connected to.

use serde_json::Value;
use trail_store::alerts::{Delivery, Destination, DestinationKind};

use super::message;
use crate::work::{
    outbound::{self, resolve, Posted, Unusable},
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

pub use crate::work::outbound::new_secret;

/// One attempt.
pub async fn attempt(st: &Services, dest: &Destination, d: &Delivery) -> Outcome {
    let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
    if dest.kind == DestinationKind::Email {
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
    let body = message::body(dest.kind, &payload).to_string();
    let timeout = st.config.alerts.timeout;
    let host = url.host_str().unwrap_or_default().to_string();
    let client = match outbound::client(&host, addr, timeout, "Trail-Alerts/1") {
        Ok(c) => c,
        Err(error) => return Outcome::Failed { code: None, error: error.to_string() },
    };
    let headers = [("content-type".to_string(), "application/json".to_string())];
    let signing = (dest.kind == DestinationKind::Webhook).then(|| outbound::Signing {
        id: format!("msg_{}", d.id),
        ts: (st.clock)().0.div_euclid(1_000_000),
        secrets: &dest.secrets,
    });
    match outbound::post(&client, url, &headers, signing, body.into_bytes()).await {
        Posted::Answered { code, .. } if (200..300).contains(&code) => Outcome::Delivered(code),
        Posted::Answered { code: 410, text } => {
            Outcome::Gone { code: Some(410), error: format!("410 Gone: the destination is disabled. {text}") }
        }
        Posted::Answered { code, text } => Outcome::Failed { code: Some(code), error: format!("HTTP {code}: {text}") },
        Posted::Unsigned(error) => Outcome::Gone { code: None, error },
        // Without the URL: a Slack or Discord URL holds its secret in the path.
        Posted::Unreachable(error) => Outcome::Failed { code: None, error },
    }
}

/// An alert by mail through `[exports.smtp]`.
async fn mail(st: &Services, dest: &Destination, payload: &Value) -> Outcome {
    use crate::work::mail::{self, Mail, MailError};
    let (subject, text) = message::mail(payload);
    let out = Mail { recipients: dest.recipients.clone(), subject, text, attachment: None };
    match mail::send(st, out, st.config.alerts.timeout).await {
        Ok(_) => Outcome::Delivered(250),
        Err(MailError::Unusable(error)) => Outcome::Gone { code: None, error },
        Err(MailError::Failed(error)) => Outcome::Failed { code: None, error },
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
    }
}
