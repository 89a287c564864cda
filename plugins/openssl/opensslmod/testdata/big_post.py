# POSTs SIZE bytes (byte i is i % 251) to https://127.0.0.1:PORT/ in one
# sendall, which Python's ssl module hands to a single SSL_write_ex call.
# Prints the reply's body. Usage: big_post.py PORT SIZE
import http.client
import ssl
import sys

port, size = int(sys.argv[1]), int(sys.argv[2])
body = bytes(range(251)) * (size // 251) + bytes(range(size % 251))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
conn.request("POST", "/big", body=body, headers={"Content-Type": "application/octet-stream"})
print(conn.getresponse().read().decode(), end="")
