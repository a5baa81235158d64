//! Mailing a scheduled export over SMTP: attached, or a note where the file is kept
//! when it is larger than the attachment limit.

use std::{path::Path, time::Duration};

use trail_core::Timestamp;
use trail_store::Schedule;

use super::{export::ExportRequest, Services};
use crate::{SmtpConfig, SmtpTls};

/// The SMTP transport `smtp` describes: STARTTLS required by default, TLS from the
/// start, or, set explicitly, none (a warning when credentials would go in clear);
/// certificates verified against the public roots and `ca_file`.
pub(crate) fn transport(smtp: &SmtpConfig, timeout: Duration) -> Result<lettre::SmtpTransport, String> {
    use lettre::transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    };
    let params = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &smtp.ca_file {
            let pem = std::fs::read(path).map_err(|e| format!("smtp ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| format!("smtp ca_file {}: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build().map_err(|e| format!("smtp tls: {e}"))
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

/// Mails the file (attached, or as a note to download it when larger than the limit).
pub(super) async fn mail(
    st: &Services,
    s: &Schedule,
    req: &ExportRequest,
    path: &Path,
    rows: u64,
    size: u64,
    now: Timestamp,
) -> Result<usize, String> {
    use lettre::{
        message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart},
        Message, Transport,
    };
    let smtp = st.config.exports.smtp.clone().ok_or("no SMTP server is configured ([exports.smtp])")?;
    let from: Mailbox = smtp.from.parse().map_err(|e| format!("smtp from: {e}"))?;
    let file_name = req.format.file_name(now);
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
    let bytes = if attach { Some(std::fs::read(path).map_err(|e| e.to_string())?) } else { None };
    let mut sent = 0;
    let subject = format!("Trail audit log export: {} ({})", s.name, now.to_datetime().format("%Y-%m-%d"));
    let mut messages = Vec::new();
    for r in &s.recipients {
        let to: Mailbox = r.parse().map_err(|e| format!("recipient {r}: {e}"))?;
        let builder = Message::builder().from(from.clone()).to(to).subject(subject.clone());
        let msg = match &bytes {
            Some(b) => {
                let ct = ContentType::parse(req.format.content_type()).map_err(|e| e.to_string())?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text.clone()))
                        .singlepart(Attachment::new(file_name.clone()).body(b.clone(), ct)),
                )
            }
            None => builder.body(text.clone()),
        }
        .map_err(|e| e.to_string())?;
        messages.push(msg);
    }
    let result = tokio::task::spawn_blocking(move || {
        let t = transport(&smtp, Duration::from_secs(30))?;
        for m in &messages {
            t.send(m).map_err(|e| e.to_string())?;
            sent += 1;
        }
        Ok::<usize, String>(sent)
    })
    .await
    .map_err(|e| e.to_string())?;
    result
}
