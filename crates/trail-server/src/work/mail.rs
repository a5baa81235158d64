//! Mail over SMTP, in one place: the transport `[exports.smtp]` describes, the one
//! sender (`send`) that scheduled exports and alerts both use, and a scheduled
//! export's message (the file attached, or a note where it is kept when it is larger
//! than the attachment limit).

use std::{path::Path, time::Duration};

use trail_core::Timestamp;
use trail_store::Schedule;

use super::{export::ExportRequest, Services};
use crate::{SmtpConfig, SmtpTls};

/// The SMTP transport `smtp` describes: STARTTLS required by default, TLS from the
/// start, or, set explicitly, none (a warning when credentials would go in clear);
/// certificates verified against the public roots and `ca_file`.
pub(crate) fn transport(smtp: &SmtpConfig, timeout: Duration) -> Result<lettre::SmtpTransport, MailError> {
    use lettre::transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    };
    // The server cannot be reached as configured: the next attempt may find it fixed.
    let failed = MailError::Failed;
    let params = || -> Result<TlsParameters, MailError> {
        let mut b = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &smtp.ca_file {
            let pem = std::fs::read(path).map_err(|e| failed(format!("smtp ca_file {}: {e}", path.display())))?;
            let cert =
                Certificate::from_pem(&pem).map_err(|e| failed(format!("smtp ca_file {}: {e}", path.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| failed(format!("smtp tls: {e}")))
    };
    let tls = match smtp.tls {
        SmtpTls::StartTls => Tls::Required(params()?),
        SmtpTls::Tls => Tls::Wrapper(params()?),
        SmtpTls::None => Tls::None,
    };
    let mut t = lettre::SmtpTransport::builder_dangerous(&smtp.host).port(smtp.port).timeout(Some(timeout)).tls(tls);
    if let (Some(u), Some(p)) = (smtp.username.clone(), smtp.password.clone()) {
        if smtp.tls == SmtpTls::None {
            tracing::warn!(host = %smtp.host, "SMTP credentials are sent unencrypted (tls = \"none\")");
        }
        t = t.credentials(Credentials::new(u, p));
    }
    Ok(t.build())
}

/// One message to each of `recipients`: a subject, a text and perhaps one attachment
/// (file name, content type, bytes).
pub(crate) struct Mail {
    pub recipients: Vec<String>,
    pub subject: String,
    pub text: String,
    pub attachment: Option<(String, String, Vec<u8>)>,
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MailError {
    /// It cannot be made (an address that is not one): sending again will not help.
    #[error("{0}")]
    Unusable(String),
    /// No SMTP server is configured, or the server did not take it.
    #[error("{0}")]
    Failed(String),
}

/// Sends `mail` through `[exports.smtp]` (one connection, on a blocking thread, giving
/// up after `timeout`): the one SMTP sender, for scheduled exports and alerts alike.
/// Answers how many recipients were sent to.
pub(crate) async fn send(st: &Services, mail: Mail, timeout: Duration) -> Result<usize, MailError> {
    use lettre::{
        message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
        Message, Transport,
    };
    let smtp = st.config.exports.smtp.clone();
    let smtp = smtp.ok_or_else(|| MailError::Failed("no SMTP server is configured ([exports.smtp])".into()))?;
    let unusable = MailError::Unusable;
    let from: Mailbox = smtp.from.parse().map_err(|e| unusable(format!("smtp from: {e}")))?;
    let mut messages = Vec::new();
    for r in &mail.recipients {
        let to: Mailbox = r.parse().map_err(|e| unusable(format!("recipient {r}: {e}")))?;
        let builder = Message::builder().from(from.clone()).to(to).subject(mail.subject.clone());
        let msg = match &mail.attachment {
            Some((name, content_type, bytes)) => {
                let ct = ContentType::parse(content_type).map_err(|e| unusable(e.to_string()))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(mail.text.clone()))
                        .singlepart(Attachment::new(name.clone()).body(bytes.clone(), ct)),
                )
            }
            None => builder.body(mail.text.clone()),
        }
        .map_err(|e| unusable(e.to_string()))?;
        messages.push(msg);
    }
    let sent = tokio::task::spawn_blocking(move || {
        let t = transport(&smtp, timeout)?;
        let mut sent = 0;
        for m in &messages {
            t.send(m).map_err(|e| MailError::Failed(e.to_string()))?;
            sent += 1;
        }
        Ok::<usize, MailError>(sent)
    })
    .await;
    sent.unwrap_or_else(|e| Err(MailError::Failed(e.to_string())))
}

/// Mails a scheduled export's file (attached, or as a note where it is kept when it is
/// larger than the attachment limit).
pub(super) async fn mail_export(
    st: &Services,
    s: &Schedule,
    req: &ExportRequest,
    path: &Path,
    rows: u64,
    size: u64,
    now: Timestamp,
) -> Result<usize, MailError> {
    let meta = req.meta(now);
    let mut text = format!(
        "Trail scheduled export \"{}\" of organization {}.\n\nFilter: {}\nPeriod: {}\nEvents: {rows}\nGenerated at: {}\n",
        s.name,
        s.org,
        if meta.filter.is_empty() { "(none)" } else { &meta.filter },
        meta.period,
        now.to_rfc3339()
    );
    let attach = size <= st.config.exports.attach_limit;
    if !attach {
        text.push_str(&format!(
            "\nThe file ({size} bytes) is larger than the mail attachment limit. It is kept on the Trail server as {}.\n",
            path.display()
        ));
    }
    let attachment = match attach {
        true => {
            let bytes = std::fs::read(path).map_err(|e| MailError::Failed(e.to_string()))?;
            Some((req.format.file_name(now), req.format.content_type().to_string(), bytes))
        }
        false => None,
    };
    let mail = Mail {
        recipients: s.recipients.clone(),
        subject: format!("Trail audit log export: {} ({})", s.name, now.to_datetime().format("%Y-%m-%d")),
        text,
        attachment,
    };
    send(st, mail, Duration::from_secs(30)).await
}
