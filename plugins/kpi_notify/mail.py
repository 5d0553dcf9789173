"""E-mail over SMTP: plain, STARTTLS or implicit TLS, with optional login; the body is the `email` report
format (HTML and plain-text parts) and the full HTML report can ride along as an attachment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kpi_engine import Channel, ChannelError, Message

if TYPE_CHECKING:
    from email.message import EmailMessage

_ADDRESSES = {"type": "array", "items": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"}, "minItems": 1}
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class EmailChannel(Channel):
    name = "email"
    description = "E-mail over SMTP (STARTTLS, SSL or plain; login optional)."
    options_schema = {
        "properties": {
            "to": {**_ADDRESSES, "description": "Recipients."},
            "cc": {**_ADDRESSES, "description": "Copied recipients."},
            "from": {"type": "string", "pattern": "^.*[^@\\s]+@[^@\\s]+.*$", "description": "Sender address."},
            "host": {"type": "string", "minLength": 1, "description": "SMTP server (may be ${env:SMTP_HOST})."},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Default: 587, 465, 25."},
            "security": {"enum": ["starttls", "ssl", "none"], "description": "How the connection is encrypted."},
            "username": {"type": "string", "description": "Login name (may be ${env:SMTP_USER})."},
            "password": {"type": "string", "secret": True, "description": "Login password: ${env:NAME} only."},
            "ca_file": {"type": "string", "description": "CA bundle that signed the server's certificate."},
            "attach": {"enum": ["html", "none"], "description": "Attach the full HTML report (default html)."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (default 30)."},
        },
        "required": ["to", "from", "host"],
    }

    def send(self, message: Message, options: Mapping[str, Any]) -> None:
        import smtplib  # (on first use: a run that sends nothing does not load the mail stack)
        import ssl

        mail = build_email(message, options)
        security = options.get("security", "starttls")
        host, port = options["host"], int(options.get("port") or DEFAULT_PORTS[security])
        timeout = float(options.get("timeout", 30))
        context = ssl.create_default_context(cafile=options.get("ca_file"))
        where = f"SMTP server {host}:{port}"
        try:
            if security == "ssl":
                server: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
            else:
                server = smtplib.SMTP(host, port, timeout=timeout)
            with server:
                if security == "starttls":
                    server.starttls(context=context)
                if options.get("username"):
                    server.login(options["username"], options.get("password", ""))
                refused = server.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(f"{where} refused the login of `{options.get('username')}` ({exc.smtp_code})") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ChannelError(f"{where} does not support {exc}; set `security:` to what it offers") from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise ChannelError(f"{where} answered {exc.smtp_code} {text}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ChannelError(f"{where} refused every recipient: {', '.join(exc.recipients)}") from None
        except ssl.SSLError as exc:
            raise ChannelError(f"{where}: TLS failed ({exc.reason}); check `security:` and `ca_file:`") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"cannot reach {where}: {exc}") from None
        if refused:
            raise ChannelError(f"{where} refused {', '.join(sorted(refused))}; the others received it")


def build_email(message: Message, options: Mapping[str, Any]) -> EmailMessage:
    """The MIME message: text and HTML alternatives, then any attachment, with the usual headers."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = options["from"]
    mail["To"] = ", ".join(options["to"])
    if options.get("cc"):
        mail["Cc"] = ", ".join(options["cc"])
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=options["from"].rsplit("@", 1)[-1].strip("> "))
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    if options.get("attach", "html") != "none":
        for item in message.attachments:
            main, sub = item.mime_type.split("/", 1)
            mail.add_attachment(item.data, maintype=main, subtype=sub, filename=item.filename)
    return mail
