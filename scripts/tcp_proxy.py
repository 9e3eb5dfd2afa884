#!/usr/bin/env python3
"""tcp_proxy.py [LISTEN_HOST:]LISTEN_PORT TARGET_HOST TARGET_PORT: forwards every connection
made to LISTEN_HOST:LISTEN_PORT (127.0.0.1 unless given) to TARGET_HOST:TARGET_PORT until it is
killed. Killing it cuts every connection at once (the kernel closes its sockets): the
fault-injection scenarios put it in front of one worker's Redis to cut that worker off while
Kafka still reaches it. Stopping it (SIGSTOP) leaves every connection open and silent, as a
network that drops packets does; the broker-split scenario links a network namespace to this
machine's broker and Redis with two of them per service."""
import signal
import socket
import sys
import threading


def pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for s in (source, sink):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    # A parent may start it with signals blocked (they are inherited): it must die on TERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    listen_host, _, listen_port = sys.argv[1].rpartition(":")
    host, port = sys.argv[2], int(sys.argv[3])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((listen_host or "127.0.0.1", int(listen_port)))
    listener.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, port))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main()
