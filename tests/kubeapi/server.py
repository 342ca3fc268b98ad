"""``KubeApiServer``: the stand-in on a loopback port, plus a direct API for tests.

The HTTP side is a ``ThreadingHTTPServer`` in a daemon thread speaking
HTTP/1.1 keep-alive (the python client pools connections). The direct methods
(``create``, ``get``, ``delete``, ``add_finalizer``...) act on the same store
without authorization, for arranging a scene and asserting on it; ``fail_next``
and ``delay_next`` inject errors and slowness into the HTTP side.
"""

from __future__ import annotations

import builtins
import json
import secrets
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from .api import Api, RecordedRequest
from .errors import JSON, ApiError, not_found
from .faults import Delay, Fault
from .rbac import Attributes, UserInfo
from .resources import CLUSTER_ROLES, NAMESPACES, RBAC, ROLES, Resource, by_api_version, by_kind
from .seed import bootstrap_objects
from .selectors import matches_labels, parse_label_selector


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: Api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when the client hung up first: with delays a read timeout is the point."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections are closed after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's
        # algorithm and the client's delayed ACK add ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.title(): v for k, v in self.headers.items()}
        response = self.server.api.handle(self.command, self.path, headers, body)
        payload = json.dumps(response.body).encode() + b"\n"
        self.send_response(response.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in response.headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are in ``KubeApiServer.requests``."""


def _user(name: str, groups: Iterable[str]) -> UserInfo:
    """Groups an authenticated user carries, as the real authenticators add them."""
    out = list(groups)
    if name.startswith("system:serviceaccount:"):
        namespace = name.split(":")[2]
        out += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    out.append("system:authenticated")
    return UserInfo(name, tuple(dict.fromkeys(out)))


class KubeApiServer:
    """A Kubernetes API server stand-in; see ``tests/kubeapi/__init__.py``."""

    def __init__(self, *, seed: bool = True) -> None:
        self._api = Api()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.admin_token = self.add_token("kubernetes-admin", groups=["system:masters"])
        if seed:
            for obj in bootstrap_objects():
                self.create(obj)

    # ---- lifecycle ----

    def start(self) -> KubeApiServer:
        if self._httpd is None:
            self._api.faults.rearm()
            self._httpd = _Server(("127.0.0.1", 0), _Handler)
            self._httpd.api = self._api
            self._api.host = f"127.0.0.1:{self._httpd.server_address[1]}"
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests asleep in a delay are cut short so nothing lingers."""
        if self._httpd is not None:
            self._api.faults.wake_sleepers()
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("KubeApiServer is not started")
        return f"http://{self._api.host}"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._api.requests

    # ---- identities ----

    def add_token(self, user: str, groups: Iterable[str] = ()) -> str:
        token = f"kubeapi-{secrets.token_hex(16)}"
        self._api.tokens[token] = _user(user, groups)
        return token

    def write_kubeconfig(
        self, path: str | Path, token: str | None = None, *, namespace: str = "default"
    ) -> Path:
        """A kubeconfig for the real client: one cluster, user and current context."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubeapi", "cluster": {"server": self.url}}],
            "users": [{"name": "kubeapi-user", "user": {"token": token or self.admin_token}}],
            "contexts": [
                {
                    "name": "kubeapi",
                    "context": {
                        "cluster": "kubeapi",
                        "user": "kubeapi-user",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "kubeapi",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def can(
        self,
        user: str,
        verb: str,
        resource: str,
        *,
        api_group: str = RBAC,
        namespace: str | None = None,
        name: str | None = None,
        groups: Iterable[str] = (),
    ) -> bool:
        """The authorizer's answer for an authenticated ``user`` (implicit groups added)."""
        attrs = Attributes(
            _user(user, groups), verb, api_group, resource, namespace or "", name or ""
        )
        return self._api.authorizer.allowed(attrs)

    # ---- direct store access (no authorization) ----

    def create(self, obj: JSON) -> JSON:
        """Create one object as given (validated, defaulted, stamped); raises ``ApiError``."""
        resource = by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if resource is None:
            raise KeyError(f"unsupported kind {obj.get('kind')!r} in {obj.get('apiVersion')!r}")
        namespace = obj.get("metadata", {}).get("namespace") or "default"
        created, _ = self._api.crud.create(resource, namespace, obj, user=None)
        return created

    def get(
        self, api_version: str, resource: str, name: str, namespace: str | None = None
    ) -> JSON | None:
        res = by_api_version(api_version, resource)
        found = self._api.store.get(res, namespace or "", name)
        return {"apiVersion": res.api_version, "kind": res.kind, **found} if found else None

    def list(
        self,
        api_version: str,
        resource: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[JSON]:
        res = by_api_version(api_version, resource)
        reqs = parse_label_selector(label_selector) if label_selector else []
        return [
            {"apiVersion": res.api_version, "kind": res.kind, **o}
            for o in self._api.store.items(res, namespace)
            if matches_labels(reqs, o)
        ]

    def delete(
        self, api_version: str, resource: str, name: str, namespace: str | None = None
    ) -> bool:
        """Delete out of band, as a DELETE would; False if there was nothing to delete.

        An object with finalizers is only marked as being deleted (True all the
        same); ``remove_finalizer`` of the last one then removes it.
        """
        res = by_api_version(api_version, resource)
        try:
            self._api.crud.delete(res, namespace or "", name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def add_finalizer(
        self,
        api_version: str,
        resource: str,
        name: str,
        namespace: str | None = None,
        finalizer: str = "kubeapi.test/hold",
    ) -> JSON:
        """Add ``finalizer`` to an object (no-op if present): a DELETE will then only mark it.

        Validated as any update: a finalizer is refused (422) on an object
        already being deleted, as upstream refuses it.
        """
        return self._edit_finalizers(
            api_version, resource, name, namespace, lambda fs: [*fs, finalizer]
        )

    def remove_finalizer(
        self,
        api_version: str,
        resource: str,
        name: str,
        namespace: str | None = None,
        finalizer: str = "kubeapi.test/hold",
    ) -> JSON:
        """Do what a controller does when its cleanup is done: drop its finalizer.

        Removing the last finalizer of an object being deleted removes the
        object; the object is returned as it was last, like the real answer.
        """
        return self._edit_finalizers(
            api_version, resource, name, namespace, lambda fs: [f for f in fs if f != finalizer]
        )

    def _edit_finalizers(
        self,
        api_version: str,
        resource: str,
        name: str,
        namespace: str | None,
        edit: Callable[[builtins.list[str]], builtins.list[str]],
    ) -> JSON:
        res = by_api_version(api_version, resource)
        ns = (namespace or "") if res.namespaced else ""
        with self._api.store.lock:
            current = self._api.store.get(res, ns, name)
            if current is None:
                raise not_found(res.plural, res.group, name)
            finalizers = current["metadata"].get("finalizers", [])
            current["metadata"]["finalizers"] = list(dict.fromkeys(edit(finalizers)))
            body = {"apiVersion": res.api_version, "kind": res.kind, **current}
            updated, _, _ = self._api.crud.update(res, ns, name, body, user=None)
        return updated

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> JSON:
        existing = self.get("v1", "namespaces", name)
        if existing is not None:
            return existing
        meta: JSON = {"name": name, **({"labels": labels} if labels else {})}
        return self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    def add_cluster_role(self, name: str, rules: builtins.list[JSON]) -> JSON:
        return self._put(CLUSTER_ROLES, {"metadata": {"name": name}, "rules": rules})

    def add_role(self, namespace: str, name: str, rules: builtins.list[JSON]) -> JSON:
        return self._put(
            ROLES, {"metadata": {"name": name, "namespace": namespace}, "rules": rules}
        )

    def apply_manifest(self, path: str | Path) -> builtins.list[JSON]:
        """Create or replace every object of a (multi-document) YAML file."""
        with open(path, encoding="utf-8") as handle:
            docs = [d for d in yaml.safe_load_all(handle) if d]
        out: builtins.list[JSON] = []
        while docs:
            doc = docs.pop(0)
            if doc.get("kind") == "List":
                docs = list(doc.get("items", [])) + docs
                continue
            resource = by_kind(doc.get("apiVersion", ""), doc.get("kind", ""))
            if resource is None:
                raise KeyError(f"{path}: unsupported kind {doc.get('kind')!r}")
            out.append(self._put(resource, doc))
        return out

    def _put(self, resource: Resource, obj: JSON) -> JSON:
        meta = obj.get("metadata", {})
        namespace = (meta.get("namespace") or "default") if resource.namespaced else ""
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        if self._api.store.get(resource, namespace, meta.get("name", "")) is None:
            created, _ = self._api.crud.create(resource, namespace, body, user=None)
            return created
        if resource is NAMESPACES:
            return self.get("v1", "namespaces", meta["name"]) or {}
        current = self._api.store.get(resource, namespace, meta["name"]) or {}
        body["metadata"] = {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}
        updated, _, _ = self._api.crud.update(resource, namespace, meta["name"], body, user=None)
        return updated

    # ---- faults and history ----

    def fail_next(
        self,
        method: str | None = None,
        resource: str | None = None,
        status: int = 500,
        times: int = 1,
        *,
        name: str | None = None,
        namespace: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with a Kubernetes Status error.

        Matches on HTTP method and resource plural (None matches any), optionally
        name/namespace; only requests that pass authentication and authorization
        are hit, as a storage failure would be. 500 gives ``InternalError`` with
        ``message`` as the inner error; 404/409 give the real NotFound/Conflict
        bodies. With ``retry_after`` a Retry-After header is sent, and note that
        urllib3 under the python client then retries 413/429/503 on its own.
        """
        fault = Fault(
            method=method,
            resource=resource,
            name=name,
            namespace=namespace,
            remaining=times,
            status=status,
            message=message,
            retry_after=retry_after,
        )
        self._api.faults.add(fault)

    def delay_next(
        self,
        method: str | None = None,
        resource: str | None = None,
        seconds: float = 1.0,
        times: int = 1,
        *,
        name: str | None = None,
        namespace: str | None = None,
        after: bool = True,
    ) -> None:
        """Make the next ``times`` matching requests slow by ``seconds``.

        Matches like ``fail_next``. With ``after`` (the default) the request is
        carried out at once and the answer held back: a client whose read times
        out has in fact created, changed or deleted the object -- the "timed out
        but succeeded" case. Without it the server sleeps first and then does
        the request, so the change lands after the client has given up. Either
        way the sleep holds no lock: other requests are served meanwhile. A
        large ``times`` makes every matching request slow until
        ``clear_faults``. Beware that urllib3 under the python client re-sends
        GET/PUT/DELETE on a read timeout (three retries by default), and each
        retry is a request that may match again.
        """
        delay = Delay(
            method=method,
            resource=resource,
            name=name,
            namespace=namespace,
            remaining=times,
            seconds=seconds,
            after=after,
        )
        self._api.faults.add(delay)

    def clear_faults(self) -> None:
        """Drop every pending ``fail_next`` and ``delay_next``; requests already asleep
        finish their sleep (``stop`` cuts those short)."""
        self._api.faults.clear()

    def compact(self) -> None:
        """Simulate etcd compaction: outstanding ``continue`` tokens now get 410 Expired."""
        self._api.store.compact()
