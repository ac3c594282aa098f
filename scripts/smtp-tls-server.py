"""An SMTP server that demands what a production relay demands: TLS, then AUTH.

For .ci/smtp-tls, which points the mailer at it. Usage:

    smtp-tls-server.py MODE PORT CERT KEY USER PASSWORD MAILDIR

It listens on 127.0.0.1:PORT (aiosmtpd) with CERT/KEY: MODE `starttls` offers STARTTLS and
refuses MAIL before it (port 587's way); MODE `smtps` speaks TLS from the first byte (port
465's way). Either way it refuses MAIL before AUTH (PLAIN or LOGIN, with USER and PASSWORD
only), and writes each mail it accepts to MAILDIR as a file of its own. It prints
"listening" once it answers.
"""

import asyncio
import pathlib
import signal
import ssl
import sys
import uuid
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, maildir: pathlib.Path):
        self.maildir = maildir

    async def handle_DATA(self, server, session, envelope):
        name = self.maildir / f"{uuid.uuid4()}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        print(f"accepted a mail to {', '.join(envelope.rcpt_tos)} (TLS: {server.transport.get_extra_info('ssl_object') is not None}, signed in: {session.authenticated})", flush=True)
        return "250 2.0.0 OK"


def authenticator(user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        if not ok:
            print(f"refused AUTH {mechanism}", flush=True)
        return AuthResult(success=ok, handled=False)

    return check


def main() -> None:
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    mode, port, cert, key, user, password, maildir = sys.argv[1:8]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    folder = pathlib.Path(maildir)
    folder.mkdir(parents=True, exist_ok=True)
    tls = {
        "starttls": {"tls_context": context, "require_starttls": True},
        "smtps": {"ssl_context": context},
    }[mode]
    controller = Controller(
        Save(folder),
        hostname="127.0.0.1",
        port=int(port),
        server_hostname="localhost",
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS here; with smtps every byte is TLS anyway.
        auth_require_tls=mode == "starttls",
        authenticator=authenticator(user, password),
        **tls,
    )
    controller.start()
    print("listening", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
