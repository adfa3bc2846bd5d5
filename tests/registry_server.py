"""A stand-in for Confluent Schema Registry in the tests: an HTTP server speaking the
part of its REST API that confluent-kafka's SchemaRegistryClient uses (register under a
subject, schema by id, a subject's versions), with HTTP basic auth, backed by a
FileSchemaRegistry. It is not Confluent's server (that is not reachable from here); the
client kappa uses against it is the real one."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from kappa.schemas.registry import FileSchemaRegistry, UnknownSchemaError


class RegistryServer:
    def __init__(self, store: Path, user: str, password: str):
        self.registry = FileSchemaRegistry(store)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append(f"{method} {path}")
                if self.headers.get("Authorization") != server.auth:
                    return self._reply(401, {"error_code": 401, "message": "Unauthorized"})
                reg = server.registry
                try:
                    if method == "POST" and (m := re.fullmatch(r"/subjects/([^/]+)/versions", path)):
                        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                        return self._reply(200, {"id": reg.register(m[1], json.loads(body["schema"]))})
                    if method == "GET" and (m := re.fullmatch(r"/schemas/ids/(\d+)", path)):
                        return self._reply(200, {"schema": json.dumps(reg.schema_by_id(int(m[1])))})
                    if method == "GET" and (m := re.fullmatch(r"/subjects/([^/]+)/versions", path)):
                        ids = reg.subject_ids(m[1])
                        if not ids:
                            raise UnknownSchemaError(m[1])
                        return self._reply(200, list(range(1, len(ids) + 1)))
                    if method == "GET" and (m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path)):
                        ids = reg.subject_ids(m[1])
                        if not ids:
                            raise UnknownSchemaError(m[1])
                        version = len(ids) if m[2] == "latest" else int(m[2])
                        sid = ids[version - 1]
                        return self._reply(200, {"subject": m[1], "version": version, "id": sid,
                                                 "schema": json.dumps(reg.schema_by_id(sid))})
                except (UnknownSchemaError, IndexError):
                    return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
                return self._reply(404, {"error_code": 404, "message": f"no route {method} {path}"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

        return Handler
