"""A real SMTP server for tests: aiosmtpd on 127.0.0.1:PORT. Every message received is
saved as N.eml in OUTDIR, with N.json (from, to, subject, text, attachment names, the
user it was sent as) and each attachment as N.<filename>, parsed by Python's own email
package.

Options: `--starttls CERT KEY` offers and requires STARTTLS with that certificate;
`--auth USER PASSWORD` requires AUTH with them (only over TLS)."""
import json
import os
import signal
import sys
from email import policy
from email.parser import BytesParser

import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, outdir = int(sys.argv[1]), sys.argv[2]
options = sys.argv[3:]
count = 0


class Sink:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        raw = envelope.original_content or envelope.content
        with open(os.path.join(outdir, f"{count}.eml"), "wb") as f:
            f.write(raw)
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        body = msg.get_body(preferencelist=("plain",))
        info = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": msg["subject"],
            "text": body.get_content() if body else "",
            "attachments": [],
            "auth": session.auth_data.decode() if isinstance(session.auth_data, bytes) else session.auth_data,
            "tls": session.ssl is not None,
        }
        for part in msg.iter_attachments():
            name = part.get_filename()
            info["attachments"].append({"name": name, "type": part.get_content_type()})
            with open(os.path.join(outdir, f"{count}.{name}"), "wb") as f:
                f.write(part.get_payload(decode=True))
        with open(os.path.join(outdir, f"{count}.json.tmp"), "w") as f:
            json.dump(info, f)
        os.rename(os.path.join(outdir, f"{count}.json.tmp"), os.path.join(outdir, f"{count}.json"))
        return "250 Message accepted for delivery"


kwargs = {}
if "--starttls" in options:
    i = options.index("--starttls")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(options[i + 1], options[i + 2])
    kwargs.update(tls_context=ctx, require_starttls=True)
if "--auth" in options:
    i = options.index("--auth")
    user, password = options[i + 1].encode(), options[i + 2].encode()

    def check(server, session, envelope, mechanism, auth_data):
        ok = getattr(auth_data, "login", None) == user and getattr(auth_data, "password", None) == password
        return AuthResult(success=ok, auth_data=user.decode() if ok else None)

    kwargs.update(authenticator=check, auth_required=True, auth_require_tls=True)
controller = Controller(Sink(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
