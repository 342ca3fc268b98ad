"""The Kubernetes API stand-in, exercised through the real python client.

These pin the stand-in to real API-server behaviour (codes, reasons, messages,
RBAC and escalation prevention) so tests of the bot can trust it.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ReadTimeoutError

import tests.kubeapi.api as api_module
from tests.kubeapi import ApiError, KubeApiServer, RecordedRequest

RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC}/v1"
MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "base" / "rbac" / "rbac.yaml"
BOT = "system:serviceaccount:jitsudo:jitsudo-bot"
BOT_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:jitsudo"]


# ---- helpers ----


@pytest.fixture
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer() as server:
        server.add_namespace("production")
        yield server


def connect(api: KubeApiServer, path: Path, token: str | None = None) -> client.ApiClient:
    kubeconfig = api.write_kubeconfig(path, token=token or api.admin_token)
    return config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
def admin(api: KubeApiServer, tmp_path: Path) -> client.ApiClient:
    return connect(api, tmp_path / "admin")


@pytest.fixture
def rbac(admin: client.ApiClient) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(admin)


@pytest.fixture
def bot(api: KubeApiServer, tmp_path: Path) -> client.ApiClient:
    api.apply_manifest(MANIFEST)
    token = api.add_token(BOT, groups=BOT_GROUPS)
    return connect(api, tmp_path / "bot", token)


def user_client(api: KubeApiServer, tmp_path: Path, name: str, groups: list[str] | None = None):
    token = api.add_token(name, groups=groups or [])
    return connect(api, tmp_path / name.replace(":", "_"), token)


def failure(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    return info.value.status, json.loads(info.value.body)


def raw(
    api: KubeApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "admin",
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any], http.client.HTTPMessage]:
    """A request the typed client cannot make (malformed bodies, odd media types)."""
    host, port = api.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {api.admin_token if token == 'admin' else token}"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, json.loads(payload) if payload else {}, response.headers


def binding(
    name: str, role: str = "view", user: str = "alice", **meta: Any
) -> client.V1RoleBinding:
    return client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=name, **meta),
        role_ref=client.V1RoleRef(api_group=RBAC, kind="ClusterRole", name=role),
        subjects=[client.RbacV1Subject(kind="User", name=user, api_group=RBAC)],
    )


def cluster_binding(name: str, role: str = "view", user: str = "alice", **meta: Any):
    return client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=name, **meta),
        role_ref=client.V1RoleRef(api_group=RBAC, kind="ClusterRole", name=role),
        subjects=[client.RbacV1Subject(kind="User", name=user, api_group=RBAC)],
    )


def rb_dict(name: str, role: str = "view", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_V1,
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "production"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "alice"}],
        **extra,
    }


RB_PATH = f"/apis/{RBAC_V1}/namespaces/production/rolebindings"


# ---- CRUD ----


def test_rolebinding_crud_with_server_set_metadata(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    created = rbac.create_namespaced_role_binding("production", binding("grant-1"))
    meta = created.metadata
    assert (created.kind, created.api_version) == ("RoleBinding", RBAC_V1)
    assert meta.uid and meta.resource_version.isdigit() and meta.creation_timestamp
    assert api.get(RBAC_V1, "rolebindings", "grant-1", "production")["metadata"][
        "creationTimestamp"
    ].endswith("Z")

    read = rbac.read_namespaced_role_binding("grant-1", "production")
    assert read.subjects[0].name == "alice"
    assert [b.metadata.name for b in rbac.list_namespaced_role_binding("production").items] == [
        "grant-1"
    ]

    read.subjects[0].name = "bob"
    replaced = rbac.replace_namespaced_role_binding("grant-1", "production", read)
    assert replaced.subjects[0].name == "bob"
    assert int(replaced.metadata.resource_version) > int(meta.resource_version)
    assert replaced.metadata.uid == meta.uid

    status = rbac.delete_namespaced_role_binding("grant-1", "production")
    assert api.get(RBAC_V1, "rolebindings", "grant-1", "production") is None
    assert status is not None
    assert failure(rbac.read_namespaced_role_binding, "grant-1", "production")[0] == 404


def test_delete_answers_a_success_status(api: KubeApiServer) -> None:
    api.create(rb_dict("grant-1"))
    uid = api.get(RBAC_V1, "rolebindings", "grant-1", "production")["metadata"]["uid"]
    code, body, _ = raw(api, "DELETE", f"{RB_PATH}/grant-1")
    assert (code, body) == (
        200,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": "grant-1", "group": RBAC, "kind": "rolebindings", "uid": uid},
        },
    )


def test_delete_preconditions_are_checked(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    created = rbac.create_namespaced_role_binding("production", binding("b"))
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    code, body = failure(rbac.delete_namespaced_role_binding, "b", "production", body=stale)
    assert (code, body["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: not-the-uid" in body["message"]
    fresh = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid))
    rbac.delete_namespaced_role_binding("b", "production", body=fresh)
    assert api.get(RBAC_V1, "rolebindings", "b", "production") is None


def test_clusterrolebinding_crud(api: KubeApiServer, rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_cluster_role_binding(cluster_binding("grant-c", "edit"))
    assert rbac.read_cluster_role_binding("grant-c").role_ref.name == "edit"
    names = [b.metadata.name for b in rbac.list_cluster_role_binding().items]
    assert "grant-c" in names and "cluster-admin" in names
    patched = rbac.patch_cluster_role_binding("grant-c", {"metadata": {"labels": {"a": "b"}}})
    assert patched.metadata.labels == {"a": "b"}
    rbac.delete_cluster_role_binding("grant-c")
    assert api.get(RBAC_V1, "clusterrolebindings", "grant-c") is None


def test_roles_and_clusterroles_crud(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    rule = client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])
    rbac.create_cluster_role(
        client.V1ClusterRole(metadata=client.V1ObjectMeta(name="c"), rules=[rule])
    )
    rbac.create_namespaced_role(
        "production", client.V1Role(metadata=client.V1ObjectMeta(name="r"), rules=[rule])
    )
    assert rbac.read_cluster_role("c").rules[0].resources == ["pods"]
    role = rbac.read_namespaced_role("r", "production")
    role.rules[0].verbs = ["get", "list"]
    assert rbac.replace_namespaced_role("r", "production", role).rules[0].verbs == ["get", "list"]
    assert [r.metadata.name for r in rbac.list_namespaced_role("production").items] == ["r"]
    rbac.delete_namespaced_role("r", "production")
    rbac.delete_cluster_role("c")
    assert api.get(RBAC_V1, "clusterroles", "c") is None


def test_seeded_like_a_fresh_cluster(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api, admin: client.ApiClient
) -> None:
    names = [n.metadata.name for n in client.CoreV1Api(admin).list_namespace().items]
    assert names == ["default", "kube-public", "kube-system", "production"]
    view = rbac.read_cluster_role("view")
    assert not any("secrets" in r.resources for r in view.rules)
    edit = {
        (g, res, v)
        for r in rbac.read_cluster_role("edit").rules
        for g in r.api_groups
        for res in r.resources
        for v in r.verbs
    }
    assert ("", "secrets", "get") in edit and ("apps", "deployments", "create") in edit
    assert not any(g == RBAC for g, _, _ in edit)
    admin_rules = rbac.read_cluster_role("admin").rules
    assert any(RBAC in r.api_groups and "rolebindings" in r.resources for r in admin_rules)
    crb = rbac.read_cluster_role_binding("cluster-admin")
    assert crb.subjects[0].name == "system:masters"


def test_namespaces_and_serviceaccounts(
    api: KubeApiServer, admin: client.ApiClient, rbac: client.RbacAuthorizationV1Api
) -> None:
    core = client.CoreV1Api(admin)
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    assert ns.status.phase == "Active"
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "team-a"}
    assert [s.metadata.name for s in core.list_namespaced_service_account("team-a").items] == [
        "default"
    ]
    core.create_namespaced_service_account(
        "team-a", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot"))
    )
    assert core.read_namespaced_service_account("robot", "team-a").metadata.namespace == "team-a"
    rbac.create_namespaced_role_binding("team-a", binding("grant"))

    core.delete_namespace("team-a")
    assert failure(core.read_namespace, "team-a")[0] == 404
    assert api.list(RBAC_V1, "rolebindings", "team-a") == []
    assert api.list("v1", "serviceaccounts", "team-a") == []

    code, body = failure(core.delete_namespace, "kube-system")
    assert (code, body["reason"]) == (403, "Forbidden")
    assert (
        body["message"]
        == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
    )


def test_lease_lifecycle_needs_resource_versions(
    api: KubeApiServer, admin: client.ApiClient
) -> None:
    leases = client.CoordinationV1Api(admin)
    spec = client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15)
    created = leases.create_namespaced_lease(
        "production", client.V1Lease(metadata=client.V1ObjectMeta(name="leader"), spec=spec)
    )
    stored = api.get("coordination.k8s.io/v1", "leases", "leader", "production")
    assert stored["spec"]["holderIdentity"] == "pod-a"

    created.spec.holder_identity = "pod-b"
    created.spec.renew_time = "2026-01-01T00:00:00Z"
    updated = leases.replace_namespaced_lease("leader", "production", created)
    assert updated.spec.holder_identity == "pod-b"
    renew = api.get("coordination.k8s.io/v1", "leases", "leader", "production")["spec"]["renewTime"]
    assert renew == "2026-01-01T00:00:00.000000Z"  # stored as a MicroTime

    code, body = failure(leases.replace_namespaced_lease, "leader", "production", created)
    assert (code, body["reason"]) == (409, "Conflict")

    updated.metadata.resource_version = None  # leases refuse unconditional updates
    code, body = failure(leases.replace_namespaced_lease, "leader", "production", updated)
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'leases.coordination.k8s.io "leader" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )

    leases.patch_namespaced_lease("leader", "production", {"spec": {"leaseTransitions": 3}})
    leases.delete_namespaced_lease("leader", "production")
    assert api.get("coordination.k8s.io/v1", "leases", "leader", "production") is None


def test_put_creates_rbac_objects_but_not_namespaces(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api, admin: client.ApiClient
) -> None:
    created = rbac.replace_namespaced_role_binding("fresh", "production", binding("fresh"))
    assert created.metadata.uid
    code, _ = failure(
        client.CoreV1Api(admin).replace_namespace,
        "nope",
        client.V1Namespace(metadata=client.V1ObjectMeta(name="nope")),
    )
    assert code == 404


def test_list_rolebindings_in_all_namespaces(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    api.add_namespace("staging")
    rbac.create_namespaced_role_binding("staging", binding("b"))
    rbac.create_namespaced_role_binding("production", binding("a"))
    found = rbac.list_role_binding_for_all_namespaces()
    assert [(b.metadata.namespace, b.metadata.name) for b in found.items] == [
        ("production", "a"),
        ("staging", "b"),
    ]
    assert found.kind == "RoleBindingList"
    _, body, _ = raw(api, "GET", f"/apis/{RBAC_V1}/rolebindings")
    assert body["apiVersion"] == RBAC_V1 and "kind" not in body["items"][0]


# ---- statuses ----


def test_not_found_status_is_exactly_kubernetes(rbac: client.RbacAuthorizationV1Api) -> None:
    code, body = failure(rbac.read_namespaced_role_binding, "x", "production")
    assert code == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'rolebindings.rbac.authorization.k8s.io "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": RBAC, "kind": "rolebindings"},
        "code": 404,
    }


def test_already_exists(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding("production", binding("dup"))
    code, body = failure(rbac.create_namespaced_role_binding, "production", binding("dup"))
    assert (code, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'rolebindings.rbac.authorization.k8s.io "dup" already exists'


def test_stale_resource_version_conflicts(rbac: client.RbacAuthorizationV1Api) -> None:
    first = rbac.create_namespaced_role_binding("production", binding("b"))
    rbac.patch_namespaced_role_binding("b", "production", {"metadata": {"labels": {"x": "1"}}})
    code, body = failure(rbac.replace_namespaced_role_binding, "b", "production", first)
    assert (code, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on rolebindings.rbac.authorization.k8s.io "b": the object '
        "has been modified; please apply your changes to the latest version and try again"
    )
    first.metadata.resource_version = None  # RBAC objects allow unconditional updates
    assert rbac.replace_namespaced_role_binding("b", "production", first).metadata.labels is None


def test_replace_of_a_recreated_object_fails_its_uid_precondition(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    old = rbac.create_namespaced_role_binding("production", binding("b"))
    api.delete(RBAC_V1, "rolebindings", "b", "production")
    api.create(rb_dict("b"))
    old.metadata.resource_version = None
    code, body = failure(rbac.replace_namespaced_role_binding, "b", "production", old)
    assert code == 409 and "Precondition failed: UID in precondition" in body["message"]


def test_namespace_must_exist(rbac: client.RbacAuthorizationV1Api) -> None:
    code, body = failure(rbac.create_namespaced_role_binding, "nope", binding("b"))
    assert code == 404
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/namespaces", {"metadata": {"name": "bad_ns"}}, "metadata.name"),
        (
            "/api/v1/namespaces/production/serviceaccounts",
            {"metadata": {"name": "jitsudo-req_01"}},
            "metadata.name",
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/production/leases",
            {"metadata": {"name": "Leader"}},
            "metadata.name",
        ),
    ],
)
def test_dns_names_are_validated(
    api: KubeApiServer, path: str, body: dict[str, Any], field: str
) -> None:
    code, status, _ = raw(api, "POST", path, body)
    assert (code, status["reason"]) == (422, "Invalid")
    cause = status["details"]["causes"][0]
    assert cause["field"] == field and cause["reason"] == "FieldValueInvalid"
    assert "a lowercase RFC 1123" in status["message"]


def test_underscore_name_is_rejected_for_leases_with_the_real_message(api: KubeApiServer) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/production/leases"
    code, status, _ = raw(api, "POST", path, {"metadata": {"name": "jitsudo-req_01"}})
    assert code == 422
    assert status["message"] == (
        'Lease.coordination.k8s.io "jitsudo-req_01" is invalid: metadata.name: Invalid value: '
        '"jitsudo-req_01": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric '
        "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    assert status["details"]["kind"] == "Lease"


def test_rbac_names_are_path_segments_like_upstream(rbac: client.RbacAuthorizationV1Api) -> None:
    # Upstream validates RBAC object names only as path segments: underscores,
    # capitals and colons are accepted (think "system:controller:..."), "/" is not.
    assert rbac.create_namespaced_role_binding("production", binding("jitsudo-req_01AB:x"))
    code, body = failure(rbac.create_namespaced_role_binding, "production", binding("a/b"))
    assert code == 422
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: \"a/b\": may not contain '/'",
            "field": "metadata.name",
        }
    ]


def test_binding_validation(api: KubeApiServer) -> None:
    body = rb_dict("b")
    del body["roleRef"]
    body["subjects"] = [{"kind": "Robot", "name": "r"}, {"kind": "User", "name": ""}]
    code, status, _ = raw(api, "POST", RB_PATH, body)
    assert code == 422
    fields = [(c["field"], c["reason"]) for c in status["details"]["causes"]]
    assert fields == [
        ("roleRef.kind", "FieldValueNotSupported"),
        ("roleRef.name", "FieldValueRequired"),
        ("subjects[0].kind", "FieldValueNotSupported"),
        ("subjects[1].name", "FieldValueRequired"),
        ("subjects[1].name", "FieldValueInvalid"),
    ]
    assert (
        'roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole"'
        in (status["message"])
    )
    crb = rb_dict("c")
    crb.update(kind="ClusterRoleBinding", subjects=[{"kind": "ServiceAccount", "name": "sa"}])
    crb["metadata"].pop("namespace")
    code, status, _ = raw(api, "POST", f"/apis/{RBAC_V1}/clusterrolebindings", crb)
    assert code == 422 and status["details"]["causes"][0]["field"] == "subjects[0].namespace"
    # ... while a RoleBinding's service account defaults to the binding's namespace
    rb = rb_dict("d", subjects=[{"kind": "ServiceAccount", "name": "sa"}])
    assert raw(api, "POST", RB_PATH, rb)[0] == 201


def test_labels_and_annotations_are_validated(api: KubeApiServer) -> None:
    body = rb_dict("b")
    body["metadata"]["labels"] = {"-bad": "ok", "good": "bad value"}
    body["metadata"]["annotations"] = {"Example.com/x": "fine", "a/b/c": "no"}
    code, status, _ = raw(api, "POST", RB_PATH, body)
    assert code == 422
    fields = [c["field"] for c in status["details"]["causes"]]
    assert fields == ["metadata.labels", "metadata.labels", "metadata.annotations"]


def test_role_ref_is_immutable(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding("production", binding("b"))
    code, body = failure(
        rbac.patch_namespaced_role_binding, "b", "production", {"roleRef": {"name": "edit"}}
    )
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "roleRef"
    assert "cannot change roleRef" in body["message"]


def test_bad_requests(api: KubeApiServer) -> None:
    code, body, _ = raw(api, "POST", RB_PATH, b"{not json")
    assert (code, body["reason"]) == (400, "BadRequest")
    code, body, _ = raw(api, "POST", RB_PATH, rb_dict("b", subjects="alice"))
    assert code == 400 and "cannot unmarshal string" in body["message"]
    other = rb_dict("b")
    other["metadata"]["namespace"] = "default"
    code, body, _ = raw(api, "POST", RB_PATH, other)
    assert (code, body["message"]) == (
        400,
        "the namespace of the provided object does not match the namespace sent on the request",
    )
    code, body, _ = raw(api, "PUT", f"{RB_PATH}/other", rb_dict("b"))
    assert code == 400 and "does not match the name on the URL" in body["message"]
    code, body, _ = raw(api, "POST", RB_PATH, rb_dict("b", apiVersion="v1"))
    assert code == 400


def test_unknown_fields_warn_or_fail_when_strict(api: KubeApiServer) -> None:
    code, body, headers = raw(api, "POST", RB_PATH, rb_dict("b", extra=1))
    assert code == 201 and "extra" not in body
    assert headers["Warning"] == '299 - "unknown field \\"extra\\""'
    code, body, _ = raw(api, "POST", RB_PATH + "?fieldValidation=Strict", rb_dict("c", extra=1))
    assert (code, body["message"]) == (400, 'strict decoding error: unknown field "extra"')


def test_unsupported_dry_run_value_is_invalid_options(api: KubeApiServer) -> None:
    code, body, _ = raw(api, "POST", RB_PATH + "?dryRun=Yes", rb_dict("b"))
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
        '[]string{"Yes"}: supported values: "All"'
    )


def test_unauthenticated_requests_get_401(api: KubeApiServer, tmp_path: Path) -> None:
    code, body, _ = raw(api, "GET", RB_PATH, token=None)
    assert (code, body) == (
        401,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        },
    )
    stranger = client.RbacAuthorizationV1Api(connect(api, tmp_path / "x", token="forged"))
    assert failure(stranger.list_namespaced_role_binding, "production")[0] == 401
    assert api.requests[-1] == RecordedRequest("GET", RB_PATH, {}, None)


def test_unsupported_methods_and_paths(api: KubeApiServer) -> None:
    assert raw(api, "POST", f"/apis/{RBAC_V1}/rolebindings", rb_dict("b"))[0] == 405
    assert raw(api, "DELETE", RB_PATH)[1]["reason"] == "MethodNotAllowed"
    assert raw(api, "GET", "/apis/authorization.k8s.io/v1/subjectaccessreviews")[0] == 405
    assert raw(api, "OPTIONS", RB_PATH)[0] == 405
    code, body, _ = raw(api, "GET", f"/apis/{RBAC_V1}/namespaces/production/widgets")
    assert (code, body["message"]) == (404, "the server could not find the requested resource")
    code, body, _ = raw(api, "PATCH", f"{RB_PATH}/b", {}, content_type="text/plain")
    assert (code, body["reason"]) == (415, "UnsupportedMediaType")


def test_forbidden_message_is_like_the_real_one(api: KubeApiServer, tmp_path: Path) -> None:
    mallory = client.RbacAuthorizationV1Api(user_client(api, tmp_path, "mallory"))
    code, body = failure(mallory.create_namespaced_role_binding, "production", binding("b"))
    assert code == 403
    assert body["message"] == (
        'rolebindings.rbac.authorization.k8s.io is forbidden: User "mallory" cannot create '
        'resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace '
        '"production"'
    )
    assert body["details"] == {"group": RBAC, "kind": "rolebindings"}
    code, body = failure(mallory.read_cluster_role, "view")
    assert body["message"] == (
        'clusterroles.rbac.authorization.k8s.io "view" is forbidden: User "mallory" cannot get '
        'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope'
    )
    code, body = failure(client.CoreV1Api(mallory.api_client).list_namespace)
    assert body["message"].startswith('namespaces is forbidden: User "mallory" cannot list')
    # discovery is open to every authenticated user, like system:discovery
    assert client.VersionApi(mallory.api_client).get_code().git_version == "v1.33.0"


# ---- selectors and paging ----


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", ["a"]),
        ("tier==gold", ["a"]),
        ("tier!=gold", ["b", "c"]),
        ("tier in (gold,silver)", ["a", "b"]),
        ("tier notin (gold)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,app=x", ["a"]),
        ("size>3", ["b"]),
        ("size<3", ["a"]),
        ("", ["a", "b", "c"]),
    ],
)
def test_label_selectors(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api, selector: str, expected: list[str]
) -> None:
    labels = {
        "a": {"tier": "gold", "app": "x", "size": "1"},
        "b": {"tier": "silver", "size": "5"},
        "c": {"app": "x"},
    }
    for name, label in labels.items():
        rbac.create_namespaced_role_binding("production", binding(name, labels=label))
    found = rbac.list_namespaced_role_binding("production", label_selector=selector)
    assert [b.metadata.name for b in found.items] == expected
    assert api.requests[-1].query == {"labelSelector": selector}


@pytest.mark.parametrize("selector", ["tier in gold", "tier=(", "=x", "tier=a b", "a,", "-x=1"])
def test_invalid_label_selector_is_bad_request(
    rbac: client.RbacAuthorizationV1Api, selector: str
) -> None:
    code, body = failure(rbac.list_namespaced_role_binding, "production", label_selector=selector)
    assert (code, body["reason"]) == (400, "BadRequest")


def test_field_selectors(api: KubeApiServer, rbac: client.RbacAuthorizationV1Api) -> None:
    api.add_namespace("staging")
    rbac.create_namespaced_role_binding("production", binding("a"))
    rbac.create_namespaced_role_binding("staging", binding("a"))
    rbac.create_namespaced_role_binding("staging", binding("b"))
    by_name = rbac.list_role_binding_for_all_namespaces(field_selector="metadata.name=a")
    assert [b.metadata.namespace for b in by_name.items] == ["production", "staging"]
    by_ns = rbac.list_role_binding_for_all_namespaces(field_selector="metadata.namespace!=staging")
    assert [b.metadata.name for b in by_ns.items] == ["a"]
    code, body = failure(rbac.list_cluster_role_binding, field_selector="spec.x=1")
    assert code == 400 and "not a known field selector" in body["message"]


def test_limit_and_continue_page_through_everything(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    api.add_namespace("staging")
    expected = []
    for ns in ("production", "staging"):
        for i in range(12):
            rbac.create_namespaced_role_binding(ns, binding(f"b{i:02d}", labels={"n": str(i)}))
            expected.append((ns, f"b{i:02d}"))
    seen, token, remaining = [], None, []
    while True:
        page = rbac.list_role_binding_for_all_namespaces(limit=5, _continue=token)
        seen += [(b.metadata.namespace, b.metadata.name) for b in page.items]
        remaining.append(page.metadata.remaining_item_count)
        token = page.metadata._continue
        if not token:
            break
    assert seen == expected
    assert remaining == [19, 14, 9, 4, None]
    filtered = rbac.list_namespaced_role_binding("production", limit=3, label_selector="n")
    assert filtered.metadata._continue and filtered.metadata.remaining_item_count is None

    code, body = failure(rbac.list_role_binding_for_all_namespaces, limit=5, _continue="garbage!")
    assert (code, body["reason"]) == (400, "BadRequest")
    token = rbac.list_role_binding_for_all_namespaces(limit=5).metadata._continue
    api.compact()
    code, body = failure(rbac.list_role_binding_for_all_namespaces, limit=5, _continue=token)
    assert (code, body["reason"]) == (410, "Expired")


# ---- patches ----


def test_patch_content_types_the_python_client_sends(
    rbac: client.RbacAuthorizationV1Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = api_module.check_patch_type

    def spy(content_type: str) -> str:
        seen.append(content_type)
        return real(content_type)

    monkeypatch.setattr(api_module, "check_patch_type", spy)
    rbac.create_namespaced_role_binding("production", binding("b"))
    rbac.patch_namespaced_role_binding("b", "production", {"metadata": {"labels": {"a": "1"}}})
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}]
    rbac.patch_namespaced_role_binding("b", "production", ops)
    assert seen == ["application/strategic-merge-patch+json", "application/json-patch+json"]


def test_merge_patch_semantics(api: KubeApiServer, rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding(
        "production", binding("b", labels={"keep": "1", "drop": "1"}, annotations={"a": "1"})
    )
    patch = {
        "metadata": {"labels": {"drop": None, "new": "1"}},
        "subjects": [{"kind": "Group", "name": "devs", "apiGroup": RBAC}],
    }
    code, body, _ = raw(
        api, "PATCH", f"{RB_PATH}/b", patch, content_type="application/merge-patch+json"
    )
    assert code == 200
    assert body["metadata"]["labels"] == {"keep": "1", "new": "1"}
    assert body["metadata"]["annotations"] == {"a": "1"}
    assert body["subjects"] == [{"kind": "Group", "name": "devs", "apiGroup": RBAC}]


def test_strategic_merge_patch_extends_an_annotation(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding(
        "production", binding("b", annotations={"jitsudo.dev/expires-at": "2026-01-01T00:00:00Z"})
    )
    patch = {"metadata": {"annotations": {"jitsudo.dev/expires-at": "2026-01-01T01:00:00Z"}}}
    out = rbac.patch_namespaced_role_binding("b", "production", patch)
    assert out.metadata.annotations == {"jitsudo.dev/expires-at": "2026-01-01T01:00:00Z"}


def test_json_patch_operations(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding("production", binding("b", labels={"a": "1"}))
    out = rbac.patch_namespaced_role_binding(
        "b",
        "production",
        [
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
            {"op": "add", "path": "/subjects/-", "value": {"kind": "User", "name": "bob"}},
            {"op": "copy", "from": "/metadata/labels/a", "path": "/metadata/labels/b"},
            {"op": "remove", "path": "/subjects/0"},
        ],
    )
    assert out.metadata.labels == {"a": "2", "b": "2"}
    assert [(s.name, s.api_group) for s in out.subjects] == [("bob", RBAC)]  # defaulted
    failed = [{"op": "test", "path": "/metadata/labels/a", "value": "9"}]
    assert failure(rbac.patch_namespaced_role_binding, "b", "production", failed)[0] == 422
    missing = [{"op": "remove", "path": "/metadata/labels/zzz"}]
    assert failure(rbac.patch_namespaced_role_binding, "b", "production", missing)[0] == 422


def test_patch_with_a_stale_resource_version_conflicts(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding("production", binding("b"))
    patch = {"metadata": {"resourceVersion": "1", "labels": {"a": "1"}}}
    code, body = failure(rbac.patch_namespaced_role_binding, "b", "production", patch)
    assert (code, body["reason"]) == (409, "Conflict")
    assert failure(rbac.patch_namespaced_role_binding, "zzz", "production", {})[0] == 404


# ---- dry run ----


def test_dry_run_all_persists_nothing(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    before = len(api.list(RBAC_V1, "rolebindings"))
    out = rbac.create_namespaced_role_binding("production", binding("dry"), dry_run="All")
    assert out.metadata.uid and out.metadata.resource_version is None
    assert len(api.list(RBAC_V1, "rolebindings")) == before

    real = rbac.create_namespaced_role_binding("production", binding("b"))
    version = real.metadata.resource_version
    patch = {"metadata": {"labels": {"a": "1"}}}
    assert rbac.patch_namespaced_role_binding(
        "b", "production", patch, dry_run="All"
    ).metadata.labels
    real.subjects[0].name = "zed"
    assert rbac.replace_namespaced_role_binding("b", "production", real, dry_run="All")
    rbac.delete_namespaced_role_binding("b", "production", dry_run="All")
    stored = api.get(RBAC_V1, "rolebindings", "b", "production")
    assert stored["metadata"]["resourceVersion"] == version
    assert stored["subjects"][0]["name"] == "alice" and "labels" not in stored["metadata"]
    # dry runs are validated and authorized in full
    assert (
        failure(rbac.create_namespaced_role_binding, "production", binding("a/b"), dry_run="All")[0]
        == 422
    )


# ---- authorization: the bot with manifests/base/rbac/rbac.yaml ----


@pytest.mark.parametrize("role", ["view", "edit", "admin", "cluster-admin"])
def test_bot_manages_bindings_to_its_roles(
    api: KubeApiServer, bot: client.ApiClient, role: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(bot)
    rbac.create_namespaced_role_binding("production", binding(f"ns-{role}", role))
    rbac.create_cluster_role_binding(cluster_binding(f"cl-{role}", role), dry_run="All")
    rbac.create_cluster_role_binding(cluster_binding(f"cl-{role}", role))
    assert rbac.read_namespaced_role_binding(f"ns-{role}", "production").role_ref.name == role
    assert rbac.list_role_binding_for_all_namespaces(label_selector="x!=y").items
    assert rbac.list_cluster_role_binding().items
    patch = {"metadata": {"annotations": {"jitsudo.dev/expires-at": "2026-01-01T00:00:00Z"}}}
    rbac.patch_namespaced_role_binding(f"ns-{role}", "production", patch)
    rbac.patch_cluster_role_binding(f"cl-{role}", patch)
    rbac.delete_namespaced_role_binding(f"ns-{role}", "production")
    rbac.delete_cluster_role_binding(f"cl-{role}")
    assert api.get(RBAC_V1, "clusterrolebindings", f"cl-{role}") is None
    assert rbac.read_cluster_role(role).metadata.name == role
    assert client.CoreV1Api(bot).read_namespace("production").metadata.name == "production"


def test_bot_cannot_bind_a_role_it_may_not_bind(api: KubeApiServer, bot: client.ApiClient) -> None:
    api.add_cluster_role(
        "custom", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    )
    rbac = client.RbacAuthorizationV1Api(bot)
    code, body = failure(rbac.create_cluster_role_binding, cluster_binding("x", "custom"))
    assert (code, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'clusterrolebindings.rbac.authorization.k8s.io "x" is forbidden: user '
        '"system:serviceaccount:jitsudo:jitsudo-bot" (groups=["system:serviceaccounts" '
        '"system:serviceaccounts:jitsudo" "system:authenticated"]) is attempting to grant RBAC '
        'permissions not currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}'
    )
    code, body = failure(
        rbac.create_namespaced_role_binding, "production", binding("x", "custom"), dry_run="All"
    )
    assert code == 403 and "not currently held" in body["message"]
    assert api.list(RBAC_V1, "clusterrolebindings", label_selector="x") == []


def test_binding_a_missing_role_without_bind_is_404_for_the_role(bot: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(bot)
    code, body = failure(rbac.create_namespaced_role_binding, "production", binding("x", "ghost"))
    assert (code, body["message"]) == (
        404,
        'clusterroles.rbac.authorization.k8s.io "ghost" not found',
    )


def test_bot_patching_someone_elses_binding_is_an_escalation(
    api: KubeApiServer, bot: client.ApiClient
) -> None:
    api.add_cluster_role(
        "custom", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    )
    api.create(rb_dict("foreign", "custom"))
    rbac = client.RbacAuthorizationV1Api(bot)
    patch = {"metadata": {"annotations": {"a": "b"}}}
    assert failure(rbac.patch_namespaced_role_binding, "foreign", "production", patch)[0] == 403
    # ... but owner references and finalizers alone may change (IsOnlyMutatingGCFields)
    gc = {"metadata": {"finalizers": ["example.com/keep"]}}
    assert rbac.patch_namespaced_role_binding("foreign", "production", gc).metadata.finalizers
    rbac.delete_namespaced_role_binding("foreign", "production")


def test_bot_is_refused_everything_else(api: KubeApiServer, bot: client.ApiClient) -> None:
    rbac, core = client.RbacAuthorizationV1Api(bot), client.CoreV1Api(bot)
    assert failure(core.delete_namespace, "production")[0] == 403
    assert failure(rbac.delete_cluster_role, "view")[0] == 403
    assert failure(rbac.list_cluster_role)[0] == 403
    rule = client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get"])
    role = client.V1ClusterRole(metadata=client.V1ObjectMeta(name="mine"), rules=[rule])
    assert failure(rbac.create_cluster_role, role)[0] == 403
    rb = rbac.create_namespaced_role_binding("production", binding("b"))
    assert failure(rbac.replace_namespaced_role_binding, "b", "production", rb)[0] == 403
    assert failure(core.read_namespaced_secret, "x", "production")[0] == 403


def test_leases_follow_rbac(api: KubeApiServer, bot: client.ApiClient) -> None:
    """The shipped manifest grants no leases; a Role granting some is honoured per namespace."""
    leases = client.CoordinationV1Api(bot)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="jitsudo-leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    assert failure(leases.create_namespaced_lease, "jitsudo", lease)[0] == 403
    api.add_role(
        "jitsudo",
        "leases",
        [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "verbs": ["get", "create", "update"],
            }
        ],
    )
    api.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "leases", "namespace": "jitsudo"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "leases"},
            "subjects": [{"kind": "ServiceAccount", "name": "jitsudo-bot", "namespace": "jitsudo"}],
        }
    )
    created = leases.create_namespaced_lease("jitsudo", lease)
    created.spec.holder_identity = "b"
    assert leases.replace_namespaced_lease("jitsudo-leader", "jitsudo", created)
    assert leases.read_namespaced_lease("jitsudo-leader", "jitsudo").spec.holder_identity == "b"
    assert failure(leases.delete_namespaced_lease, "jitsudo-leader", "jitsudo")[0] == 403
    assert failure(leases.create_namespaced_lease, "production", lease)[0] == 403


# ---- authorization: escalation prevention in general ----


def test_holding_every_permission_lets_you_bind_without_bind(
    api: KubeApiServer, tmp_path: Path
) -> None:
    api.add_cluster_role(
        "custom", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    )
    api.add_cluster_role(
        "binder",
        rules=[
            {
                "apiGroups": [RBAC],
                "resources": ["rolebindings", "clusterrolebindings"],
                "verbs": ["create"],
            }
        ],
    )
    api.create(
        rb_dict(
            "carol-binder", "binder", subjects=[{"kind": "User", "name": "carol", "apiGroup": RBAC}]
        )
    )
    rbac = client.RbacAuthorizationV1Api(user_client(api, tmp_path, "carol"))
    assert (
        failure(rbac.create_namespaced_role_binding, "production", binding("x", "custom"))[0] == 403
    )

    api.add_role(
        "production",
        "pod-reader",
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    )
    api.create(
        {
            **rb_dict("carol-pods"),
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "User", "name": "carol"}],
        }
    )
    assert rbac.create_namespaced_role_binding("production", binding("x", "custom"))
    # held only in production: not cluster-wide, nor in another namespace
    assert failure(rbac.create_namespaced_role_binding, "default", binding("x", "custom"))[0] == 403


def test_bind_granted_in_one_namespace_only(api: KubeApiServer, tmp_path: Path) -> None:
    api.add_role(
        "production",
        "binder",
        [
            {"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["create"]},
            {
                "apiGroups": [RBAC],
                "resources": ["clusterroles"],
                "verbs": ["bind"],
                "resourceNames": ["edit"],
            },
        ],
    )
    api.create(
        {
            **rb_dict("dave"),
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "binder"},
            "subjects": [{"kind": "User", "name": "dave"}],
        }
    )
    rbac = client.RbacAuthorizationV1Api(user_client(api, tmp_path, "dave"))
    assert rbac.create_namespaced_role_binding("production", binding("e", "edit"))
    assert (
        failure(rbac.create_namespaced_role_binding, "production", binding("v", "view"))[0] == 403
    )
    assert failure(rbac.create_namespaced_role_binding, "default", binding("e", "edit"))[0] == 403


def test_role_escalation(api: KubeApiServer, tmp_path: Path) -> None:
    api.add_cluster_role(
        "role-maker",
        rules=[
            {"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        ],
    )
    api.create(
        {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "erin"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "role-maker"},
            "subjects": [{"kind": "User", "name": "erin"}],
        }
    )
    rbac = client.RbacAuthorizationV1Api(user_client(api, tmp_path, "erin"))

    def role(name: str, resource: str) -> client.V1ClusterRole:
        rule = client.V1PolicyRule(api_groups=[""], resources=[resource], verbs=["get"])
        return client.V1ClusterRole(metadata=client.V1ObjectMeta(name=name), rules=[rule])

    assert rbac.create_cluster_role(role("cm", "configmaps"))
    code, body = failure(rbac.create_cluster_role, role("sec", "secrets"))
    assert code == 403 and 'Resources:["secrets"]' in body["message"]
    api.add_cluster_role(
        "escalator",
        rules=[{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["escalate"]}],
    )
    api.create(
        {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "erin2"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "escalator"},
            "subjects": [{"kind": "User", "name": "erin"}],
        }
    )
    assert rbac.create_cluster_role(role("sec", "secrets"))


def test_resource_names_restrict_named_requests_only(api: KubeApiServer) -> None:
    api.add_cluster_role(
        "one",
        rules=[
            {
                "apiGroups": [""],
                "resources": ["namespaces"],
                "verbs": ["get", "list", "delete"],
                "resourceNames": ["production"],
            }
        ],
    )
    api.create(
        {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "f"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "one"},
            "subjects": [{"kind": "User", "name": "frank"}],
        }
    )
    ns = {"api_group": "", "groups": ()}
    assert api.can("frank", "get", "namespaces", name="production", **ns)
    assert not api.can("frank", "get", "namespaces", name="default", **ns)
    assert not api.can("frank", "list", "namespaces", **ns)  # no name: the rule cannot match
    assert api.can("frank", "list", "namespaces", name="production", **ns)  # fieldSelector-pinned
    token = api.add_token("frank")
    assert raw(api, "GET", "/api/v1/namespaces", token=token)[0] == 403
    assert (
        raw(api, "GET", "/api/v1/namespaces?fieldSelector=metadata.name%3Dproduction", token=token)[
            0
        ]
        == 200
    )


# ---- access reviews ----


def test_self_subject_access_review(bot: client.ApiClient) -> None:
    authz = client.AuthorizationV1Api(bot)

    def ask(verb: str, resource: str, group: str = RBAC, **extra: str) -> Any:
        attrs = client.V1ResourceAttributes(verb=verb, resource=resource, group=group, **extra)
        spec = client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
        return authz.create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=spec)
        ).status

    yes = ask("create", "rolebindings", namespace="production")
    assert yes.allowed and yes.reason == (
        'RBAC: allowed by ClusterRoleBinding "jitsudo-rbac-manager" of ClusterRole '
        '"jitsudo-rbac-manager" to ServiceAccount "jitsudo-bot/jitsudo"'
    )
    assert ask("bind", "clusterroles", name="edit").allowed
    assert not ask("bind", "clusterroles", name="custom").allowed
    assert not ask("get", "secrets", group="", namespace="production").allowed


def test_any_authenticated_user_may_review_itself_and_read_the_version(
    api: KubeApiServer, tmp_path: Path
) -> None:
    """system:basic-user and system:public-info-viewer, bound to system:authenticated as
    upstream's bootstrap policy does: a user with no bindings of its own still asks."""
    nobody = user_client(api, tmp_path, "nobody")
    attrs = client.V1ResourceAttributes(
        verb="bind", group=RBAC, resource="clusterroles", name="edit"
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attrs)
    )
    answer = client.AuthorizationV1Api(nobody).create_self_subject_access_review(review)
    assert answer.status.allowed is False
    assert client.VersionApi(nobody).get_code().git_version == "v1.33.0"
    basic = client.RbacAuthorizationV1Api(nobody)
    assert failure(basic.read_cluster_role_binding, "system:basic-user")[0] == 403
    api.delete(f"{RBAC}/v1", "clusterrolebindings", "system:basic-user")
    code, _ = failure(client.AuthorizationV1Api(nobody).create_self_subject_access_review, review)
    assert code == 403


