"""The README stays true: every command, target, path and config key it names exists.

The README is for an SRE who has never seen the project; a command that no
longer parses or a key that was renamed is a broken promise. Commands that
need a real cluster (kind, kubectl apply) are not run here; what they point at
(files, overlays) must exist, and `kubectl kustomize` of each overlay is run by
tests/test_manifests.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.cli import build_parser
from bot.config import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _code_spans() -> list[str]:
    """Inline `code` and the lines of fenced blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.DOTALL))
    return [*lines, *inline]


def _commands(program: str) -> list[list[str]]:
    found = []
    for span in _code_spans():
        for part in re.split(r"\s*(?:;|&&|\||#)\s*", span):
            words = part.strip().split()
            if words[:1] == [program] and len(words) > 1:
                found.append(words)
    return found


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = {words[1] for words in _commands("make") if len(words) > 1}
    assert named, "the README names no make targets"
    assert named <= targets, named - targets


@pytest.mark.parametrize("words", _commands("jitsudo-bot"), ids=" ".join)
def test_every_jitsudo_bot_command_in_the_readme_parses(words: list[str]) -> None:
    text = re.sub(r"\[[^\]]*\]", "", " ".join(words[1:]))  # optional parts, e.g. [--config FILE]
    argv = shlex.split(text)
    argv = [w.rstrip(".,:") for w in argv if w not in ("...", "…")]
    placeholders = {"FILE": "jitsudo.yaml", "REQUEST_ID": "req_01J8KZ4Q2M3N5P6R7S8T9VWXYZ"}
    argv = [placeholders.get(w, w) for w in argv]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"`jitsudo-bot {' '.join(argv)}` does not parse (exit {exit_.code})")


def test_every_repository_path_in_the_readme_exists() -> None:
    paths = set(re.findall(r"(?<![\w/.-])((?:manifests|tests|bot)/[\w./*-]*[\w*])", README))
    paths |= set(re.findall(r"`(\.?[\w-]+\.(?:yaml|example|md))`", README))
    made_by_the_operator = {"jitsudo.yaml", ".env"}  # the quickstart has them copied
    missing = sorted(p for p in paths - made_by_the_operator if not list(ROOT.glob(p)))
    assert not missing, missing


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        if name == "secrets":
            continue
        keys.add(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
    return keys


def test_every_config_key_in_the_readme_tables_exists() -> None:
    rows = re.findall(r"^\| `([a-z_]+(?:\.[a-z_]+)*)` \|", README, flags=re.MULTILINE)
    known = _keys(Settings)
    seed = {"kubeconfig", "default_namespace", "max_duration", "managed_label"}
    assert rows
    unknown = [key for key in rows if key not in known and key not in seed]
    assert not unknown, unknown


def test_every_link_inside_the_readme_has_its_heading() -> None:
    def slug(heading: str) -> str:
        return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")

    anchors = {slug(h) for h in re.findall(r"^#+ (.*)$", README, flags=re.MULTILINE)}
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", README)) - anchors)
    assert not broken, broken
