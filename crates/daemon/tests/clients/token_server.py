"""A registry token server for tests: grants every scope asked for (anonymous included) in an
RS256 JWT whose x5c header carries the certificate the registry trusts, and appends each
request's scope parameters, one request a line, to a log file.

usage: token_server.py PORT KEY_PEM CERT_PEM LOG
"""
import base64
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

port, key_path, cert_path, log_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
key = serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
cert = x509.load_pem_x509_certificate(open(cert_path, "rb").read())
der = cert.public_bytes(serialization.Encoding.DER)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(scopes, service):
    access = []
    for s in scopes:
        kind, _, rest = s.partition(":")
        name, _, actions = rest.rpartition(":")
        access.append({"type": kind, "name": name, "actions": actions.split(",")})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    claims = {"iss": "wharf-test", "sub": "", "aud": service, "exp": now + 300,
              "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing + "." + b64(sig)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        scopes = q.get("scope", [])
        with open(log_path, "a") as f:
            f.write(" ".join(scopes) + "\n")
        t = token(scopes, q.get("service", [""])[0])
        body = json.dumps({"token": t, "access_token": t, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
