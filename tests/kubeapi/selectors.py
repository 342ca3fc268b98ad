"""Label and field selectors with the real grammar (``k8s.io/apimachinery/pkg/labels``).

Supported: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``,
``!k``, ``k>1``, ``k<1``, comma-separated (AND). As upstream, ``!=`` and ``notin``
also match objects that lack the key, and keys/values must be valid label text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import JSON, ApiError, bad_request
from .validation import label_value, qualified_name

_SPECIAL = "=!(),<>"
_OPERATORS = ("=", "==", "!=", "in", "notin", ">", "<")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # one of _OPERATORS, "exists" or "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "==", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return present and (number > bound if self.op == ">" else number < bound)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            two = text[i : i + 2]
            out.append(two if two in ("==", "!=") else ch)
            i += len(out[-1])
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _fail(why: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {why}")


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a selector or raise 400 BadRequest, as the list handler does."""
    toks, reqs, pos = _tokens(text), [], 0

    def take() -> str:
        nonlocal pos
        pos += 1
        return toks[pos - 1] if pos - 1 < len(toks) else ""

    def peek() -> str:
        return toks[pos] if pos < len(toks) else ""

    while pos < len(toks):
        tok = take()
        if tok == "!":
            key = take()
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            if tok in _SPECIAL or not tok:
                raise _fail(f"found '{tok}', expected: !, identifier, or 'end of string'")
            _check_key(tok)
            op = peek()
            if op in ("", ","):
                reqs.append(Requirement(tok, "exists"))
            elif op in _OPERATORS:
                take()
                reqs.append(Requirement(tok, op, _values(op, take, peek)))
            else:
                raise _fail(f"found '{op}', expected: =, !=, ==, in, notin")
        if peek() not in ("", ","):
            raise _fail(f"found '{peek()}', expected: ',' or 'end of string'")
        if take() == "," and not peek():
            raise _fail("found '', expected: identifier after ','")
    return reqs


def _values(op: str, take: Callable[[], str], peek: Callable[[], str]) -> tuple[str, ...]:
    if op in ("in", "notin"):
        if take() != "(":
            raise _fail("found '', expected: '('")
        values: list[str] = []
        while True:
            value = "" if peek() in (",", ")") else take()
            values.append(value)
            sep = take()
            if sep == ")":
                break
            if sep != ",":
                raise _fail(f"found '{sep}', expected: ',', or ')'")
        if values == [""]:
            raise _fail(f"for '{op}', 'notin' operators, values set can't be empty")
    else:
        values = ["" if peek() in ("", ",") else take()]
        if op in (">", "<"):
            try:
                int(values[0])
            except ValueError:
                raise _fail(
                    f"for 'Gt', 'Lt' operators, the value must be an integer: {values[0]!r}"
                ) from None
    for value in values:
        if value in _SPECIAL and value:
            raise _fail(f"found '{value}', expected: identifier")
        for msg in label_value(value):
            raise _fail(f'values[0][{value}]: Invalid value: "{value}": {msg}')
    return tuple(values)


def _check_key(key: str) -> None:
    for msg in qualified_name(key):
        raise _fail(f'key: Invalid value: "{key}": {msg}')


def matches_labels(reqs: list[Requirement], obj: JSON) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    return all(r.matches(labels) for r in reqs)


# ---- field selectors ----

FieldTerm = tuple[str, str, str]  # (field, "=" or "!=", value)


def parse_field_selector(text: str, plural: str, namespaced: bool) -> list[FieldTerm]:
    """``fields.ParseSelector`` plus the per-type set of selectable fields."""
    allowed = {"metadata.name"} | ({"metadata.namespace"} if namespaced else set())
    if plural == "namespaces":
        allowed |= {"status.phase"}
    terms: list[FieldTerm] = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        for op in ("!=", "==", "="):
            field, sep, value = part.partition(op)
            if sep:
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field = field.strip()
        if field not in allowed:
            if plural == "namespaces":
                raise bad_request(f"field label not supported: {field}")
            raise bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )
        terms.append((field, "!=" if op == "!=" else "=", value.replace("\\", "")))
    return terms


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, escaped = [], "", False
    for ch in text:
        if escaped:
            cur += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def field_value(obj: JSON, field: str) -> str:
    meta = obj.get("metadata", {})
    if field == "status.phase":
        return str(obj.get("status", {}).get("phase", ""))
    return str(meta.get(field.split(".", 1)[1], ""))


def matches_fields(terms: list[FieldTerm], obj: JSON) -> bool:
    return all((field_value(obj, f) == v) == (op == "=") for f, op, v in terms)


def exact_name(terms: list[FieldTerm]) -> str:
    """The name a ``metadata.name=x`` selector pins, used as the authorization name."""
    names = [v for f, op, v in terms if f == "metadata.name" and op == "="]
    return names[0] if len(names) == 1 else ""
