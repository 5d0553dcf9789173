"""Real local servers that delivery tests send to: an SMTP server (aiosmtpd: plain, STARTTLS or SSL, with
login) and an HTTP receiver that records each request and answers with the statuses it is told to."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return body.get_content()

    def attachments(self) -> dict[str, bytes]:
        return {a.get_filename(): a.get_payload(decode=True) for a in self.message.iter_attachments()}


@dataclass
class SmtpServer:
    port: int
    mails: list[Mail] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    ca_file: str | None = None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):  # noqa: ANN001, ANN201 - aiosmtpd's hook
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        self.server.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def smtp_server(tmp: Path, security: str = "none", login: tuple[str, str] | None = None) -> Iterator[SmtpServer]:
    """An SMTP server on a free port; ``security`` starttls or ssl serves a certificate of a throwaway CA
    (written to ``server.ca_file`` for the client); ``login`` requires that user and password."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    server = SmtpServer(free_port())
    kwargs: dict[str, Any] = {}
    if security != "none":
        import trustme

        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        server.ca_file = str(tmp / "ca.pem")
        ca.cert_pem.write_to_path(server.ca_file)
        if security == "ssl":
            kwargs["ssl_context"] = context
        else:
            kwargs.update(tls_context=context, require_starttls=True)
    if login is not None:

        def check(smtp, session, envelope, mechanism, data):  # noqa: ANN001, ANN202
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            if ok:
                server.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

        # implicit TLS (ssl) is invisible to aiosmtpd's "require TLS" check, which only knows STARTTLS
        kwargs.update(authenticator=check, auth_required=True, auth_require_tls=security == "starttls")
    controller = Controller(_Handler(server), hostname="127.0.0.1", port=server.port, **kwargs)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; 200 once they run out


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    """An HTTP server on 127.0.0.1 that records every POST (path, headers, body)."""
    state = HttpReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(Request(self.path, dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
