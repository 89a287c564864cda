# An HTTPS server on 127.0.0.1 for the end-to-end tests: Python's ssl
# module drives OpenSSL through SSL_read_ex and SSL_write_ex. It prints its
# port, then serves GET (a fixed body) and POST (reads the body, answers
# with its length and sha256). Usage: https_server.py CERT KEY
import hashlib
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(b"hello from python\n")

    def do_POST(self):
        remaining = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        n = 0
        while remaining > 0:
            data = self.rfile.read(min(remaining, 1 << 16))
            if not data:
                break
            h.update(data)
            n += len(data)
            remaining -= len(data)
        self.reply(("%d %s\n" % (n, h.hexdigest())).encode())

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
