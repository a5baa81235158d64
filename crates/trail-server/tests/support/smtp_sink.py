"""A real SMTP server for tests: aiosmtpd on 127.0.0.1:PORT. Every message received is
saved as N.eml in OUTDIR, with N.json (from, to, subject, text, attachment names) and
each attachment as N.<filename>, parsed by Python's own email package."""
import json
import os
import signal
import sys
from email import policy
from email.parser import BytesParser

from aiosmtpd.controller import Controller

port, outdir = int(sys.argv[1]), sys.argv[2]
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


controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
controller.stop()