def test_subject_access_review_needs_permission(
    api: KubeApiServer, admin: client.ApiClient, bot: client.ApiClient
) -> None:
    def review(user: str, groups: list[str]) -> client.V1SubjectAccessReview:
        attrs = client.V1ResourceAttributes(
            verb="delete", resource="clusterrolebindings", group=RBAC
        )
        spec = client.V1SubjectAccessReviewSpec(user=user, groups=groups, resource_attributes=attrs)
        return client.V1SubjectAccessReview(spec=spec)

    authz = client.AuthorizationV1Api(admin)
    assert authz.create_subject_access_review(review("x", ["devs"])).status.allowed is False
    assert authz.create_subject_access_review(review(BOT, [])).status.allowed is True
    assert authz.create_subject_access_review(review("x", ["system:masters"])).status.allowed
    code, _ = failure(client.AuthorizationV1Api(bot).create_subject_access_review, review(BOT, []))
    assert code == 403
    code, body, _ = raw(
        api,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {"spec": {"resourceAttributes": {"verb": "get"}}},
    )
    assert (code, body["details"]["causes"][0]["field"]) == (422, "spec.user")


# ---- fault injection, recording, discovery, direct API ----


def test_fail_next_injects_real_status_errors(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    rbac.create_namespaced_role_binding("production", binding("b"))
    api.fail_next(method="DELETE", resource="rolebindings", status=500, times=2)
    for _ in range(2):
        code, body = failure(rbac.delete_namespaced_role_binding, "b", "production")
        assert (code, body["reason"], body["code"]) == (500, "InternalError", 500)
    rbac.delete_namespaced_role_binding("b", "production")

    api.fail_next(method="GET", resource="rolebindings", status=429)
    code, body = failure(rbac.read_namespaced_role_binding, "b", "production")
    assert (code, body["reason"]) == (429, "TooManyRequests")
    # With Retry-After, urllib3 under the client retries idempotent requests by itself.
    api.fail_next(method="GET", resource="rolebindings", status=503, retry_after=0)
    api.requests.clear()
    assert failure(rbac.read_namespaced_role_binding, "b", "production")[0] == 404
    assert len(api.requests) == 2
    api.fail_next(resource="clusterrolebindings", status=409)
    code, body = failure(rbac.read_cluster_role_binding, "cluster-admin")
    assert (code, body["reason"]) == (409, "Conflict")
    assert rbac.read_cluster_role_binding("cluster-admin")


def test_requests_are_recorded(api: KubeApiServer, rbac: client.RbacAuthorizationV1Api) -> None:
    api.requests.clear()
    rbac.list_namespaced_role_binding("production", limit=2, label_selector="a=b")
    assert api.requests == [
        RecordedRequest("GET", RB_PATH, {"labelSelector": "a=b", "limit": "2"}, "kubernetes-admin")
    ]
    method, path, query, user = api.requests[0]
    assert (method, path, query["limit"], user) == ("GET", RB_PATH, "2", "kubernetes-admin")


def test_discovery(api: KubeApiServer, admin: client.ApiClient) -> None:
    assert client.CoreApi(admin).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(admin).get_api_versions().groups}
    assert {RBAC, "coordination.k8s.io", "authorization.k8s.io"} <= groups
    resources = client.RbacAuthorizationV1Api(admin).get_api_resources().resources
    assert {r.name for r in resources} == {
        "clusterroles",
        "clusterrolebindings",
        "roles",
        "rolebindings",
    }
    assert client.VersionApi(admin).get_code().major == "1"


