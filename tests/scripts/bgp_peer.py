#!/usr/bin/env python3
"""A raw TCP end for wgd's BGP tests, run inside a lab namespace.

It connects to a BGP speaker (retrying until it listens) and then only
moves bytes: what arrives on stdin goes to the socket, what the socket
receives goes to stdout, unchanged. The test on the other side of the
pipes speaks BGP itself (builds every OPEN, KEEPALIVE and UPDATE and
frames what comes back), so no message is altered or made up here.

stdout reaching EOF means the TCP connection ended (the speaker closed or
reset it); stdin reaching EOF closes our sending side. What happens is
told on stderr, one line each.

    ip netns exec <ns> python3 bgp_peer.py --connect 10.255.0.0 \\
        --source 10.255.0.1 [--port 179] [--deadline 30]
"""

import argparse
import os
import socket
import sys
import threading
import time


def say(text):
    print(f"bgp_peer: {text}", file=sys.stderr, flush=True)


def connect(address, port, source, deadline):
    """A connected socket, trying again until `deadline` seconds pass."""
    give_up = time.monotonic() + deadline
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if source:
                sock.bind((source, 0))
            sock.settimeout(3)
            sock.connect((address, port))
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as error:
            sock.close()
            if time.monotonic() > give_up:
                raise SystemExit(f"bgp_peer: cannot connect to {address}:{port}: {error}")
            time.sleep(0.2)


def stdin_to_socket(sock):
    while True:
        try:
            data = os.read(0, 65536)
        except OSError as error:
            say(f"reading stdin: {error}")
            data = b""
        if not data:
            say("stdin closed: shutting down our side")
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        try:
            sock.sendall(data)
        except OSError as error:
            say(f"sending: {error}")
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True, help="the speaker's address")
    parser.add_argument("--port", type=int, default=179)
    parser.add_argument("--source", help="the address to connect from")
    parser.add_argument("--deadline", type=float, default=30.0, help="seconds to keep trying")
    args = parser.parse_args()

    sock = connect(args.connect, args.port, args.source, args.deadline)
    local, remote = sock.getsockname(), sock.getpeername()
    say(f"connected {local[0]}:{local[1]} -> {remote[0]}:{remote[1]}")
    threading.Thread(target=stdin_to_socket, args=(sock,), daemon=True).start()

    while True:
        try:
            data = sock.recv(65536)
        except OSError as error:
            say(f"connection failed: {error}")
            break
        if not data:
            say("connection closed by the speaker")
            break
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]
    sock.close()
    os.close(1)


if __name__ == "__main__":
    main()
