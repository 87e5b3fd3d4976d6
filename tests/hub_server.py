"""A tiny stand-in for the Hugging Face Hub API on 127.0.0.1 (stdlib only), for push/pull tests.

It speaks the subset huggingface_hub, timm, transformers and datasets use to create a repo, upload files in one
commit, and read model and dataset repos: ``POST /api/repos/create``, ``POST /api/validate-yaml``,
``POST /api/models/<repo>/preupload/<rev>``, ``POST /api/models/<repo>/commit/<rev>``, ``GET /api/whoami-v2``,
``GET /api/{models,datasets}/<repo>[/revision/<rev>]``, ``GET /api/{models,datasets}/<repo>/tree/<rev>[/<path>]``,
``POST /api/{models,datasets}/<repo>/paths-info/<rev>``, ``HEAD/GET /[datasets/]<repo>/resolve/<rev>/<path>``.
Run it as a script (``python hub_server.py PORT_FILE [--fail-commits] [--seed DIR]``): it writes its port to
PORT_FILE, keeps uploaded model files under ``<PORT_FILE>.files/`` so a test can inspect exactly what arrived (and
``<PORT_FILE>.files/_commits.json``: every commit's file list, by repo, so a test can count commits), and
with ``--seed DIR`` serves the repos laid out as ``DIR/{models,datasets}/<org>/<name>/...``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FILES: dict[str, dict[str, bytes]] = {}  # model repos, by repo id
DATASETS: dict[str, dict[str, bytes]] = {}  # dataset repos, by repo id
COMMITS: dict[str, list[list[str]]] = {}  # model repos: the file paths of every commit, in order
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
        info = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)/paths-info/([^/?]+)", self.path)
        if info:
            store = self._store(info.group(1))
            repo = info.group(2)
            if repo not in store:
                return self._send(404, {"error": "RepoNotFound"}, headers={"X-Error-Code": "RepoNotFound"})
            wanted = _requested_paths(body, self.headers.get("Content-Type", ""))
            return self._send(200, [e for e in _entries(store[repo], "", recursive=True, with_dirs=True) if e["path"] in wanted])
        match = re.match(r"^/api/models/(.+?/.+?)/(preupload|commit)/([^/?]+)", self.path)
        if match:
            repo, action = match.group(1), match.group(2)
            if action == "preupload":
                files = json.loads(body).get("files", [])
                return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
            if self.fail_commits:
                return self._send(500, {"error": "Internal Server Error (simulated)"})
            with LOCK:
                paths = []
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item.get("key") == "file":
                        FILES.setdefault(repo, {})[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        paths.append(item["value"]["path"])
                COMMITS.setdefault(repo, []).append(sorted(paths))
                self._persist(repo)
            return self._send(200, {"commitUrl": f"{endpoint}/{repo}/commit/{COMMIT}", "commitOid": COMMIT})
        return self._send(404, {"error": f"no route {self.path}"})

    def _persist(self, repo: str) -> None:
        if not self.store_dir:
            return
        os.makedirs(self.store_dir, exist_ok=True)
        with open(os.path.join(self.store_dir, "_commits.json"), "w") as handle:  # what tests count
            json.dump(COMMITS, handle)
        for path, content in FILES[repo].items():
            target = os.path.join(self.store_dir, repo, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(content)

    @staticmethod
    def _store(kind: str) -> dict[str, dict[str, bytes]]:
        return DATASETS if kind == "datasets" else FILES

    def _api_get(self, head: bool) -> bool:
        path, _, query = self.path.partition("?")
        tree = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)/?(.*)$", path)
        info = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/revision/([^/]+))?/?$", path)
        if tree:
            store, repo, folder = self._store(tree.group(1)), tree.group(2), tree.group(4).strip("/")
            if repo not in store:
                self._send(404, {"error": "RepoNotFound"}, headers={"X-Error-Code": "RepoNotFound"}, head=head)
                return True
            recursive = "recursive=true" in query.lower() or "recursive=1" in query.lower()
            self._send(200, _entries(store[repo], folder, recursive, with_dirs=True), head=head)
            return True
        if info:
            store, repo = self._store(info.group(1)), info.group(2)
            if repo not in store:
                self._send(404, {"error": "RepoNotFound"}, headers={"X-Error-Code": "RepoNotFound"}, head=head)
                return True
            siblings = [{"rfilename": p, "size": len(c)} for p, c in sorted(store[repo].items())]
            self._send(200, {"id": repo, "_id": repo, "sha": COMMIT, "private": False, "disabled": False, "gated": False,
                             "siblings": siblings, "tags": [], "cardData": {}, "lastModified": "2026-01-01T00:00:00.000Z"}, head=head)
            return True
        return False

    def _resolve(self, head: bool):
        if self.path.startswith("/api/whoami-v2"):
            return self._send(200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write"}}}, head=head)
        if self.path.startswith("/api/") and self._api_get(head):
            return None
        path = self.path.split("?")[0]
        store = FILES
        if path.startswith("/datasets/"):
            store, path = DATASETS, path[len("/datasets"):]
        match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if not match:
            if os.environ.get("HUB_SERVER_DEBUG"):
                print("hub_server: no route", self.command, self.path, file=sys.stderr)
            return self._send(404, {"error": "not found"}, head=head)
        repo, _, file_path = match.groups()
        content = store.get(repo, {}).get(urllib.parse.unquote(file_path))
        if content is None:
            code = "EntryNotFound" if repo in store else "RepoNotFound"
            return self._send(404, {"error": code}, headers={"X-Error-Code": code}, head=head)
        etag = '"' + hashlib.sha256(content).hexdigest() + '"'
        return self._send(200, raw=content, headers={"X-Repo-Commit": COMMIT, "ETag": etag}, head=head)

    def do_GET(self):
        self._resolve(head=False)

    def do_HEAD(self):
        self._resolve(head=True)


def _entries(files: dict[str, bytes], folder: str, recursive: bool, with_dirs: bool) -> list[dict]:
    """Tree entries under ``folder``: files (with size and oid) and, when asked, their directories."""
    prefix = f"{folder}/" if folder else ""
    out, dirs = [], set()
    for path, content in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):]
        parts = rest.split("/")
        if len(parts) > 1:
            for depth in range(1, len(parts) if recursive else 2):
                dirs.add(prefix + "/".join(parts[:depth]))
            if not recursive:
                continue
        out.append({"type": "file", "path": path, "size": len(content), "oid": hashlib.sha1(content).hexdigest()})
    if with_dirs:
        out += [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(dirs)]
    return out


def _requested_paths(body: bytes, content_type: str) -> set[str]:
    if "json" in content_type:
        return set(json.loads(body or b"{}").get("paths", []))
    return set(urllib.parse.parse_qs(body.decode()).get("paths", []))


def _seed(directory: str) -> None:
    """Serve the repos found as ``directory/{models,datasets}/<org>/<name>/...``."""
    for kind, store in (("models", FILES), ("datasets", DATASETS)):
        root = os.path.join(directory, kind)
        if not os.path.isdir(root):
            continue
        for org in os.listdir(root):
            for name in os.listdir(os.path.join(root, org)):
                base = os.path.join(root, org, name)
                repo = store.setdefault(f"{org}/{name}", {})
                for folder, _, files in os.walk(base):
                    for file in files:
                        full = os.path.join(folder, file)
                        with open(full, "rb") as handle:
                            repo[os.path.relpath(full, base).replace(os.sep, "/")] = handle.read()


def serve(port_file: str, fail_commits: bool = False, seed: str | None = None) -> None:
    if seed:
        _seed(seed)
    HubHandler.fail_commits = fail_commits
    HubHandler.store_dir = port_file + ".files"
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    seed_dir = sys.argv[sys.argv.index("--seed") + 1] if "--seed" in sys.argv else None
    serve(sys.argv[1], fail_commits="--fail-commits" in sys.argv, seed=seed_dir)
