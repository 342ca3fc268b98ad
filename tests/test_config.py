"""Settings: the documented keys and defaults, and clear errors for bad files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings, parse_settings


def test_defaults_follow_the_seed_and_guide() -> None:
    settings = parse_settings({}, {})
    kubernetes = settings.providers.kubernetes
    assert kubernetes.kubeconfig == ""
    assert kubernetes.default_namespace == "default"
    assert kubernetes.max_duration is None
    assert kubernetes.managed_label == "jitsudo.dev/managed"
    assert settings.slack.mode == "socket"
    assert settings.slack.port == 3000
    assert settings.identity.source == "email"
    assert list(settings.policy.roles) == ["view", "edit", "admin", "cluster-admin"]
    assert settings.policy.default_duration == timedelta(hours=1)
    assert settings.policy.request_ttl == timedelta(hours=1)
    assert settings.policy.expiry_warning == timedelta(minutes=5)
    assert settings.scheduler.sweep_interval == timedelta(seconds=30)
    assert settings.database.url == "sqlite:///./jitsudo.db"


def test_full_file_from_the_guide(tmp_path: Path) -> None:
    path = tmp_path / "jitsudo.yaml"
    path.write_text(Path("jitsudo.example.yaml").read_text())
    settings = load_settings(str(path), env={})
    assert settings.providers.kubernetes.max_duration == timedelta(hours=1)
    assert settings.policy.roles["cluster-admin"].max_duration == timedelta(minutes=30)
    assert settings.policy.roles["view"].max_duration is None


def test_secrets_come_from_the_environment_and_never_print() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-secret",
        "SLACK_SIGNING_SECRET": "shh",
        "SLACK_APP_TOKEN": "xapp-secret",
        "SLACK_API_URL": "http://127.0.0.1:1/api/",
        "DATABASE_URL": "postgresql://u@h/db",
    }
    settings = parse_settings({"database": {"url": "sqlite:///x.db"}}, env)
    assert settings.secrets.slack_bot_token.get_secret_value() == "xoxb-secret"
    assert settings.secrets.slack_api_url == "http://127.0.0.1:1/api/"
    assert settings.database.url == "postgresql+psycopg://u@h/db"
    assert "xoxb-secret" not in repr(settings) and "xapp-secret" not in str(settings)


def test_config_path_from_env(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("slack:\n  approval_channel: C999\n")
    assert load_settings(env={"JITSUDO_CONFIG": str(path)}).slack.approval_channel == "C999"


@pytest.mark.parametrize(
    ("document", "key", "problem"),
    [
        (
            {"providers": {"kubernetes": {"max_duration": "forever"}}},
            "providers.kubernetes.max_duration",
            "not a duration",
        ),
        (
            {"providers": {"kubernetes": {"max_duration": 30}}},
            "providers.kubernetes.max_duration",
            "duration string",
        ),
        (
            {"providers": {"kubernetes": {"kubeconfg": "/x"}}},
            "providers.kubernetes.kubeconfg",
            "unknown key",
        ),
        ({"slack": {"mode": "websocket"}}, "slack.mode", "socket"),
        ({"slack": {"port": 70000}}, "slack.port", "65535"),
        (
            {"policy": {"roles": {"edit": {"max_duration": "1x"}}}},
            "policy.roles.edit.max_duration",
            "not a duration",
        ),
        ({"identity": {"source": "ldap"}}, "identity.source", "email"),
    ],
)
def test_bad_values_name_the_key(document: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(document, {})
    assert key in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("identity", "key", "problem"),
    [
        ({"map": {"UA": "bob", "UB": "bob"}}, "identity.map.UB", "same Kubernetes user as"),
        (
            {"map": {"UA": "Bob@Example.com", "UB": "bob@example.com"}},
            "identity.map.UB",
            "identity.map.UA",
        ),
        (
            {"map": {"UA": "system:serviceaccount:kube-system:default"}},
            "identity.map.UA",
            "system:",
        ),
        ({"map": {"UA": "System:masters"}}, "identity.map.UA", "system:"),
        ({"map": {"UA": ""}}, "identity.map.UA", "is empty"),
        ({"map": {"UA": "bob "}}, "identity.map.UA", "whitespace or control"),
        ({"map": {"UA": "bo\nb"}}, "identity.map.UA", "whitespace or control"),
        ({"map": {"UA": "bob\u200b"}}, "identity.map.UA", "whitespace or control"),
        ({"username_prefix": "system:"}, "identity.username_prefix", "system:"),
        ({"username_prefix": "oidc :"}, "identity.username_prefix", "whitespace"),
        (
            {"username_prefix": "sys", "map": {"UA": "tem:masters"}},
            "identity.map.UA",
            "system:",
        ),
    ],
)
def test_identities_that_would_grant_the_wrong_subject_are_refused(
    identity: dict[str, object], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"identity": identity}, {})
    assert key in str(caught.value)
    assert problem in str(caught.value)


def test_distinct_safe_identities_pass() -> None:
    identity = {"username_prefix": "oidc:", "map": {"UA": "alice", "UB": "bob@example.com"}}
    settings = parse_settings({"identity": identity}, {})
    assert settings.identity.map == {"UA": "alice", "UB": "bob@example.com"}


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.yaml"), env={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("slack: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(str(broken), env={})
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(str(listy), env={})


@pytest.mark.parametrize(
    ("document", "key", "problem"),
    [
        (
            {"providers": {"kubernetes": {"max_duration": "99999999999999999999h"}}},
            "providers.kubernetes.max_duration",
            "8760h (365 days)",
        ),
        (
            {"policy": {"roles": {"edit": {"max_duration": "100000000h"}}}},
            "policy.roles.edit.max_duration",
            "8760h (365 days)",
        ),
        ({"policy": {"default_duration": "1" * 400 + "s"}}, "policy.default_duration", "8760h"),
        ({"policy": {"request_ttl": "0.0000001s"}}, "policy.request_ttl", "shorter than 1s"),
        ({"scheduler": {"sweep_interval": "0.5s"}}, "scheduler.sweep_interval", "shorter than 1s"),
        ({"scheduler": {"sweep_interval": "0s"}}, "scheduler.sweep_interval", "shorter than 1s"),
    ],
)
def test_out_of_range_durations_name_the_key(
    document: dict[str, object], key: str, problem: str
) -> None:
    """No OverflowError traceback: a ConfigError naming the key, as for any bad value."""
    with pytest.raises(ConfigError) as caught:
        parse_settings(document, {})
    assert f"{key}: " in str(caught.value)
    assert problem in str(caught.value)
