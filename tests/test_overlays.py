"""What each kustomization promises, checked on its real `kubectl kustomize` output.

base: one locked-down replica on SQLite, in Socket Mode; ha: three on PostgreSQL
with no volume; http: the Ingress and slack.mode http; remote-cluster: the
seed's kubeconfig mount and no rights in the home cluster. Also: the shipped
placeholders make the real `jitsudo-bot` refuse to start, and the documented
remote-cluster steps give a kubeconfig the bot can grant with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bot.config import Settings, parse_settings
from bot.domain import Grant, Target, new_request_id
from bot.providers.kubernetes import KubernetesProvider, api_client_from, binding_name
from tests.harness import BOT_USER
from tests.kubeapi import KubeApiServer
from tests.kustomize import (
    BASE,
    OVERLAYS,
    TARGET_CLUSTER,
    Obj,
    config_text,
    container,
    kubectl,
    named,
    pod_spec,
    render,
    the,
)

DEPLOYMENTS = [BASE, OVERLAYS / "ha", OVERLAYS / "http", OVERLAYS / "remote-cluster"]
HA, HTTP, REMOTE = OVERLAYS / "ha", OVERLAYS / "http", OVERLAYS / "remote-cluster"
KUBECONFIG_MOUNT = "/etc/jitsudo/kubeconfig-prod.yaml"
RBAC = "rbac.authorization.k8s.io/v1"


def ids(path: Path) -> str:
    return path.name


def settings(objects: list[Obj], env: dict[str, str] | None = None) -> Settings:
    return parse_settings(yaml.safe_load(config_text(objects)), env or {})


def config_document(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(config_text(render(directory)))
    return document


def mount(bot: Obj, path: str) -> Obj:
    found = [m for m in bot["volumeMounts"] if m["mountPath"] == path]
    assert len(found) == 1, f"nothing mounted at {path}"
    return found[0]


def volume(objects: list[Obj], name: str) -> Obj:
    return next(v for v in pod_spec(objects)["volumes"] if v["name"] == name)


def env(bot: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in bot.get("env", [])}


# ---- every variant ----


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=ids)
def test_the_pod_runs_locked_down(directory: Path) -> None:
    objects = render(directory)
    pod = pod_spec(objects)["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    bot = container(objects)["securityContext"]
    assert bot["allowPrivilegeEscalation"] is False
    assert bot["readOnlyRootFilesystem"] is True
    assert bot["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in bot
    # the read-only root filesystem leaves /tmp writable through an emptyDir
    assert "emptyDir" in volume(objects, mount(container(objects), "/tmp")["name"])


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=ids)
def test_resources_are_requested_and_limited(directory: Path) -> None:
    resources = container(render(directory))["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=ids)
def test_probes_use_the_health_endpoints_on_the_configured_port(directory: Path) -> None:
    objects = render(directory)
    bot = container(objects)
    assert bot["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert settings(objects).slack.port == 3000
    assert bot["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert bot["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=ids)
def test_the_service_is_scraped_on_the_bots_port(directory: Path) -> None:
    service = the(render(directory), "Service", "jitsudo-bot")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 3000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "3000",
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize("directory", DEPLOYMENTS, ids=ids)
def test_the_config_is_the_mounted_configmap_and_valid(directory: Path) -> None:
    objects = render(directory)
    bot = container(objects)
    config_path = env(bot)["JITSUDO_CONFIG"]["value"]
    assert mount(bot, config_path)["subPath"] == "jitsudo.yaml"
    assert "configMap" in volume(objects, mount(bot, config_path)["name"])
    assert pod_spec(objects)["serviceAccountName"] == "jitsudo-bot"
    assert bot["envFrom"] == [{"secretRef": {"name": "jitsudo-slack"}}]
    settings(objects)  # raises ConfigError, naming the key, if the shipped file is wrong


@pytest.mark.parametrize(
    ("directory", "differences"),
    [
        (HA, {}),
        (HTTP, {("slack", "mode"): "http"}),
        (REMOTE, {("providers", "kubernetes", "kubeconfig"): KUBECONFIG_MOUNT}),
    ],
    ids=["ha", "http", "remote-cluster"],
)
def test_an_overlays_config_is_the_base_config_but_for_its_purpose(
    directory: Path, differences: dict[tuple[str, ...], str]
) -> None:
    """An overlay replaces the whole file (a ConfigMap cannot be patched inside), so
    this keeps the copies in step with manifests/base/jitsudo.yaml."""
    expected = config_document(BASE)
    for keys, value in differences.items():
        section = expected
        for key in keys[:-1]:
            section = section[key]
        assert section[keys[-1]] != value
        section[keys[-1]] = value
    assert config_document(directory) == expected


# ---- base: one replica on SQLite ----


def test_base_runs_one_replica_on_sqlite_on_the_volume() -> None:
    objects = render(BASE)
    spec = the(objects, "Deployment", "jitsudo-bot")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    config = settings(objects)
    assert config.slack.mode == "socket"
    assert config.kubernetes.kubeconfig == ""
    assert config.database.url == "sqlite:////var/lib/jitsudo/jitsudo.db"
    data = mount(container(objects), "/var/lib/jitsudo")
    claim = volume(objects, data["name"])["persistentVolumeClaim"]["claimName"]
    assert the(objects, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "Ingress" not in {o["kind"] for o in objects}


# ---- ha: three replicas on PostgreSQL ----


def test_ha_runs_three_replicas_that_roll_and_spread() -> None:
    objects = render(HA)
    spec = the(objects, "Deployment", "jitsudo-bot")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert the(objects, "PodDisruptionBudget", "jitsudo-bot")["spec"]["maxUnavailable"] == 1
    anti = pod_spec(objects)["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = spec["template"]["metadata"]["labels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_ha_has_no_volume_and_takes_the_database_from_a_secret() -> None:
    objects = render(HA)
    assert named(objects, "PersistentVolumeClaim") == set()
    assert not any("persistentVolumeClaim" in v for v in pod_spec(objects)["volumes"])
    bot = container(objects)
    assert "/var/lib/jitsudo" not in {m["mountPath"] for m in bot["volumeMounts"]}
    ref = env(bot)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    url = the(objects, "Secret", ref["name"])["stringData"][ref["key"]]
    assert settings(objects, {"DATABASE_URL": url}).database.url.startswith("postgresql+psycopg://")


# ---- http: the Ingress ----


def test_http_mode_publishes_only_the_slack_endpoint() -> None:
    objects = render(HTTP)
    assert settings(objects).slack.mode == "http"
    (rule,) = the(objects, "Ingress", "jitsudo-bot")["spec"]["rules"]
    assert rule["http"]["paths"] == [
        {
            "path": "/slack/events",
            "pathType": "Exact",
            "backend": {"service": {"name": "jitsudo-bot", "port": {"name": "http"}}},
        }
    ]
    assert the(objects, "Service", "jitsudo-bot")["spec"]["ports"][0]["name"] == "http"


# ---- remote-cluster: the seed's kubeconfig mount ----


def test_remote_cluster_mounts_the_seeds_kubeconfig_secret() -> None:
    objects = render(REMOTE)
    kubeconfig = mount(container(objects), KUBECONFIG_MOUNT)
    assert kubeconfig["subPath"] == "kubeconfig"
    source = volume(objects, kubeconfig["name"])["secret"]
    assert source["secretName"] == "jitsudo-kubeconfig-prod"
    assert settings(objects).kubernetes.kubeconfig == KUBECONFIG_MOUNT
    # the ConfigMap's subPath mount leaves /etc/jitsudo free for the kubeconfig beside it
    assert (
        PurePosixPath(KUBECONFIG_MOUNT).parent
        == PurePosixPath(env(container(objects))["JITSUDO_CONFIG"]["value"]).parent
    )


def test_remote_cluster_gives_the_bot_no_rights_at_home() -> None:
    objects = render(REMOTE)
    assert named(objects, "ClusterRole") == named(objects, "ClusterRoleBinding") == set()
    assert pod_spec(objects)["automountServiceAccountToken"] is False


def test_the_remote_cluster_gets_the_identity_and_its_token() -> None:
    objects = render(TARGET_CLUSTER)
    binding = the(objects, "ClusterRoleBinding", "jitsudo-rbac-manager")
    (subject,) = binding["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": "jitsudo-bot", "namespace": "jitsudo"}
    assert "jitsudo-bot" in named(objects, "ServiceAccount")
    token = the(objects, "Secret", "jitsudo-bot-token")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "jitsudo-bot"}
    assert {o["kind"] for o in objects} == {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    }


def test_the_documented_kubeconfig_lets_the_bot_grant_in_the_remote_cluster(
    tmp_path: Path,
) -> None:
    """The README's steps against the stand-in as the remote cluster: its RBAC from
    target-cluster/, a kubeconfig built with `kubectl config` for the ServiceAccount's
    token, read by the bot's own loader; the bot grants and revokes with it."""
    rbac = [o for o in render(TARGET_CLUSTER) if o["kind"] != "Secret"]
    (tmp_path / "rbac.yaml").write_text(yaml.safe_dump_all(rbac))
    kubeconfig = str(tmp_path / "kubeconfig-prod.yaml")
    with KubeApiServer() as remote:
        remote.apply_manifest(tmp_path / "rbac.yaml")
        remote.add_namespace("production")
        token = remote.add_token(BOT_USER, groups=["system:serviceaccounts"])
        for step in (
            ["set-cluster", "prod", f"--server={remote.url}"],
            ["set-credentials", "jitsudo-bot", f"--token={token}"],
            ["set-context", "prod", "--cluster=prod", "--user=jitsudo-bot"],
            ["use-context", "prod"],
        ):
            kubectl("config", *step, f"--kubeconfig={kubeconfig}")
        provider = KubernetesProvider(
            api_client_from(kubeconfig), managed_label="jitsudo.dev/managed"
        )
        grant = Grant(
            request_id=new_request_id(),
            user="alice",
            role="edit",
            target=Target(namespace="production"),
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        )
        provider.preflight(grant)
        provider.grant(grant)
        name = binding_name(grant.request_id)
        assert remote.get(RBAC, "rolebindings", name, namespace="production") is not None
        provider.revoke(grant.request_id, grant.target)
        assert remote.get(RBAC, "rolebindings", name, namespace="production") is None


