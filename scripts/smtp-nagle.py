#!/usr/bin/env python3
"""What Nagle's algorithm costs an SMTP client that writes a mail's body and its closing
"." in two writes, as lettre 0.11.23 does (docs/performance.md, "Invites in batches, and
40 ms a mail"). Sends 100 mails down one connection to an SMTP server that accepts
anything (MailDev: python3 scripts/smtp-nagle.py 127.0.0.1 1025), three ways."""
import socket
import sys
import time

HOST = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 1025
BODY = (
    b"From: a@nagle.test\r\nTo: b@nagle.test\r\nSubject: nagle\r\n"
    b"Date: Thu, 03 Dec 2026 11:00:00 +0000\r\n\r\n" + b"hello world line\r\n" * 120
)


def reply(f):
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line


def run(mode, n=100):
    s = socket.create_connection((HOST, PORT))
    if mode == "two writes, TCP_NODELAY":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO nagle.test\r\n")
    reply(f)
    took = []
    for _ in range(n):
        t = time.perf_counter()
        for c in [b"NOOP\r\n", b"MAIL FROM:<a@nagle.test>\r\n", b"RCPT TO:<b@nagle.test>\r\n", b"DATA\r\n"]:
            s.sendall(c)
            reply(f)
        if mode == "one write":
            s.sendall(BODY + b"\r\n.\r\n")
        else:
            s.sendall(BODY)
            s.sendall(b"\r\n.\r\n")
        reply(f)
        took.append(time.perf_counter() - t)
    s.sendall(b"QUIT\r\n")
    s.close()
    took.sort()
    print(f"{mode}: p50 {took[n // 2] * 1000:.1f} ms, p99 {took[int(n * 0.99)] * 1000:.1f} ms")


for mode in ["one write", "two writes", "two writes, TCP_NODELAY"]:
    run(mode)
