"""The seed's Kubernetes provider: RoleBindings and ClusterRoleBindings with a TTL annotation.

A grant binds the requester's own Kubernetes identity (kind User) to an existing
ClusterRole, in a namespace (RoleBinding) or cluster-wide (ClusterRoleBinding).
The binding is named `jitsudo-<request id in lower case>`, labelled
`<managed_label>: "true"` and annotated with `jitsudo.dev/expires-at` (RFC3339
UTC), `jitsudo.dev/request-id` and `jitsudo.dev/user`. The only module that
imports the kubernetes client; the service calls it through AccessProvider.
Every ProviderError a public method raises is counted by operation
(jitsudo_provider_errors_total, bot.metrics).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bot.domain import Grant, ManagedBinding, Target
from bot.errors import ProviderError
from bot.metrics import Metrics, provider_errors_counted
from bot.ports import RoleRule

RBAC_GROUP = "rbac.authorization.k8s.io"
EXPIRES_AT = "jitsudo.dev/expires-at"
REQUEST_ID = "jitsudo.dev/request-id"
USER = "jitsudo.dev/user"
BINDING_PREFIX = "jitsudo-"
PAGE_SIZE = 100
TIMEOUT = (3.0, 10.0)  # connect, read: a hung API server must not stall the sweeper
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ROLE = re.compile(r"^[^/%]+$")
_BINDING_NAME = re.compile(r"^jitsudo-req_([0-9abcdefghjkmnpqrstvwxyz]{26})$")


def binding_name(request_id: str) -> str:
    return f"{BINDING_PREFIX}{request_id.lower()}"


def format_expiry(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def api_client_from(kubeconfig: str) -> client.ApiClient:
    """`kubeconfig: ""` means the in-cluster service account, as the seed says."""
    if not kubeconfig:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    return client.ApiClient(configuration)


def _status_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or f"HTTP {error.status}")


def _failure(error: ApiException, doing: str) -> ProviderError:
    """A message safe to show anyone: the status, never the raw body.

    API error bodies name the bot's ServiceAccount and its groups, and quote
    whole rule sets; that detail goes to the log only.
    """
    status = error.status or 0
    retryable = status == 0 or status >= 500 or status == 429
    reason = _REASONS.get(status, f"HTTP {status}" if status else "no answer")
    hint = (
        "; the bot is missing a permission: an admin should check its RBAC (manifests/)"
        if status == 403
        else ""
    )
    return ProviderError(
        f"Kubernetes refused to {doing} ({reason}){hint}.",
        retryable=retryable,
        detail=f"HTTP {status}: {_status_message(error)}",
    )


_REASONS = {
    400: "400 Bad Request",
    401: "401 Unauthorized: the bot's credentials were rejected",
    403: "403 Forbidden",
    404: "404 Not Found",
    409: "409 Conflict",
    422: "422 Invalid",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
    504: "504 Gateway Timeout",
}


@contextmanager
def _calling(doing: str, *, absent: str | None = None) -> Iterator[None]:
    """Map every client failure to ProviderError; `absent` names what a 404 means."""
    try:
        yield
    except ApiException as error:
        if error.status == 404 and absent is not None:
            raise ProviderError(absent) from None
        raise _failure(error, doing) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ProviderError(
            f"Kubernetes API unreachable while trying to {doing} ({type(error).__name__})",
            retryable=True,
        ) from None


def _is_not_found(error: ApiException) -> bool:
    return bool(error.status == 404)


class KubernetesProvider:
    """AccessProvider over the RBAC API, with the real kubernetes client."""

    name = "kubernetes"

    def __init__(
        self, api_client: client.ApiClient, *, managed_label: str, metrics: Metrics | None = None
    ) -> None:
        self.rbac = client.RbacAuthorizationV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.managed_label = managed_label
        self.timeout = TIMEOUT
        self.metrics = metrics or Metrics()

    # --- grant --------------------------------------------------------------

    @provider_errors_counted("preflight")
    def preflight(self, grant: Grant) -> None:
        """Everything that would make the grant fail, checked before anyone approves."""
        if not grant.user.strip():
            raise ProviderError("The requester has no Kubernetes username.")
        if not _ROLE.match(grant.role):
            raise ProviderError(f"`{grant.role[:60]}` is not a valid ClusterRole name.")
        namespace = grant.target.namespace
        if namespace is not None and not _NAMESPACE.match(namespace):
            raise ProviderError(
                f"`{namespace[:70]}` is not a valid namespace name (lower-case letters, digits "
                "and '-', at most 63 characters); use \"*\" for cluster-wide."
            )
        with _calling(
            "read the role", absent=f"ClusterRole `{grant.role}` does not exist in the cluster."
        ):
            self.rbac.read_cluster_role(grant.role, _request_timeout=self.timeout)
        if namespace is not None:
            with _calling(
                "read the namespace",
                absent=f"Namespace `{namespace}` does not exist in the cluster.",
            ):
                self.core.read_namespace(namespace, _request_timeout=self.timeout)
        with _calling(f"bind {grant.role} ({grant.target.describe()})"):
            self._create(grant, dry_run="All")

    @provider_errors_counted("grant")
    def grant(self, grant: Grant) -> None:
        """Create the binding; an identical existing one is success, a different one an error."""
        namespace = grant.target.namespace
        absent = f"Namespace `{namespace}` does not exist in the cluster." if namespace else None
        with _calling("create the binding", absent=absent):
            try:
                self._create(grant)
            except ApiException as error:
                if error.status != 409:
                    raise
                self._check_same(grant)

    @provider_errors_counted("extend")
    def extend(self, request_id: str, target: Target, expires_at: datetime) -> None:
        """Move the expiry annotation with a patch: nothing the user is doing is cut off."""
        patch = {"metadata": {"annotations": {EXPIRES_AT: format_expiry(expires_at)}}}
        name = binding_name(request_id)
        with _calling("extend the binding", absent=f"binding {name} does not exist"):
            if target.namespace is None:
                self.rbac.patch_cluster_role_binding(name, patch, _request_timeout=self.timeout)
            else:
                self.rbac.patch_namespaced_role_binding(
                    name, target.namespace, patch, _request_timeout=self.timeout
                )

    # --- revoke -------------------------------------------------------------

    @provider_errors_counted("revoke")
    def revoke(self, request_id: str, target: Target) -> None:
        self._delete(binding_name(request_id), target.namespace)

    @provider_errors_counted("revoke")
    def remove(self, binding: ManagedBinding) -> None:
        self._delete(binding.name, binding.namespace)

    @provider_errors_counted("read")
    def is_active(self, grant: Grant) -> bool:
        """The binding exists with this grant's subject and role (terminating still counts:
        it keeps authorizing until it is really gone)."""
        with _calling("read the binding"):
            try:
                found = self._read(binding_name(grant.request_id), grant.target.namespace)
            except ApiException as error:
                if _is_not_found(error):
                    return False
                raise
        return _grants(found, grant)

    def list_managed(self) -> Iterator[ManagedBinding]:
        """Both kinds of binding carrying the managed label, page by page."""
        with self.metrics.provider_errors_of("list"):  # a generator: errors come while iterating
            for lister in (
                self.rbac.list_cluster_role_binding,
                self.rbac.list_role_binding_for_all_namespaces,
            ):
                yield from self._pages(lister)

    @provider_errors_counted("read")
    def describe_role(self, role: str) -> list[RoleRule]:
        with _calling(f"read ClusterRole {role}"):
            found = self.rbac.read_cluster_role(role, _request_timeout=self.timeout)
        return [
            RoleRule(
                api_groups=tuple(rule.api_groups or ()),
                resources=tuple(rule.resources or ()),
                verbs=tuple(rule.verbs or ()),
                resource_names=tuple(rule.resource_names or ()),
                non_resource_urls=tuple(rule.non_resource_urls or ()),
            )
            for rule in found.rules or []
        ]

    @provider_errors_counted("ping")
    def ping(self) -> None:
        """Raise ProviderError unless the API server answers (readiness)."""
        with _calling("list bindings"):
            self.rbac.list_cluster_role_binding(
                limit=1, label_selector=self._selector(), _request_timeout=self.timeout
            )

    # --- helpers ------------------------------------------------------------

    def _selector(self) -> str:
        return f"{self.managed_label}=true"

    def _parts(self, grant: Grant) -> dict[str, Any]:
        """metadata, roleRef and subjects, shared by both kinds of binding."""
        metadata = client.V1ObjectMeta(
            name=binding_name(grant.request_id),
            namespace=grant.target.namespace,
            labels={self.managed_label: "true"},
            annotations={
                EXPIRES_AT: format_expiry(grant.expires_at),
                REQUEST_ID: grant.request_id,
                USER: grant.user,
            },
        )
        role_ref = client.V1RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=grant.role)
        subjects = [client.RbacV1Subject(kind="User", name=grant.user, api_group=RBAC_GROUP)]
        return {"metadata": metadata, "role_ref": role_ref, "subjects": subjects}

    def _create(self, grant: Grant, dry_run: str | None = None) -> None:
        parts = self._parts(grant)
        if grant.target.namespace is None:
            body = client.V1ClusterRoleBinding(**parts)
            self.rbac.create_cluster_role_binding(
                body, dry_run=dry_run, _request_timeout=self.timeout
            )
        else:
            namespaced = client.V1RoleBinding(**parts)
            self.rbac.create_namespaced_role_binding(
                grant.target.namespace, namespaced, dry_run=dry_run, _request_timeout=self.timeout
            )

    def _read(self, name: str, namespace: str | None) -> Any:
        if namespace is None:
            return self.rbac.read_cluster_role_binding(name, _request_timeout=self.timeout)
        return self.rbac.read_namespaced_role_binding(
            name, namespace, _request_timeout=self.timeout
        )

    def _delete(self, name: str, namespace: str | None) -> None:
        """Delete, then confirm with a GET that it is gone: only NotFound means gone.

        A binding with a finalizer survives its DELETE (it gets a
        deletionTimestamp) and keeps authorizing. Ours must end, so the
        finalizers are removed; if the binding still stands, ProviderError.
        """
        with _calling(f"delete binding {name}"):
            try:
                if namespace is None:
                    self.rbac.delete_cluster_role_binding(name, _request_timeout=self.timeout)
                else:
                    self.rbac.delete_namespaced_role_binding(
                        name, namespace, _request_timeout=self.timeout
                    )
            except ApiException as error:
                if not _is_not_found(error):
                    raise
            remaining = self._still_there(name, namespace)
            if remaining is not None and remaining.metadata.finalizers:
                self._patch(name, namespace, {"metadata": {"finalizers": None}})
                remaining = self._still_there(name, namespace)
        if remaining is not None:
            finalizers = ", ".join(remaining.metadata.finalizers or []) or "none"
            raise ProviderError(
                f"binding {name} still exists after its delete (finalizers: {finalizers})",
                retryable=True,
            )

    def _still_there(self, name: str, namespace: str | None) -> Any:
        try:
            return self._read(name, namespace)
        except ApiException as error:
            if _is_not_found(error):
                return None
            raise

    def _patch(self, name: str, namespace: str | None, patch: dict[str, Any]) -> None:
        try:
            if namespace is None:
                self.rbac.patch_cluster_role_binding(name, patch, _request_timeout=self.timeout)
            else:
                self.rbac.patch_namespaced_role_binding(
                    name, namespace, patch, _request_timeout=self.timeout
                )
        except ApiException as error:
            if not _is_not_found(error):
                raise

    def _check_same(self, grant: Grant) -> None:
        """Adopt an existing binding only if it grants exactly what was asked."""
        name = binding_name(grant.request_id)
        if not _grants(self._read(name, grant.target.namespace), grant):
            raise ProviderError(
                f"A binding named {name} already exists with a different role or subject; "
                "jitsudo will not adopt it. Delete it or investigate who created it."
            )

    def _pages(self, lister: Any) -> Iterator[ManagedBinding]:
        token: str | None = None
        while True:
            with _calling("list managed bindings"):
                page = lister(
                    label_selector=self._selector(),
                    limit=PAGE_SIZE,
                    _continue=token,
                    _request_timeout=self.timeout,
                )
            for item in page.items or []:
                yield self._managed(item)
            token = page.metadata._continue if page.metadata else None
            if not token:
                return

    def _managed(self, item: Any) -> ManagedBinding:
        """What the binding claims; the core decides whether the claim holds."""
        metadata, role_ref = item.metadata, item.role_ref
        annotations = metadata.annotations or {}
        return ManagedBinding(
            name=metadata.name,
            namespace=metadata.namespace,
            expires_at=parse_expiry(annotations.get(EXPIRES_AT)),
            request_id=request_id_of(metadata.name),
            role=role_ref.name if role_ref and role_ref.kind == "ClusterRole" else None,
            subjects=tuple((s.kind, s.name) for s in item.subjects or []),
        )


def request_id_of(name: str) -> str | None:
    """The request a binding is named after: exactly `jitsudo-req_<ulid>`, else None.

    Annotations are never trusted for this: anyone who can write the binding
    can write them.
    """
    match = _BINDING_NAME.match(name)
    return "req_" + match.group(1).upper() if match else None


def _grants(binding: Any, grant: Grant) -> bool:
    """The binding binds exactly this grant's user to this grant's ClusterRole."""
    role_ref = binding.role_ref
    same_role = (role_ref.kind, role_ref.name) == ("ClusterRole", grant.role)
    subjects = [(s.kind, s.name) for s in binding.subjects or []]
    return same_role and subjects == [("User", grant.user)]
