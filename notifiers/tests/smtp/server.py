#!/usr/bin/env python3
"""A real SMTP server for herald's email tests (aiosmtpd, from PyPI).

Listens on 127.0.0.1 with TLS (STARTTLS required before AUTH and MAIL, or implicit TLS), checks
AUTH PLAIN/LOGIN against --user/--password, and writes every accepted message to --maildir as
NNNN.eml (the raw message) plus NNNN.json (envelope sender, recipients, the AUTH login and
mechanism, whether the session was TLS). Prints "READY <port>" on stdout once it accepts
connections, then runs until stdin closes (the test holding the pipe exits) or it is killed.

--fail-rcpt ADDRESS makes RCPT TO for that address answer 550 (permanent);
--fail-data-times N makes the first N DATA commands answer 451 (temporary).

Usage: server.py --cert C --key K --maildir DIR --mode starttls|tls --user U --password P
"""

import argparse
import json
import logging
import os
import socket
import ssl
import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, maildir, fail_rcpt, fail_data_times, implicit_tls):
        self.maildir = maildir
        self.implicit_tls = implicit_tls
        self.fail_rcpt = fail_rcpt
        self.fail_data_left = fail_data_times
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fail_rcpt and address == self.fail_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.fail_data_left > 0:
                self.fail_data_left -= 1
                return "451 4.3.0 try again later"
            self.count += 1
            n = self.count
        base = os.path.join(self.maildir, "%04d" % n)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(base + ".eml.tmp", base + ".eml")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.authenticated and getattr(session, "herald_login", None),
            "mechanism": getattr(session, "herald_mechanism", None),
            # Implicit TLS: the listener speaks nothing else. STARTTLS: the session's TLS.
            "tls": self.implicit_tls or session.ssl is not None,
            "peer": list(session.peer) if session.peer else None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.replace(base + ".json.tmp", base + ".json")
        return "250 2.0.0 queued as %04d" % n


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        ok = login == user and auth_data.password.decode() == password
        if ok:
            session.herald_login = login
            session.herald_mechanism = mechanism
        return AuthResult(success=ok, handled=False)

    return check


def main():
    # aiosmtpd warns about AUTH without STARTTLS in implicit-TLS mode and deprecated fields.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--mode", choices=["starttls", "tls"], required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--fail-rcpt", default=None)
    p.add_argument("--fail-data-times", type=int, default=0)
    a = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    port = free_port()
    handler = Handler(a.maildir, a.fail_rcpt, a.fail_data_times, a.mode == "tls")
    common = dict(
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator(a.user, a.password),
        auth_required=True,
        auth_require_tls=True,
        server_hostname="herald-test-smtp",
    )
    if a.mode == "starttls":
        controller = Controller(handler, tls_context=ctx, require_starttls=True, **common)
    else:
        # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; here the whole
        # connection is TLS from the first byte, so AUTH is offered on it.
        common["auth_require_tls"] = False
        controller = Controller(handler, ssl_context=ctx, **common)
    controller.start()
    print("READY %d" % port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
