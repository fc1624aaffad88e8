#!/usr/bin/env python3
"""Automated check of the optional OTLP trace export (cargo feature `otlp`).

Runs `OXBADGE_BIN serve` (a binary built with `--features otlp`) on a fresh SQLite data directory
with OXBADGE_OTLP_ENDPOINT pointing at a minimal OTLP/HTTP collector started here, makes a few
requests (health checks, a token request with a wrong client secret, an API call with a made-up
bearer token), stops the server with SIGTERM, and checks what was exported: protobuf
ExportTraceServiceRequests decoded with the official `opentelemetry-proto` messages, the resource
`service.name` = oxbadge, one `request` span per request with its method and path, and none of
the secrets sent in the requests anywhere in the exported bytes. Exit status 0 when all hold.

    python3 tests/otlp/check.py target/debug/oxbadge
"""
import base64
import http.server
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

SECRET = "oxbcs_otlp-check-secret-" + base64.b32encode(os.urandom(10)).decode().lower()
TOKEN = "oxbat_otlp-check-token-" + base64.b32encode(os.urandom(10)).decode().lower()

received = []  # (content type, raw bytes)


class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        received.append((self.path, self.headers.get("content-type"), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:  # not listening yet
        return None


def main():
    binary = sys.argv[1]
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ)
        for key in list(env):
            if key.startswith("OXBADGE_") or key == "DATABASE_URL":
                del env[key]
        env.update(
            OXBADGE_DATA_DIR=data,
            OXBADGE_LISTEN=f"127.0.0.1:{port}",
            OXBADGE_OTLP_ENDPOINT=endpoint,
            OXBADGE_LOG="info",
            OXBADGE_LOG_FORMAT="json",
        )
        server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 120
            while request(f"{base}/health") != 200:
                if server.poll() is not None or time.time() > deadline:
                    print(server.stderr.read().decode(errors="replace")[-4000:])
                    sys.exit("the server did not come up")
                time.sleep(0.2)
            statuses = [request(f"{base}/health") for _ in range(3)]
            basic = base64.b64encode(f"otlp-check-client:{SECRET}".encode()).decode()
            statuses.append(
                request(
                    f"{base}/oauth/token",
                    data=b"grant_type=client_credentials",
                    headers={"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"},
                )
            )
            statuses.append(request(f"{base}/api/v1/issuers", headers={"authorization": f"Bearer {TOKEN}"}))
            assert statuses == [200, 200, 200, 401, 401], statuses
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                sys.exit("the server did not stop within 30 s of SIGTERM")
    # The batch exporter flushes at shutdown; allow a moment for late deliveries.
    deadline = time.time() + 10
    while not received and time.time() < deadline:
        time.sleep(0.2)
    collector.shutdown()
    assert received, "no OTLP export arrived"
    spans = []
    services = set()
    for path, content_type, body in received:
        assert path == "/v1/traces", path
        assert content_type == "application/x-protobuf", content_type
        assert SECRET.encode() not in body and TOKEN.encode() not in body, "a secret was exported"
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for rs in export.resource_spans:
            for attr in rs.resource.attributes:
                if attr.key == "service.name":
                    services.add(attr.value.string_value)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {a.key: a.value.string_value for a in span.attributes}
                    spans.append((span.name, attrs, span.end_time_unix_nano - span.start_time_unix_nano))
    assert services == {"oxbadge"}, services
    requests = [(a.get("method"), a.get("path")) for name, a, _ in spans if name == "request"]
    for expected, count in [(("GET", "/health"), 4), (("POST", "/oauth/token"), 1), (("GET", "/api/v1/issuers"), 1)]:
        got = requests.count(expected)
        assert got >= count, f"{expected}: {got} request spans, expected {count}; spans: {requests}"
    assert all(d >= 0 for _, _, d in spans)
    print(
        f"OTLP export checked: {len(received)} export(s), {len(spans)} span(s), "
        f"{len(requests)} request span(s), service.name=oxbadge, no secret exported"
    )


if __name__ == "__main__":
    main()
