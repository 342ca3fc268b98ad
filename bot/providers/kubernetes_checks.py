"""Doctor checks on the cluster: it answers, and the bot's own RBAC lets it do its job.

Called by `jitsudo-bot doctor` through bot.wiring.doctor_sections. The bot
asks the API server about itself with SelfSubjectAccessReviews (every
authenticated user may, through system:basic-user), so the answers are the
authorizer's own, whatever mix of bindings grants them. Read-only: nothing is
created except the reviews, which are not stored.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.doctor import Check, failed, passed, skipped
from bot.providers.kubernetes import RBAC_GROUP, TIMEOUT, api_client_from

APPLY = "then kubectl apply -f manifests/base/rbac/rbac.yaml"
MANAGED = ("create", "get", "list", "delete", "patch")


@dataclass(frozen=True)
class Need:
    """Verbs the bot uses on a resource, cluster-wide (a grant may land in any namespace)."""

    resource: str
    group: str
    verbs: tuple[str, ...]


NEEDS = (
    Need("rolebindings", RBAC_GROUP, MANAGED),  # grant, find, revoke, extend (patch)
    Need("clusterrolebindings", RBAC_GROUP, MANAGED),
    Need("clusterroles", RBAC_GROUP, ("get",)),  # pre-flight, and what a role allows
    Need("namespaces", "", ("get",)),  # pre-flight: a RoleBinding needs its namespace
)


class _Refused(Exception):
    """A review itself was refused: every later answer would be too."""

    def __init__(self, fix: str) -> None:
        super().__init__(fix)
        self.fix = fix


def check(kubeconfig: str, *, roles: Sequence[str]) -> Iterator[Check]:
    """The cluster, then the bot's permissions, then that each grantable role exists."""
    try:
        api = api_client_from(kubeconfig)
    # The loader raises whatever a malformed file trips it on (ConfigException,
    # TypeError, yaml errors...); each is a kubeconfig to fix, said in one line.
    except Exception as error:  # noqa: BLE001
        yield failed("cluster", _config_problem(kubeconfig, error))
        yield skipped("rbac, roles", "the cluster answers")
        return
    try:
        reached = _version(api)
        yield reached
        if not reached.ok:
            yield skipped("rbac, roles", "the cluster answers")
            return
        answered = yield from _permissions(client.AuthorizationV1Api(api), roles)
        if answered:
            yield from _roles(client.RbacAuthorizationV1Api(api), roles)
    finally:
        api.close()  # type: ignore[no-untyped-call]


def _config_problem(kubeconfig: str, error: Exception) -> str:
    if not kubeconfig:
        return (
            f"not running in a cluster and providers.kubernetes.kubeconfig is empty ({error}); "
            "set it to a kubeconfig file, or run doctor in the bot's pod (its ServiceAccount)"
        )
    return (
        f"cannot load the kubeconfig {kubeconfig} ({type(error).__name__}: "
        f"{str(error)[:200]}); set providers.kubernetes.kubeconfig to a readable kubeconfig"
    )


def _version(api: client.ApiClient) -> Check:
    host = _host(api.configuration.host)
    try:
        info = client.VersionApi(api).get_code(_request_timeout=TIMEOUT)
    except ApiException as error:
        return failed(
            "cluster",
            f"the API server at {host} answered {error.status} {error.reason}; check "
            "providers.kubernetes.kubeconfig (server and credentials)",
        )
    except (urllib3.exceptions.HTTPError, OSError) as error:
        return failed(
            "cluster",
            f"cannot reach the Kubernetes API at {host} ({_network_reason(error)}); check that "
            "the cluster is up and that providers.kubernetes.kubeconfig points at it",
        )
    return passed("cluster", f"Kubernetes {info.git_version} at {host}")


def _network_reason(error: Exception) -> str:
    """The innermost cause, e.g. "NewConnectionError: [Errno 111] Connection refused"."""
    reason = getattr(error, "reason", None) or error
    text = str(reason).rsplit(": ", 1)[-1].strip(" ()'\"")[:120]
    return f"{type(reason).__name__}: {text}" if text else type(reason).__name__


def _host(url: str) -> str:
    """Scheme, host and port only: a server URL could carry credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _permissions(
    authz: client.AuthorizationV1Api, roles: Sequence[str]
) -> Generator[Check, None, bool]:
    """The RBAC lines; False (after one line saying why) if the reviews were not answered."""
    try:
        for need in NEEDS:
            yield _need(authz, need)
        for role in roles:
            yield _bind(authz, role)
    except _Refused as refused:
        yield failed("rbac", refused.fix)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        yield failed("rbac", f"the API server stopped answering ({type(error).__name__})")
    else:
        return True
    yield skipped("roles", "the bot's access reviews are answered")
    return False


def _need(authz: client.AuthorizationV1Api, need: Need) -> Check:
    name = f"rbac {need.resource}"
    denied = [verb for verb in need.verbs if not _allowed(authz, verb, need)]
    if denied:
        return failed(
            name,
            f"the bot may not {', '.join(denied)} {need.resource} in every namespace; restore "
            f"the jitsudo-rbac-manager ClusterRole and its binding to the bot, {APPLY}",
        )
    return passed(name, " ".join(need.verbs))


def _bind(authz: client.AuthorizationV1Api, role: str) -> Check:
    bind = Need("clusterroles", RBAC_GROUP, ("bind",))
    if _allowed(authz, "bind", bind, name=role):
        return passed(f"rbac bind {role}")
    return failed(
        f"rbac bind {role}",
        f"the bot may not bind ClusterRole {role}, so Kubernetes refuses to grant it; add "
        f'"{role}" to the resourceNames of the bind rule in manifests/base/rbac/rbac.yaml, {APPLY}',
    )


def _allowed(authz: client.AuthorizationV1Api, verb: str, need: Need, *, name: str = "") -> bool:
    attributes = client.V1ResourceAttributes(
        verb=verb, group=need.group, resource=need.resource, name=name or None
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )
    try:
        answer = authz.create_self_subject_access_review(review, _request_timeout=TIMEOUT)
    except ApiException as error:
        raise _Refused(_review_problem(error)) from None
    return bool(answer.status and answer.status.allowed)


def _review_problem(error: ApiException) -> str:
    if error.status == 401:
        return (
            "the API server does not accept the bot's credentials (401 Unauthorized); renew "
            "the token in providers.kubernetes.kubeconfig"
        )
    if error.status == 403:
        return (
            "the bot may not even review its own permissions (403 on selfsubjectaccessreviews); "
            "every authenticated user may through the system:basic-user ClusterRoleBinding, "
            "so restore that binding"
        )
    return f"the API server answered {error.status} {error.reason} to a SelfSubjectAccessReview"


def _roles(rbac: client.RbacAuthorizationV1Api, roles: Sequence[str]) -> Iterator[Check]:
    for role in roles:
        try:
            rbac.read_cluster_role(role, _request_timeout=TIMEOUT)
        except ApiException as error:
            yield failed(f"role {role}", _role_problem(role, error))
            continue
        except (urllib3.exceptions.HTTPError, OSError) as error:
            yield failed(
                f"role {role}", f"the API server stopped answering ({type(error).__name__})"
            )
            continue
        yield passed(f"role {role}", "ClusterRole exists")


def _role_problem(role: str, error: ApiException) -> str:
    if error.status == 404:
        return (
            f"ClusterRole {role} does not exist in the cluster; create it or remove it "
            "from policy.roles"
        )
    if error.status == 403:
        return "the bot may not read ClusterRoles (see the rbac clusterroles line)"
    return f"the API server answered {error.status} {error.reason}"
