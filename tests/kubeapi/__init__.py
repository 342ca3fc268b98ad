"""A faithful stand-in for the Kubernetes API server, for tests of the real python client.

Usage::

    with KubeApiServer() as api:
        token = api.add_token("system:serviceaccount:jitsudo:jitsudo-bot")
        config = api.write_kubeconfig(tmp_path / "kubeconfig", token=token)

Served over plain HTTP on 127.0.0.1 (JSON only): core ``namespaces`` and
``serviceaccounts``; ``rbac.authorization.k8s.io/v1`` roles, clusterroles and
their bindings; ``coordination.k8s.io/v1`` leases; ``authorization.k8s.io/v1``
(self) subject access reviews; ``/version`` and discovery. Authentication is by
bearer token, authorization is RBAC from the stored objects, with upstream's
escalation prevention. Module map: ``store`` (objects, revisions, paging),
``selectors``, ``validation``, ``decode``, ``patch``, ``rbac`` (authorizer and
escalation), ``admission`` (defaulting, namespace lifecycle, escalation hooks),
``deletion`` (finalizers), ``crud`` (the verbs), ``reviews`` (SAR, discovery),
``faults`` (injected errors and delays), ``api`` (one request through the
chain), ``server`` (sockets and the public ``KubeApiServer``).

Finalizers work as upstream (``deletion``): a DELETE only marks an object that
has some, and removing the last one removes it. ``fail_next`` and
``delay_next`` (``faults``) inject errors and slow answers.

Not implemented: watch (405), deletecollection (405), server-side apply (415),
subresources (404), managedFields, generation, graceful deletion periods and
the garbage collector (``propagationPolicy`` adds no finalizers), namespaces
that linger while ``Terminating`` (their deletion is immediate), aggregated
ClusterRoles, and ``$patch`` directives and list merging in strategic merge
patches (``metadata.finalizers`` is replaced, not merged).
"""

from .api import RecordedRequest
from .errors import ApiError
from .server import KubeApiServer

__all__ = ["ApiError", "KubeApiServer", "RecordedRequest"]