def test_direct_api_and_authorizer(api: KubeApiServer) -> None:
    created = api.create(rb_dict("orphan"))
    assert created["metadata"]["resourceVersion"] and created["kind"] == "RoleBinding"
    assert api.get(RBAC_V1, "rolebindings", "orphan", namespace="production")["metadata"]["uid"]
    assert [o["metadata"]["name"] for o in api.list(RBAC_V1, "rolebindings")] == ["orphan"]
    with pytest.raises(ApiError) as info:
        api.create(rb_dict("orphan"))
    assert info.value.code == 409
    assert api.delete(RBAC_V1, "rolebindings", "orphan", namespace="production") is True
    assert api.delete(RBAC_V1, "rolebindings", "orphan", namespace="production") is False

    assert api.can("anyone", "get", "namespaces", api_group="", groups=["system:masters"])
    assert not api.can(BOT, "create", "rolebindings", namespace="production")
    api.apply_manifest(MANIFEST)
    api.apply_manifest(MANIFEST)  # idempotent
    assert api.can(BOT, "create", "rolebindings", namespace="production")


# ---- finalizers and deletion ----


def _terminating(api: KubeApiServer, name: str, *finalizers: str) -> dict[str, Any]:
    """A RoleBinding in production, held by ``finalizers`` and then deleted."""
    api.create(rb_dict(name))
    for finalizer in finalizers:
        api.add_finalizer(RBAC_V1, "rolebindings", name, "production", finalizer)
    code, body, _ = raw(api, "DELETE", f"{RB_PATH}/{name}")
    assert code == 200
    return body


