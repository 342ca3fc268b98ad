"""What a fresh cluster holds: namespaces and the bootstrap ClusterRoles/Bindings.

The user-facing roles are representative of upstream's aggregated ones (not
complete): ``view`` reads workloads but not secrets, ``edit`` adds writes and
secrets but no RBAC, ``admin`` adds namespaced roles and bindings. The
``system:*`` roles give every authenticated user discovery and self reviews,
as ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy`` does.
"""

from __future__ import annotations

from .errors import JSON
from .resources import RBAC

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
NAMESPACES = ("default", "kube-system", "kube-public")
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JSON:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


VIEW = [
    _rule(
        [""],
        [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "pods",
            "pods/log",
            "pods/status",
            "replicationcontrollers",
            "serviceaccounts",
            "services",
            "events",
            "limitranges",
            "resourcequotas",
        ],
        READ,
    ),
    _rule([""], ["namespaces"], READ),
    _rule(["apps"], ["daemonsets", "deployments", "replicasets", "statefulsets"], READ),
    _rule(["batch"], ["cronjobs", "jobs"], READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], READ),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], READ),
    _rule(["policy"], ["poddisruptionbudgets"], READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], READ),
]

EDIT = [
    *VIEW,
    _rule([""], ["secrets", "pods/attach", "pods/exec", "pods/portforward"], READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward"], WRITE),
    _rule([""], ["pods/eviction", "serviceaccounts/token"], ["create"]),
    _rule(
        [""],
        [
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "secrets",
            "serviceaccounts",
            "services",
        ],
        WRITE,
    ),
    _rule(
        ["apps"],
        ["daemonsets", "deployments", "deployments/scale", "replicasets", "statefulsets"],
        WRITE,
    ),
    _rule(["batch"], ["cronjobs", "jobs"], WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], WRITE),
    _rule(["coordination.k8s.io"], ["leases"], READ + WRITE),
]

ADMIN = [
    *EDIT,
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule([RBAC], ["rolebindings", "roles"], READ + WRITE),
]

CLUSTER_ADMIN = [
    _rule(["*"], ["*"], ["*"]),
    {"nonResourceURLs": ["*"], "verbs": ["*"]},
]

DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

CLUSTER_ROLES: dict[str, list[JSON]] = {
    "cluster-admin": CLUSTER_ADMIN,
    "admin": ADMIN,
    "edit": EDIT,
    "view": VIEW,
    "system:basic-user": [
        _rule(
            ["authorization.k8s.io"],
            ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            ["create"],
        )
    ],
    "system:discovery": [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}],
    "system:public-info-viewer": [{"nonResourceURLs": PUBLIC_INFO_URLS, "verbs": ["get"]}],
}

# binding name -> (cluster role, groups bound)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[str]]] = {
    "cluster-admin": ("cluster-admin", ["system:masters"]),
    "system:basic-user": ("system:basic-user", ["system:authenticated"]),
    "system:discovery": ("system:discovery", ["system:authenticated"]),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        ["system:authenticated", "system:unauthenticated"],
    ),
}


def bootstrap_objects() -> list[JSON]:
    """Every seeded object as a manifest, in creation order."""
    meta = {"labels": BOOTSTRAP_LABELS, "annotations": AUTOUPDATE}
    out: list[JSON] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES
    ]
    for name, rules in CLUSTER_ROLES.items():
        out.append(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name, **meta},
                "rules": rules,
            }
        )
    for name, (role, groups) in CLUSTER_ROLE_BINDINGS.items():
        out.append(
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": name, **meta},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": g} for g in groups],
            }
        )
    return out