# ---- the placeholders fail loudly ----


def test_the_shipped_placeholders_stop_the_real_bot_naming_what_to_set(tmp_path: Path) -> None:
    """The base as rendered: its config and the Slack Secret's placeholder values, given
    to a real `jitsudo-bot serve` the way the Deployment gives them."""
    objects = render(BASE)
    config = tmp_path / "jitsudo.yaml"
    config.write_text(config_text(objects))
    secret = the(objects, "Secret", "jitsudo-slack")["stringData"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jitsudo-bot"), "serve"],
        env={"PATH": os.environ.get("PATH", ""), "JITSUDO_CONFIG": str(config), **secret},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    report = done.stderr
    assert "jitsudo-bot: cannot start" in report
    for missing in ("SLACK_BOT_TOKEN is not set", "SLACK_APP_TOKEN", "slack.approval_channel"):
        assert missing in report, report


def test_an_operators_overlay_fills_in_config_secrets_and_image(tmp_path: Path) -> None:
    """The README's recipe: an overlay outside the repo replaces the config and the
    Secret templates from local files and points at a pushed image."""
    config = (BASE / "jitsudo.yaml").read_text()
    (tmp_path / "jitsudo.yaml").write_text(
        config.replace('approval_channel: ""', "approval_channel: C0123456789")
    )
    (tmp_path / "slack.env").write_text("SLACK_BOT_TOKEN=xoxb-1\nSLACK_APP_TOKEN=xapp-1\n")
    (tmp_path / "database.env").write_text("DATABASE_URL=postgresql://jitsudo:pw@db:5432/jitsudo\n")
    kustomization = {
        "resources": [os.path.relpath(HA, tmp_path)],
        "images": [{"name": "jitsudo-bot", "newName": "registry.example.com/jitsudo-bot"}],
        "configMapGenerator": [
            {"name": "jitsudo-config", "behavior": "replace", "files": ["jitsudo.yaml"]}
        ],
        "secretGenerator": [
            {"name": "jitsudo-slack", "behavior": "replace", "envs": ["slack.env"]},
            {"name": "jitsudo-database", "behavior": "replace", "envs": ["database.env"]},
        ],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = [d for d in yaml.safe_load_all(kubectl("kustomize", str(tmp_path))) if d]
    assert settings(objects).slack.approval_channel == "C0123456789"
    assert container(objects)["image"] == "registry.example.com/jitsudo-bot:0.1.0"
    slack = the(objects, "Secret", "jitsudo-slack")
    assert set(slack["data"]) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}
    assert "stringData" not in slack  # no empty placeholder is left beside them
    assert set(the(objects, "Secret", "jitsudo-database")["data"]) == {"DATABASE_URL"}
