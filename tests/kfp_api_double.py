"""TEST DOUBLE of the Kubeflow Pipelines v2beta1 REST API (not a KFP server).

A real KFP API server needs Kubernetes, Argo and MySQL; this is a real HTTP
server on 127.0.0.1, in a thread, that answers the endpoints kfp.Client calls
(experiments, runs, recurring runs, healthz) with the JSON shapes of
kfp_server_api's models, keeps what it is sent in memory, and records every
request so tests can assert what the client actually put on the wire.
Runs do not execute: each GET of a run moves it one step along a script of
states (default PENDING -> RUNNING -> SUCCEEDED) so a client can follow it.

It can also misbehave, as a broken or hostile server would: `faults` maps an
API path (e.g. "/runs") to one of FAULTS, answered instead of the real thing,
or to HANG, which accepts the request and never answers.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"
EPOCH = "1970-01-01T00:00:00Z"  # how the API says "not set"
HANG = "hang"
# What a broken server, a proxy or a login page in front of it may answer: (status, content type, body).
FAULTS = {
    "malformed": (200, "application/json", b'{"runs": [{"run_id": "5f0c'),
    "wrong_shape": (200, "application/json", b'[{"run_id": "5f0c6c3e"}]'),
    "html": (
        200,
        "text/html",
        b"<!DOCTYPE html>\n<html><head><title>Sign in - Google Accounts</title></head></html>\n",
    ),
    "unavailable": (503, "text/html", b"<html><body>\nupstream connect error or disconnect/reset\n</body></html>"),
}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]  # names lower-cased


@dataclass
class KfpApiDouble:
    """Start with `with KfpApiDouble() as api:`; `api.url` is the host to give kfp.Client."""

    requests: list[Request] = field(default_factory=list)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)
    run_states: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    task_names: tuple[str, ...] = ("ingest (Beam)", "train (Keras)", "report")
    faults: dict[str, str] = field(default_factory=dict)  # API path -> a FAULTS key or HANG
    _scripts: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closing: threading.Event = field(default_factory=threading.Event)  # lets HANG's handlers go at exit

    def __enter__(self) -> KfpApiDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    body,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                with double._lock:
                    double.requests.append(request)
                    fault = double.faults.get(parts.path.removeprefix(API))
                    if fault is None:
                        status, answer = double._route(request)
                if fault == HANG:
                    double._closing.wait()
                elif fault:
                    self._send(*FAULTS[fault])
                else:
                    self._send(status, "application/json", json.dumps(answer).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- what tests use to set the scene and look at what was sent ---

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == API + path]

    def add_run(
        self, name: str, state: str, *, minutes: int, pipeline_root: str = "", created: datetime | None = None
    ) -> str:
        """A run that already exists on the server (e.g. made by a schedule)."""
        created = created or _now() - timedelta(minutes=minutes + 1)
        run_id = str(uuid.uuid4())
        done = state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")
        self.runs[run_id] = {
            "run_id": run_id,
            "display_name": name,
            "experiment_id": "",
            "state": state,
            "created_at": _iso(created),
            "finished_at": _iso(created + timedelta(minutes=minutes)) if done else EPOCH,
            "runtime_config": {"parameters": {}, "pipeline_root": pipeline_root},
        }
        self._scripts[run_id] = []
        return run_id

    # --- the API ---

    def _route(self, r: Request) -> tuple[int, Any]:
        path = r.path[len(API) :] if r.path.startswith(API) else None
        if path == "/healthz" and r.method == "GET":
            return 200, {"multi_user": False, "pipeline_store": "database"}
        if path == "/experiments":
            return self._experiments(r)
        if path == "/runs":
            return self._runs(r)
        if path and path.startswith("/runs/") and r.method == "GET":
            return self._get_run(path.split("/")[2])
        if path == "/recurringruns":
            return self._recurring(r)
        if path and path.startswith("/recurringruns/"):
            return self._one_recurring(r, path.split("/")[2])
        return 404, {"error": f"test double: no route for {r.method} {r.path}", "code": 5}

    def _experiments(self, r: Request) -> tuple[int, Any]:
        if r.method == "POST":
            experiment = {
                **r.body,
                "experiment_id": str(uuid.uuid4()),
                "created_at": _iso(_now()),
                "storage_state": "AVAILABLE",
            }
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        found = list(self.experiments.values())
        for predicate in json.loads(r.query.get("filter", ["{}"])[0]).get("predicates", []):
            found = [
                e
                for e in found
                if e.get(predicate["key"]) == predicate.get("string_value", predicate.get("stringValue"))
            ]
        return 200, {"experiments": found, "total_size": len(found)}

    def _runs(self, r: Request) -> tuple[int, Any]:
        if r.method == "POST":
            run_id = str(uuid.uuid4())
            run = {**r.body, "run_id": run_id, "state": "PENDING", "created_at": _iso(_now()), "finished_at": EPOCH}
            self.runs[run_id] = run
            self._scripts[run_id] = list(self.run_states)
            return 200, run
        listed = sorted(self.runs.values(), key=lambda x: x["created_at"], reverse=True)
        limit = int(r.query.get("page_size", ["20"])[0])
        return 200, {"runs": listed[:limit], "total_size": len(listed)}

    def _get_run(self, run_id: str) -> tuple[int, Any]:
        if run_id not in self.runs:
            return 404, {"error": f"run {run_id} not found", "code": 5}
        run, script = self.runs[run_id], self._scripts[run_id]
        if script:
            run["state"] = script.pop(0)
            done = run["state"] in ("SUCCEEDED", "FAILED")
            task_state = run["state"] if run["state"] != "PENDING" else None
            run["run_details"] = {
                "task_details": [
                    {"display_name": n, "task_id": n, "state": task_state} for n in self.task_names if task_state
                ]
            }
            if done:
                run["finished_at"] = _iso(_now())
                if run["state"] == "FAILED":
                    run["error"] = {"code": 2, "message": "train (Keras) failed: OOMKilled"}
        return 200, run

    def _recurring(self, r: Request) -> tuple[int, Any]:
        if r.method == "POST":
            job_id = str(uuid.uuid4())
            job = {
                **r.body,
                "recurring_run_id": job_id,
                "created_at": _iso(_now()),
                "status": "ENABLED" if r.body.get("mode") == "ENABLE" else "DISABLED",
            }
            self.recurring_runs[job_id] = job
            return 200, job
        jobs = sorted(self.recurring_runs.values(), key=lambda j: j["created_at"], reverse=True)
        return 200, {"recurringRuns": jobs, "total_size": len(jobs)}

    def _one_recurring(self, r: Request, ref: str) -> tuple[int, Any]:
        job_id, _, verb = ref.partition(":")
        if job_id not in self.recurring_runs:
            return 404, {"error": f"recurring run {job_id} not found", "code": 5}
        job = self.recurring_runs[job_id]
        if r.method == "POST" and verb in ("enable", "disable"):
            job["mode"], job["status"] = ("ENABLE", "ENABLED") if verb == "enable" else ("DISABLE", "DISABLED")
            return 200, {}
        if r.method == "DELETE" and not verb:
            del self.recurring_runs[job_id]
            return 200, {}
        if r.method == "GET" and not verb:
            return 200, job
        return 404, {"error": f"test double: no route for {r.method} {r.path}", "code": 5}