def test_delete_of_an_object_with_finalizers_marks_it_and_answers_the_object(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    api.create(rb_dict("held"))
    before = api.add_finalizer(RBAC_V1, "rolebindings", "held", "production", "example.com/a")
    assert before["metadata"]["finalizers"] == ["example.com/a"]
    dry = raw(api, "DELETE", f"{RB_PATH}/held?dryRun=All")[1]
    assert dry["metadata"]["deletionTimestamp"]
    assert api.get(RBAC_V1, "rolebindings", "held", "production") == before

    start = datetime.now(UTC).replace(microsecond=0)
    code, body, _ = raw(api, "DELETE", f"{RB_PATH}/held")
    assert code == 200 and (body["kind"], body["apiVersion"]) == ("RoleBinding", RBAC_V1)
    meta = body["metadata"]
    stamp = meta["deletionTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    assert start <= datetime.fromisoformat(stamp) <= datetime.now(UTC)
    assert meta["deletionGracePeriodSeconds"] == 0
    assert meta["finalizers"] == ["example.com/a"]
    assert int(meta["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert body == api.get(RBAC_V1, "rolebindings", "held", "production")

    # still there for GET and LIST; a second DELETE changes nothing and answers the same
    read = rbac.read_namespaced_role_binding("held", "production")
    assert read.metadata.deletion_timestamp and read.metadata.uid == meta["uid"]
    listed = rbac.list_namespaced_role_binding("production").items
    assert [b.metadata.name for b in listed] == ["held"]
    assert raw(api, "DELETE", f"{RB_PATH}/held")[:2] == (200, body)
    # The python client hands a DELETE's answer back as a plain dict: its kind tells a
    # caller "gone" (Status) from "held by a finalizer" (the object).
    assert rbac.delete_namespaced_role_binding("held", "production")["kind"] == "RoleBinding"
    api.create(rb_dict("free"))
    assert rbac.delete_namespaced_role_binding("free", "production")["kind"] == "Status"


def test_removing_the_last_finalizer_removes_the_terminating_object(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    _terminating(api, "b", "example.com/a", "example.com/b")
    ops = [{"op": "remove", "path": "/metadata/finalizers/0"}]
    one_left = rbac.patch_namespaced_role_binding("b", "production", ops)
    assert one_left.metadata.finalizers == ["example.com/b"]
    assert api.get(RBAC_V1, "rolebindings", "b", "production") is not None

    last = rbac.read_namespaced_role_binding("b", "production")
    last.metadata.finalizers = []
    answer = rbac.replace_namespaced_role_binding("b", "production", last)
    # the answer is the object as the update left it, at the revision it was last stored
    assert answer.metadata.finalizers is None and answer.metadata.deletion_timestamp
    assert answer.metadata.resource_version == one_left.metadata.resource_version
    assert api.get(RBAC_V1, "rolebindings", "b", "production") is None
    assert failure(rbac.read_namespaced_role_binding, "b", "production")[0] == 404

    # and by a strategic merge patch of null, as `kubectl patch` does it
    _terminating(api, "c", "example.com/a")
    patch = {"metadata": {"finalizers": None}}
    assert rbac.patch_namespaced_role_binding("c", "production", patch).metadata.name == "c"
    assert api.get(RBAC_V1, "rolebindings", "c", "production") is None
    # emptying the finalizers of an object not being deleted is an ordinary update
    api.create(rb_dict("d"))
    api.add_finalizer(RBAC_V1, "rolebindings", "d", "production", "example.com/a")
    assert rbac.patch_namespaced_role_binding("d", "production", patch)
    assert api.get(RBAC_V1, "rolebindings", "d", "production") is not None


def test_a_terminating_object_takes_no_new_finalizers_but_other_updates(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    held = _terminating(api, "b", "example.com/a")
    ops = [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/new"}]
    code, body = failure(rbac.patch_namespaced_role_binding, "b", "production", ops)
    assert (code, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'RoleBinding.rbac.authorization.k8s.io "b" is invalid: metadata.finalizers: Forbidden: '
        "no new finalizers can be added if the object is being deleted, found new finalizers "
        '[]string{"example.com/new"}'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: no new finalizers can be added if the object is being "
            'deleted, found new finalizers []string{"example.com/new"}',
            "field": "metadata.finalizers",
        }
    ]
    with pytest.raises(ApiError) as info:
        api.add_finalizer(RBAC_V1, "rolebindings", "b", "production", "example.com/other")
    assert info.value.code == 422

    labelled = rbac.patch_namespaced_role_binding(
        "b", "production", {"metadata": {"labels": {"x": "1"}}}
    )
    assert labelled.metadata.labels == {"x": "1"}
    # an update can neither clear nor move the deletion timestamp
    body = {**rb_dict("b"), "metadata": {"name": "b", "finalizers": ["example.com/a"]}}
    code, replaced, _ = raw(api, "PUT", f"{RB_PATH}/b", body)
    assert code == 200
    assert replaced["metadata"]["deletionTimestamp"] == held["metadata"]["deletionTimestamp"]
    assert replaced["metadata"]["deletionGracePeriodSeconds"] == 0


def test_deletion_timestamp_is_the_servers_to_set(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    stamp = "2026-01-01T00:00:00Z"
    body = rb_dict("b")
    body["metadata"].update(deletionTimestamp=stamp, deletionGracePeriodSeconds=5)
    created = raw(api, "POST", RB_PATH, body)[1]
    assert "deletionTimestamp" not in created["metadata"]
    assert "deletionGracePeriodSeconds" not in created["metadata"]
    patch = {"metadata": {"deletionTimestamp": stamp}}
    code, body = failure(rbac.patch_namespaced_role_binding, "b", "production", patch)
    assert code == 422
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.deletionTimestamp"]
    assert "Invalid value: 2026-01-01 00:00:00 +0000 UTC: field is immutable" in body["message"]
    bad = [{"op": "add", "path": "/metadata/finalizers", "value": ["a/b/c"]}]
    code, body = failure(rbac.patch_namespaced_role_binding, "b", "production", bad)
    assert code == 422 and body["details"]["causes"][0]["field"] == "metadata.finalizers"


def test_a_terminating_binding_still_grants_until_it_is_gone(
    api: KubeApiServer, tmp_path: Path
) -> None:
    api.create(rb_dict("alice-view"))
    api.create(
        {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "alice-cluster"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "alice"}],
        }
    )
    api.add_finalizer(RBAC_V1, "rolebindings", "alice-view", "production")
    api.add_finalizer(RBAC_V1, "clusterrolebindings", "alice-cluster")
    core = client.CoreV1Api(user_client(api, tmp_path, "alice"))
    assert api.delete(RBAC_V1, "rolebindings", "alice-view", "production") is True
    assert api.delete(RBAC_V1, "clusterrolebindings", "alice-cluster") is True
    assert api.get(RBAC_V1, "clusterrolebindings", "alice-cluster")["metadata"]["deletionTimestamp"]

    assert core.list_namespaced_service_account("production").items  # the RoleBinding
    assert core.list_namespaced_service_account("default").items  # the ClusterRoleBinding
    api.remove_finalizer(RBAC_V1, "clusterrolebindings", "alice-cluster")
    assert api.get(RBAC_V1, "clusterrolebindings", "alice-cluster") is None
    assert failure(core.list_namespaced_service_account, "default")[0] == 403
    assert core.list_namespaced_service_account("production").items
    gone = api.remove_finalizer(RBAC_V1, "rolebindings", "alice-view", "production")
    assert gone["metadata"]["name"] == "alice-view" and "finalizers" not in gone["metadata"]
    assert failure(core.list_namespaced_service_account, "production")[0] == 403
    assert api.delete(RBAC_V1, "rolebindings", "alice-view", "production") is False


# ---- slow answers ----


def no_retries(api: KubeApiServer, path: Path) -> client.RbacAuthorizationV1Api:
    """A client whose urllib3 does not re-send after a read timeout."""
    admin = connect(api, path)
    admin.configuration.retries = False
    admin.rest_client = client.rest.RESTClientObject(admin.configuration)
    return client.RbacAuthorizationV1Api(admin)


def test_a_delayed_create_times_out_yet_happened_and_blocks_nobody(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    api.delay_next("POST", "rolebindings", seconds=30)
    with pytest.raises(ReadTimeoutError):
        rbac.create_namespaced_role_binding(
            "production", binding("slow"), _request_timeout=(3, 0.5)
        )
    # the server is still asleep on that request, and answers everything else meanwhile
    read = rbac.read_namespaced_role_binding("slow", "production", _request_timeout=(3, 5))
    assert read.subjects[0].name == "alice"
    assert rbac.create_namespaced_role_binding(
        "production", binding("fast"), _request_timeout=(3, 5)
    )


def test_a_delay_before_the_work_lands_the_write_after_the_timeout(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    api.delay_next("POST", "rolebindings", seconds=1.5, after=False)
    with pytest.raises(ReadTimeoutError):
        rbac.create_namespaced_role_binding(
            "production", binding("late"), _request_timeout=(3, 0.5)
        )
    assert api.get(RBAC_V1, "rolebindings", "late", "production") is None
    deadline = time.monotonic() + 10
    while api.get(RBAC_V1, "rolebindings", "late", "production") is None:
        assert time.monotonic() < deadline, "the delayed create never landed"
        time.sleep(0.05)


def test_a_standing_delay_slows_only_matching_requests_until_cleared(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api, tmp_path: Path
) -> None:
    api.add_namespace("staging")
    for ns in ("production", "staging"):
        rbac.create_namespaced_role_binding(ns, binding("b"))
    strict = no_retries(api, tmp_path / "strict")
    api.delay_next("GET", "rolebindings", seconds=30, times=1000, namespace="production")
    for _ in range(3):
        with pytest.raises(ReadTimeoutError):
            strict.read_namespaced_role_binding("b", "production", _request_timeout=(3, 0.3))
    quick = {"_request_timeout": (3, 5)}
    assert strict.read_namespaced_role_binding("b", "staging", **quick)
    assert strict.patch_namespaced_role_binding("b", "production", {}, **quick)
    assert strict.read_cluster_role_binding("cluster-admin", **quick)
    api.clear_faults()
    assert strict.read_namespaced_role_binding("b", "production", **quick)


def test_delay_and_fault_by_name_and_a_timed_out_delete_is_resent(
    api: KubeApiServer, rbac: client.RbacAuthorizationV1Api
) -> None:
    """urllib3 re-sends a DELETE (idempotent to it) after a read timeout, so a caller
    whose first DELETE worked sees the 404 of the retry."""
    for name in ("a", "b"):
        rbac.create_namespaced_role_binding("production", binding(name))
    api.delay_next("DELETE", "rolebindings", seconds=30, name="b")
    api.requests.clear()
    rbac.delete_namespaced_role_binding("a", "production", _request_timeout=(3, 5))
    code, body = failure(
        rbac.delete_namespaced_role_binding, "b", "production", _request_timeout=(3, 0.5)
    )
    assert (code, body["reason"]) == (404, "NotFound")
    assert [r.method for r in api.requests] == ["DELETE", "DELETE", "DELETE"]
    api.fail_next("GET", "rolebindings", status=503, times=5)
    api.clear_faults()
    assert failure(rbac.read_namespaced_role_binding, "b", "production")[0] == 404
