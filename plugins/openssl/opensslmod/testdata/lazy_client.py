# An HTTPS client that never calls SSL_do_handshake: Python's ssl with
# do_handshake_on_connect=False, so its first SSL_write_ex drives the
# handshake. Prints each response's status line and body.
# Usage: lazy_client.py PORT PATH MODE [wait], MODE one of
#   once   one request (Connection: close), its response read at once
#   slow   one request, its response read 1.5 s later
#   twice  one request (keep-alive), then "ready" on stdout; a second
#          request on the same connection once a line arrives on stdin
# With "wait", it connects only once a line arrives on stdin.
import socket
import ssl
import sys
import time

port, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if sys.argv[4:] == ["wait"]:
    sys.stdin.readline()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), do_handshake_on_connect=False)
buf = b""


def request(close):
    s.sendall(("GET /%s HTTP/1.1\r\nHost: localhost\r\nConnection: %s\r\n\r\n"
               % (path, "close" if close else "keep-alive")).encode())


def response(close):
    global buf
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while (length is None and close) or (length is not None and len(body) < length):
        b = s.recv(65536)
        if not b:
            break
        body += b
    if length is not None:
        body, buf = body[:length], body[length:]
    print(head.split(b"\r\n")[0].decode(), body.decode(errors="replace").strip(), flush=True)


if mode == "once":
    request(True)
    response(True)
elif mode == "slow":
    request(True)
    time.sleep(1.5)
    response(True)
elif mode == "twice":
    request(False)
    response(False)
    print("ready", flush=True)
    sys.stdin.readline()
    request(True)
    response(True)
else:
    sys.exit("unknown mode " + mode)
s.close()
