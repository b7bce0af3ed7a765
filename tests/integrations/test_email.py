"""Email alerts over SMTP with STARTTLS and AUTH, against a real local server: Python's
aiosmtpd, started here with a certificate made here with openssl. The daemon trusts only that
certificate (ca_file), must upgrade with STARTTLS before it may log in, and a refused login is a
permanent failure that goes straight to the dead letters."""
from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from email import message_from_bytes
from pathlib import Path
from typing import Any, Iterator, List

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import Daemon, wait_until

USER, PASSWORD = "spendwall", "correct horse"


class Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mail: List[Any] = []
        self.logins: List[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.mail.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.original_content or envelope.content),
                              "tls": session.ssl is not None, "authenticated": session.authenticated})
        return "250 OK"

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
            and auth_data.password.decode() == PASSWORD
        with self.lock:
            self.logins.append({"mechanism": mechanism, "ok": ok, "tls": session.ssl is not None})
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: Any) -> Path:
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d


@pytest.fixture(scope="module")
def smtp(certificate: Path) -> Iterator[Any]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate / "cert.pem"), str(certificate / "key.pem"))
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, auth_require_tls=True, authenticator=inbox)
    controller.start()
    controller.inbox = inbox
    controller.smtp_port = port
    yield controller
    controller.stop()


def daemon_for(smtp: Any, certificate: Path, password: str, ca: Any = None) -> Daemon:
    toml = f"""
[dispatch]
base_delay = "20ms"
max_delay = "50ms"
max_attempts = 3

[[transport]]
name = "mail"
type = "email"
url = "smtp://localhost:{smtp.smtp_port}"
from = "spendwall@example.test"
to = ["ops@example.test", "oncall@example.test"]
username = "{USER}"
password_env = "TEST_SMTP_PASSWORD"
starttls = true
ca_file = "{ca or certificate / 'cert.pem'}"
timeout = "10s"

[[route]]
kinds = ["KillSwitch"]
transports = ["mail"]
"""
    return Daemon(files={"alerts.toml": toml}, env={"TEST_SMTP_PASSWORD": password})


def test_a_kill_switch_arrives_by_mail_over_starttls_with_auth(smtp: Any, certificate: Path) -> None:
    daemon = daemon_for(smtp, certificate, PASSWORD)
    try:
        before = len(smtp.inbox.mail)
        assert daemon.call("POST", "/v1/kill", {"agent": "mailer"})[0] == 200
        wait_until(lambda: len(smtp.inbox.mail) > before, "the mail")
        mail = smtp.inbox.mail[-1]
        assert mail["tls"] and mail["authenticated"]
        assert mail["from"] == "spendwall@example.test"
        assert mail["to"] == ["ops@example.test", "oncall@example.test"]
        message = mail["message"]
        assert message["Subject"] == "[Spendwall] Kill switch agent mailer turned on"
        assert message["X-Spendwall-Kind"] == "KillSwitch"
        assert "Kill switch agent mailer turned on" in message.get_payload(decode=True).decode()
        assert all(login["tls"] for login in smtp.inbox.logins)
        daemon.stop()
        assert PASSWORD not in open(daemon.log_path).read()
    finally:
        daemon.cleanup()


def test_a_refused_login_is_permanent_and_dead_lettered(smtp: Any, certificate: Path) -> None:
    daemon = daemon_for(smtp, certificate, "wrong password")
    try:
        refused_before = sum(1 for login in smtp.inbox.logins if not login["ok"])
        assert daemon.call("POST", "/v1/kill", {"agent": "mailer2"})[0] == 200
        wait_until(lambda: daemon.call("GET", "/v1/alerts")[1]["dead_letters"], "the dead letter")
        letter = daemon.call("GET", "/v1/alerts")[1]["dead_letters"][0]
        assert letter["transport"] == "mail" and letter["attempts"] == 1
        assert "login refused" in letter["last_error"]
        assert sum(1 for login in smtp.inbox.logins if not login["ok"]) == refused_before + 1
    finally:
        daemon.cleanup()


def test_an_untrusted_certificate_is_refused(smtp: Any, certificate: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(other)], check=True, capture_output=True)
    # The transport trusts a CA that did not sign the server's certificate.
    toml_daemon = daemon_for(smtp, certificate, PASSWORD, ca=other)
    try:
        status, body = toml_daemon.call("POST", "/v1/alerts/test", {"transport": "mail"})
        assert status == 502 and body["error"]["code"] == "alert_delivery_failed"
        assert "TLS" in body["error"]["message"]
    finally:
        toml_daemon.cleanup()
