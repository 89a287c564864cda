# Sends SIZE bytes (byte i is i % 251) over TLS, in writes of 64 KiB from a
# non-blocking socket, to a server in this process that starts reading
# only after a second: the socket buffers fill, SSL_write_ex fails with
# WANT_WRITE, and is called again for the same bytes once the socket is
# writable. Prints "RETRIES RECEIVED SHA256": the writes called again and
# what the server read. Usage: retry_write.py CERT KEY SIZE
import hashlib
import select
import socket
import ssl
import sys
import threading
import time

cert, key, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = (bytes(range(251)) * (size // 251 + 1))[:size]

server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
got = {"n": 0, "sha": ""}


def serve():
    conn, _ = listener.accept()
    s = server_ctx.wrap_socket(conn, server_side=True)
    time.sleep(1)
    h = hashlib.sha256()
    while got["n"] < size:
        b = s.recv(65536)
        if not b:
            break
        h.update(b)
        got["n"] += len(b)
    got["sha"] = h.hexdigest()
    s.close()


server = threading.Thread(target=serve)
server.start()
client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client_ctx.check_hostname = False
client_ctx.verify_mode = ssl.CERT_NONE
c = client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", listener.getsockname()[1])))
c.setblocking(False)
view = memoryview(data)
off = retries = 0
while off < size:
    try:
        off += c.send(view[off:off + 65536])
    except ssl.SSLWantWriteError:
        retries += 1
        select.select([], [c], [], 10)
    except ssl.SSLWantReadError:
        retries += 1
        select.select([c], [], [], 10)
server.join(60)
c.close()
print(retries, got["n"], got["sha"])
