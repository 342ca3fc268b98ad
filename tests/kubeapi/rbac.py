"""The RBAC authorizer and escalation prevention, after ``plugin/pkg/auth/authorizer/rbac``.

Authorization walks ClusterRoleBindings (cluster-wide) and, for a namespaced
request, the RoleBindings of that namespace; ``system:masters`` is allowed
everything, like the real privileged-group authorizer. Escalation prevention
(``registry/rbac/validation``) lets a caller create a binding only with the
``bind`` verb on the role or when it already holds every rule the role grants,
and a role only with ``escalate`` or when it holds every rule in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import JSON, ApiError, go_quote, not_found, unknown
from .resources import CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES, RBAC, ROLE_BINDINGS, ROLES
from .store import Store

MASTERS = "system:masters"
Rule = JSON


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attributes:
    """``authorizer.Attributes``: what a request wants to do."""

    user: UserInfo
    verb: str
    api_group: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    path: str = ""
    resource_request: bool = True


def _has(values: list[str], want: str) -> bool:
    return want in values


def rule_allows(attrs: Attributes, rule: Rule) -> bool:
    """``RuleAllows``: note resourceNames can only match requests that carry a name."""
    verbs = rule.get("verbs", [])
    if not (_has(verbs, "*") or _has(verbs, attrs.verb)):
        return False
    if not attrs.resource_request:
        return any(
            url in ("*", attrs.path)
            or (url.endswith("*") and attrs.path.startswith(url.rstrip("*")))
            for url in rule.get("nonResourceURLs", [])
        )
    groups = rule.get("apiGroups", [])
    if not (_has(groups, "*") or _has(groups, attrs.api_group)):
        return False
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources", [])
    if not any(
        r in ("*", combined) or (attrs.subresource and r == "*/" + attrs.subresource)
        for r in resources
    ):
        return False
    names: list[str] = rule.get("resourceNames", [])
    return not names or attrs.name in names


def _applies(subject: JSON, user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def _describe(subject: JSON, binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f"ServiceAccount {go_quote(subject.get('name', '') + '/' + ns)}"
    return f"{subject.get('kind')} {go_quote(subject.get('name', ''))}"


@dataclass
class RuleSet:
    """Rules a user holds, each with where it came from, plus resolution errors."""

    rules: list[tuple[str, Rule]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Authorizer:
    """Answers "may this user do that" from the RBAC objects in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def role_rules(self, role_ref: JSON, namespace: str) -> list[Rule]:
        """``GetRoleReferenceRules``: the rules a roleRef points at, or 404."""
        kind, name = role_ref.get("kind", ""), role_ref.get("name", "")
        if kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", name)
            if role is None:
                raise not_found("clusterroles", RBAC, name)
        elif kind == "Role":
            role = self.store.get(ROLES, namespace, name)
            if role is None:
                raise not_found("roles", RBAC, name)
        else:  # a plain Go error upstream, hence a 500 with no reason
            raise unknown(500, f"unsupported role reference kind: {go_quote(kind)}")
        return list(role.get("rules", []))

    def rules_for(self, user: UserInfo, namespace: str) -> RuleSet:
        """``VisitRulesFor``: cluster bindings, then the namespace's role bindings."""
        found = RuleSet()
        bindings = [(b, "") for b in self.store.items(CLUSTER_ROLE_BINDINGS)]
        if namespace:
            bindings += [(b, namespace) for b in self.store.items(ROLE_BINDINGS, namespace)]
        for binding, ns in bindings:
            subject = next((s for s in binding.get("subjects", []) if _applies(s, user, ns)), None)
            if subject is None:
                continue
            ref = binding.get("roleRef", {})
            try:
                rules = self.role_rules(ref, ns)
            except ApiError as exc:
                found.errors.append(exc.message)
                continue
            what = "ClusterRoleBinding" if not ns else "RoleBinding"
            name = binding["metadata"]["name"] + (f"/{ns}" if ns else "")
            source = (
                f"{what} {go_quote(name)} of {ref.get('kind')} {go_quote(ref.get('name', ''))} "
                f"to {_describe(subject, ns)}"
            )
            found.rules += [(source, rule) for rule in rules]
        return found

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) like the RBAC authorizer's decision and reason."""
        if MASTERS in attrs.user.groups:
            return True, ""
        for source, rule in self.rules_for(attrs.user, attrs.namespace).rules:
            if rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {source}"
        return False, ""

    def allowed(self, attrs: Attributes) -> bool:
        return self.authorize(attrs)[0]

    # ---- escalation prevention ----

    def binding_authorized(self, user: UserInfo, role_ref: JSON, namespace: str) -> bool:
        """``BindingAuthorized``: the ``bind`` verb on the referenced role."""
        resource = {"ClusterRole": "clusterroles", "Role": "roles"}.get(role_ref.get("kind", ""))
        if resource is None:
            return False
        attrs = Attributes(
            user,
            "bind",
            role_ref.get("apiGroup", ""),
            resource,
            namespace,
            role_ref.get("name", ""),
        )
        return self.allowed(attrs)

    def escalation_error(self, user: UserInfo, namespace: str, rules: list[Rule]) -> str | None:
        """``ConfirmNoEscalation``: None when the user already holds every rule."""
        held = self.rules_for(user, namespace)
        ok, missing = covers([r for _, r in held.rules], rules)
        if ok:
            return None
        described = sorted({compact_string(r) for r in compact(missing)})
        groups = "[" + " ".join(go_quote(g) for g in user.groups) + "]"
        msg = (
            f"user {go_quote(user.name)} (groups={groups}) is attempting to grant RBAC "
            "permissions not currently held:\n" + "\n".join(described)
        )
        if held.errors:
            msg += f"; resolution errors: [{', '.join(held.errors)}]"
        return msg


