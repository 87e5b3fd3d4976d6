"""A tiny stand-in for the Hugging Face Hub API on 127.0.0.1 (stdlib only), for push/pull tests.

It speaks the subset huggingface_hub uses to create a repo, upload files in one commit, and download them:
``POST /api/repos/create``, ``POST /api/validate-yaml``, ``POST /api/models/<repo>/preupload/<rev>``,
``POST /api/models/<repo>/commit/<rev>``, ``GET /api/whoami-v2``, ``HEAD/GET /<repo>/resolve/<rev>/<path>``.
Run it as a script (``python hub_server.py PORT_FILE [--fail-commits]``): it writes its port to PORT_FILE and keeps the
uploaded files under ``<PORT_FILE>.files/`` so a test can inspect exactly what arrived.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES: dict[str, dict[str, bytes]] = {}
COMMIT = "0" * 40
LOCK = threading.Lock()


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail_commits = False
    store_dir = None

    def log_message(self, *args):  # keep test output clean
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def _send(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None, head: bool = False):
        body = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_POST(self):
        body = self._body()
        endpoint = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            request = json.loads(body or b"{}")
            repo = f"{request.get('organization') or 'tester'}/{request['name']}"
            with LOCK:
                FILES.setdefault(repo, {})
            return self._send(200, {"url": f"{endpoint}/{repo}", "name": repo, "id": repo})
        if self.path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        match = re.match(r"^/api/models/(.+?/.+?)/(preupload|commit)/([^/?]+)", self.path)
        if match:
            repo, action = match.group(1), match.group(2)
            if action == "preupload":
                files = json.loads(body).get("files", [])
                return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            if self.fail_commits:
                return self._send(500, {"error": "Internal Server Error (simulated)"})
            with LOCK:
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item.get("key") == "file":
                        FILES.setdefault(repo, {})[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                self._persist(repo)
            return self._send(200, {"commitUrl": f"{endpoint}/{repo}/commit/{COMMIT}", "commitOid": COMMIT})
        return self._send(404, {"error": f"no route {self.path}"})

    def _persist(self, repo: str) -> None:
        if not self.store_dir:
            return
        for path, content in FILES[repo].items():
            target = os.path.join(self.store_dir, repo, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)

    def _resolve(self, head: bool):
        match = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
        if self.path.startswith("/api/whoami-v2"):
            return self._send(200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write"}}}, head=head)
        if not match:
            return self._send(404, {"error": "not found"}, head=head)
        repo, _, path = match.groups()
        content = FILES.get(repo, {}).get(path)
        if content is None:
            code = "EntryNotFound" if repo in FILES else "RepoNotFound"
            return self._send(404, {"error": code}, headers={"X-Error-Code": code}, head=head)
        etag = '"' + hashlib.sha256(content).hexdigest() + '"'
        return self._send(200, raw=content, headers={"X-Repo-Commit": COMMIT, "ETag": etag}, head=head)

    def do_GET(self):
        self._resolve(head=False)

    def do_HEAD(self):
        self._resolve(head=True)


def serve(port_file: str, fail_commits: bool = False) -> None:
    HubHandler.fail_commits = fail_commits
    HubHandler.store_dir = port_file + ".files"
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], fail_commits="--fail-commits" in sys.argv)
