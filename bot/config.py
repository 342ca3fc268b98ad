"""Settings: one YAML file plus secrets from the environment, validated once at start.

The key names are the operators' interface (see README); never rename one.
`load_settings` is called by the CLI; everything else receives the result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bot import identity
from bot.domain import InvalidInput, parse_duration

DEFAULT_CONFIG_PATH = "./jitsudo.yaml"
DEFAULT_ROLES = ("view", "edit", "admin", "cluster-admin")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class ConfigFileNotFound(ConfigError):
    """No file at the config path; `jitsudo-bot serve` lists it with the other gaps."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"config file {path} not found; pass --config or set JITSUDO_CONFIG")
        self.path = path


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration string such as 30m or 1h30m, got {value!r}")
    try:
        return parse_duration(value)
    except InvalidInput as error:
        raise ValueError(str(error).replace("`", "")) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]


def _kubernetes_user(value: str) -> str:
    problem = identity.username_problem(value)
    if problem:
        raise ValueError(f"the Kubernetes username {value!r} {problem}")
    return value


KubernetesUser = Annotated[str, AfterValidator(_kubernetes_user)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSettings(_Section):
    mode: Literal["socket", "http"] = "socket"
    port: int = Field(default=3000, ge=1, le=65535)
    approval_channel: str = ""
    approvers: list[str] = []
    approver_groups: list[str] = []
    admins: list[str] = []


class IdentitySettings(_Section):
    """How a Slack user becomes a Kubernetes username; every mapped name is checked at start."""

    source: Literal["email", "slack_id", "map"] = "email"
    username_prefix: str = ""
    map: dict[str, KubernetesUser] = {}

    @field_validator("username_prefix")
    @classmethod
    def _safe_prefix(cls, prefix: str) -> str:
        problem = identity.prefix_problem(prefix)
        if problem:
            raise ValueError(f"the prefix {prefix!r} {problem}")
        return prefix

    @field_validator("map")
    @classmethod
    def _one_person_per_username(
        cls, mapping: dict[str, str], info: ValidationInfo
    ) -> dict[str, str]:
        """Two people on one username would share each other's grants; and the prefix
        must not turn a mapped name into a reserved one (`sys` + `tem:masters`)."""
        prefix = info.data.get("username_prefix", "")
        owners: dict[str, str] = {}
        for slack_id, name in mapping.items():
            if problem := identity.username_problem(prefix + name):
                raise ValueError(
                    f"identity.map.{slack_id}: with the prefix, {prefix + name!r} {problem}"
                )
            first = owners.setdefault(identity.comparable(name), slack_id)
            if first != slack_id:
                raise ValueError(
                    f"identity.map.{slack_id} maps to {name!r}, the same Kubernetes user as "
                    f"identity.map.{first}; each username may belong to one person only"
                )
        return mapping


class KubernetesSettings(_Section):
    """Exactly the seed's `providers.kubernetes` keys."""

    kubeconfig: str = ""
    # The seed's table says "" but its example and our guide say "default"; an empty
    # default would turn every scope-less request into cluster-wide access.
    default_namespace: str = "default"
    max_duration: Duration | None = None
    managed_label: str = "jitsudo.dev/managed"


class ProvidersSettings(_Section):
    kubernetes: KubernetesSettings = KubernetesSettings()


class RolePolicy(_Section):
    max_duration: Duration | None = None


class PolicySettings(_Section):
    default_duration: Duration = timedelta(hours=1)
    min_duration: Duration = timedelta(minutes=1)
    request_ttl: Duration = timedelta(hours=1)
    expiry_warning: Duration = timedelta(minutes=5)
    max_reason_length: int = Field(default=500, ge=10, le=2000)
    max_pending_per_user: int = Field(default=5, ge=1, le=1000)
    commands_per_minute: int = Field(default=20, ge=1, le=10_000)
    roles: dict[str, RolePolicy] = {name: RolePolicy() for name in DEFAULT_ROLES}

    @field_validator("roles", mode="before")
    @classmethod
    def _empty_role_is_default(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {name: ({} if spec is None else spec) for name, spec in value.items()}
        return value


class SchedulerSettings(_Section):
    sweep_interval: Duration = timedelta(seconds=30)
    leader_lease: Duration = timedelta(seconds=15)

    @field_validator("leader_lease")
    @classmethod
    def _lease_bounds(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=3) <= value <= timedelta(minutes=10):
            raise ValueError("must be between 3s and 10m (the leader renews every third of it)")
        return value


class DatabaseSettings(_Section):
    url: str = "sqlite:///./jitsudo.db"


class Secrets(BaseModel):
    """Secrets and endpoints that come only from the environment; never logged."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr = SecretStr("")
    slack_signing_secret: SecretStr = SecretStr("")
    slack_app_token: SecretStr = SecretStr("")
    slack_api_url: str | None = None


class Settings(_Section):
    slack: SlackSettings = SlackSettings()
    identity: IdentitySettings = IdentitySettings()
    providers: ProvidersSettings = ProvidersSettings()
    policy: PolicySettings = PolicySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    database: DatabaseSettings = DatabaseSettings()
    secrets: Secrets = Field(default=Secrets(), exclude=True)

    @property
    def kubernetes(self) -> KubernetesSettings:
        return self.providers.kubernetes


def database_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (SQLAlchemy defaults to psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against the README)"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def read_secrets(env: Mapping[str, str]) -> Secrets:
    return Secrets(
        slack_bot_token=SecretStr(env.get("SLACK_BOT_TOKEN", "")),
        slack_signing_secret=SecretStr(env.get("SLACK_SIGNING_SECRET", "")),
        slack_app_token=SecretStr(env.get("SLACK_APP_TOKEN", "")),
        slack_api_url=env.get("SLACK_API_URL") or None,
    )


def parse_settings(document: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    """Validate a parsed YAML document plus the environment."""
    secrets = read_secrets(env)
    data = dict(document)
    if env.get("DATABASE_URL"):
        data["database"] = {**dict(data.get("database") or {}), "url": env["DATABASE_URL"]}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration:\n{_describe(error)}") from None
    database = settings.database.model_copy(update={"url": database_url(settings.database.url)})
    return settings.model_copy(update={"secrets": secrets, "database": database})


# The secret each slack.mode needs besides SLACK_BOT_TOKEN: the one rule, used by
# serve's first-run report (bot.firstrun) and by the doctor.
MODE_SECRETS: dict[str, str] = {"socket": "SLACK_APP_TOKEN", "http": "SLACK_SIGNING_SECRET"}
MODE_LABELS: dict[str, str] = {"socket": "Socket Mode", "http": "HTTP mode"}


def mode_secret_set(secrets: Secrets, mode: str) -> bool:
    """Whether the environment sets the secret `mode` needs (MODE_SECRETS)."""
    value = secrets.slack_app_token if mode == "socket" else secrets.slack_signing_secret
    return bool(value.get_secret_value())


def missing_secrets(settings: Settings) -> list[str]:
    """The secrets slack.mode needs that the environment does not set, named as variables."""
    secrets, mode = settings.secrets, settings.slack.mode
    missing = [] if secrets.slack_bot_token.get_secret_value() else ["SLACK_BOT_TOKEN"]
    if not mode_secret_set(secrets, mode):
        missing.append(f"{MODE_SECRETS[mode]} (required in {MODE_LABELS[mode]})")
    return missing


def config_path(path: str | None, env: Mapping[str, str]) -> Path:
    """The file named by --config, else JITSUDO_CONFIG, else ./jitsudo.yaml."""
    return Path(path or env.get("JITSUDO_CONFIG") or DEFAULT_CONFIG_PATH)


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the file named by --config, JITSUDO_CONFIG or ./jitsudo.yaml."""
    env = os.environ if env is None else env
    file = config_path(path, env)
    try:
        document = yaml.safe_load(file.read_text()) or {}
    except FileNotFoundError:
        raise ConfigFileNotFound(file) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{file} is not valid YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{file} must hold a mapping of sections (slack, providers, ...)")
    return parse_settings(document, env)