def escalation_allowed(user: UserInfo) -> bool:
    """``EscalationAllowed``: system:masters skips every escalation check."""
    return MASTERS in user.groups


def breakdown(rule: Rule) -> Iterator[Rule]:
    """``BreakdownRule``: one verb x group x resource (x name) per sub-rule."""
    verbs = rule.get("verbs", [])
    for group in rule.get("apiGroups", []):
        for resource in rule.get("resources", []):
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                names = rule.get("resourceNames", [])
                if names:
                    yield from ({**base, "resourceNames": [n]} for n in names)
                else:
                    yield base
    for url in rule.get("nonResourceURLs", []):
        for verb in verbs:
            yield {"nonResourceURLs": [url], "verbs": [verb]}


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned:
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _urls_cover(owned: list[str], wanted: list[str]) -> bool:
    return all(
        any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owned)
        for w in wanted
    )


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """``ruleCovers``: literal, so a held ``get`` does not cover a granted ``*``."""

    def has_all(key: str) -> bool:
        owned = owner.get(key, [])
        return "*" in owned or all(v in owned for v in sub.get(key, []))

    owner_names, sub_names = owner.get("resourceNames", []), sub.get("resourceNames", [])
    names_ok = not owner_names or (bool(sub_names) and all(n in owner_names for n in sub_names))
    return (
        has_all("verbs")
        and has_all("apiGroups")
        and _resources_cover(owner.get("resources", []), sub.get("resources", []))
        and _urls_cover(owner.get("nonResourceURLs", []), sub.get("nonResourceURLs", []))
        and names_ok
    )


def covers(owner_rules: list[Rule], rules: list[Rule]) -> tuple[bool, list[Rule]]:
    missing = [
        sub
        for rule in rules
        for sub in breakdown(rule)
        if not any(rule_covers(owner, sub) for owner in owner_rules)
    ]
    return not missing, missing


def compact(rules: list[Rule]) -> list[Rule]:
    """``CompactRules``: merge single group/resource(/name) rules that differ by verb."""
    simple: dict[tuple[str, str, str, bool], Rule] = {}
    out: list[Rule] = []
    for rule in rules:
        groups, resources = rule.get("apiGroups", []), rule.get("resources", [])
        names = rule.get("resourceNames", [])
        if (
            len(groups) == 1
            and len(resources) == 1
            and len(names) <= 1
            and not rule.get("nonResourceURLs")
        ):
            key = (groups[0], resources[0], names[0] if names else "", bool(names))
            if key in simple:
                simple[key]["verbs"] = simple[key]["verbs"] + rule.get("verbs", [])
            else:
                simple[key] = {k: list(v) for k, v in rule.items()}
        else:
            out.append(rule)
    return out + list(simple.values())


def compact_string(rule: Rule) -> str:
    """``CompactString``: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        if rule.get(key):
            parts.append(f"{label}:[" + " ".join(go_quote(v) for v in rule[key]) + "]")
    return "{" + ", ".join(parts) + "}"
