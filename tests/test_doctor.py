"""`jitsudo-bot doctor` against the stand-ins: a correct set-up, and each way it can be wrong.

The real WebClient asks the Slack stand-in, the real kubernetes client asks the
API-server stand-in (the bot authorized only by manifests/base/rbac/rbac.yaml), and the
databases are real SQLite files and PostgreSQL databases.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from alembic.runtime.migration import MigrationContext

from bot import doctor
from bot.cli import main
from bot.database import migrate, open_store
from bot.slack.doctor import REQUIRED_SCOPES
from bot.store import make_engine
from bot.wiring import doctor_sections
from tests.harness import (
    APPROVAL_CHANNEL,
    BOT_TOKEN,
    BOT_USER,
    MANIFEST,
    SIGNING_SECRET,
    settings_document,
    stand_ins,
)
from tests.kubeapi import KubeApiServer
from tests.slackapi import SlackApiServer
from tests.slackapi.models import DEFAULT_SCOPES
from tests.subprocess_bot import _child_env, _command, free_port

SLACK_MANIFEST = Path(__file__).parent.parent / "manifests" / "slack-app.yaml"
ROLES = ["view", "edit", "admin", "cluster-admin"]
# Every check of a correct set-up, in order (the part of each line before its detail).
ALL_OK = [
    "config",
    "secrets",
    "database",
    "database migrations",
    "audit chain",
    "slack auth.test",
    "slack scopes",
    f"slack approval channel {APPROVAL_CHANNEL}",
    "cluster",
    "rbac rolebindings",
    "rbac clusterrolebindings",
    "rbac clusterroles",
    "rbac namespaces",
    *(f"rbac bind {role}" for role in ROLES),
    *(f"role {role}" for role in ROLES),
]


@dataclass
class Setup:
    kube: KubeApiServer
    slack: SlackApiServer
    kubeconfig: Path
    document: dict[str, Any]
    env: dict[str, str]
    tmp_path: Path

    def write(self) -> Path:
        path = self.tmp_path / "jitsudo.yaml"
        path.write_text(yaml.safe_dump(self.document, sort_keys=False))
        return path

    def doctor(self) -> tuple[int, list[str]]:
        """Run the checks as the CLI does; the exit code and the lines printed."""
        lines: list[str] = []
        code = doctor.run(
            str(self.write()), sections=doctor_sections(), env=self.env, out=lines.append
        )
        return code, lines


@contextmanager
def _setup(tmp_path: Path, database: str) -> Iterator[Setup]:
    with ExitStack() as stack:
        kube, slack, kubeconfig = stand_ins(stack, tmp_path)
        open_store(database).engine.dispose()  # migrated to head, as `db upgrade` leaves it
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.base_url,
        }
        document = settings_document(kubeconfig, database)
        yield Setup(kube, slack, kubeconfig, document, env, tmp_path)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with _setup(tmp_path, f"sqlite:///{tmp_path}/jitsudo.db") as setup:
        yield setup


def check_names(lines: list[str]) -> list[str]:
    """`ok  name (detail)` and `FAIL name: fix` -> name."""
    names = []
    for line in lines:
        if line.startswith("ok  "):
            names.append(line[4:].split(" (")[0])
        else:
            assert line.startswith("FAIL "), line
            names.append(line[5:].split(": ")[0])
    return names


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if not line.startswith("ok  ")]


def rbac_with_bind_on(kube: KubeApiServer, roles: list[str]) -> None:
    """Apply the shipped ClusterRole with another resourceNames list for `bind`."""
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    [manager] = [d for d in documents if d["kind"] == "ClusterRole"]
    rules = copy.deepcopy(manager["rules"])
    [bind] = [rule for rule in rules if rule["verbs"] == ["bind"]]
    bind["resourceNames"] = roles
    kube.add_cluster_role(manager["metadata"]["name"], rules)


# -- a correct set-up ----------------------------------------------------------


def test_a_correct_setup_passes_every_check_on_both_databases(
    tmp_path: Path, database_url: str
) -> None:
    with _setup(tmp_path, database_url) as setup:
        code, lines = setup.doctor()
        assert (code, failures(lines)) == (0, [])
        assert check_names(lines) == ALL_OK
        assert lines[0] == f"ok  config ({tmp_path / 'jitsudo.yaml'})"
        assert f"ok  slack approval channel {APPROVAL_CHANNEL} (#capprovals, " in "\n".join(lines)
        assert f"ok  cluster (Kubernetes v1.33.0 at {setup.kube.url})" in lines
        assert "ok  database migrations (at head 0004)" in lines
        assert "ok  audit chain (intact: no events yet)" in lines
        assert BOT_TOKEN not in "\n".join(lines)


def test_the_cli_verb_takes_config_before_or_after_it(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("bot.logs.configure_logging", lambda level="INFO": None)
    monkeypatch.delenv("JITSUDO_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in setup.env.items():
        monkeypatch.setenv(name, value)
    config = str(setup.write())
    for argv in (["doctor", "--config", config], ["--config", config, "doctor"]):
        assert main(argv) == 0
        assert check_names(capsys.readouterr().out.splitlines()) == ALL_OK


def test_the_console_script_against_the_stand_ins(setup: Setup) -> None:
    """The installed `jitsudo-bot doctor`, a real process: exit 0, then 1 once broken."""
    config = setup.write()
    env = _child_env(setup.slack)

    def doctor_process() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_command(), "doctor", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=setup.tmp_path,
            timeout=120,
            check=False,
        )

    done = doctor_process()
    assert done.returncode == 0, done.stdout + done.stderr
    assert check_names(done.stdout.splitlines()) == ALL_OK
    setup.slack.set_bot_member(APPROVAL_CHANNEL, False)
    done = doctor_process()
    assert done.returncode == 1
    assert failures(done.stdout.splitlines()) == [
        f"FAIL slack approval channel {APPROVAL_CHANNEL}: the bot is not a member of "
        "#capprovals; type /invite @jitsudo in that channel"
    ]
    assert BOT_TOKEN not in done.stdout + done.stderr


# -- Slack ---------------------------------------------------------------------


def test_a_missing_slack_scope(setup: Setup) -> None:
    setup.slack.set_scopes([s for s in DEFAULT_SCOPES if s != "usergroups:read"])
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines) == [
        "FAIL slack scopes: the bot token lacks usergroups:read; add them under OAuth & "
        "Permissions > Bot Token Scopes (or update the app from manifests/slack-app.yaml) "
        "and reinstall the app to the workspace"
    ]


def test_the_bot_not_in_the_approval_channel(setup: Setup) -> None:
    setup.slack.add_channel(APPROVAL_CHANNEL, name="jitsudo-approvals", bot_member=False)
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines) == [
        f"FAIL slack approval channel {APPROVAL_CHANNEL}: the bot is not a member of "
        "#jitsudo-approvals; type /invite @jitsudo in that channel"
    ]
    setup.slack.set_bot_member(APPROVAL_CHANNEL, True)  # someone types /invite @jitsudo
    assert setup.doctor()[0] == 0


def test_a_private_approval_channel_the_bot_was_never_invited_to(setup: Setup) -> None:
    """Slack hides a private channel from non-members: it looks like a wrong ID."""
    setup.slack.add_channel(APPROVAL_CHANNEL, private=True, bot_member=False)
    code, lines = setup.doctor()
    assert code == 1
    [line] = failures(lines)
    assert line.startswith(f"FAIL slack approval channel {APPROVAL_CHANNEL}: Slack shows the bot")
    assert "check slack.approval_channel" in line and "/invite @jitsudo" in line


def test_a_token_slack_refuses_is_never_printed(setup: Setup) -> None:
    setup.env["SLACK_BOT_TOKEN"] = "xoxb-1234-revoked-token"
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines) == [
        "FAIL slack auth.test: Slack refused the bot token (invalid_auth); set "
        "SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-...) under OAuth & Permissions, "
        "reinstalling the app if it was revoked",
        "FAIL slack scopes, slack approval channel: not checked until auth.test passes",
    ]
    assert "revoked-token" not in "\n".join(lines)


def test_missing_secrets_are_named(setup: Setup) -> None:
    del setup.env["SLACK_BOT_TOKEN"], setup.env["SLACK_SIGNING_SECRET"]
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines)[:2] == [
        "FAIL secrets: not set: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET (required in HTTP "
        "mode); export them (see .env.example) and run doctor again",
        "FAIL slack auth.test: SLACK_BOT_TOKEN is not set; export the app's Bot User OAuth "
        "Token (xoxb-...)",
    ]


def test_required_scopes_are_the_app_manifests() -> None:
    manifest = yaml.safe_load(SLACK_MANIFEST.read_text())
    assert list(REQUIRED_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


# -- the cluster ---------------------------------------------------------------


def test_a_missing_bind_on_one_grantable_role(setup: Setup) -> None:
    rbac_with_bind_on(setup.kube, ["view", "edit", "cluster-admin"])
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines) == [
        "FAIL rbac bind admin: the bot may not bind ClusterRole admin, so Kubernetes refuses "
        'to grant it; add "admin" to the resourceNames of the bind rule in '
        "manifests/base/rbac/rbac.yaml, then kubectl apply -f manifests/base/rbac/rbac.yaml"
    ]


def test_a_grantable_role_that_does_not_exist(setup: Setup) -> None:
    setup.document["policy"]["roles"]["edit-plus"] = {}
    rbac_with_bind_on(setup.kube, [*ROLES, "edit-plus"])  # the manifest was kept in step
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines) == [
        "FAIL role edit-plus: ClusterRole edit-plus does not exist in the cluster; create it "
        "or remove it from policy.roles"
    ]
    setup.kube.add_cluster_role("edit-plus", [])
    assert setup.doctor()[0] == 0


def test_a_missing_verb_on_bindings(setup: Setup) -> None:
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    [manager] = [d for d in documents if d["kind"] == "ClusterRole"]
    rules = copy.deepcopy(manager["rules"])
    rules[0]["verbs"] = ["create", "get", "list"]  # an older manifest without delete and patch
    setup.kube.add_cluster_role(manager["metadata"]["name"], rules)
    code, lines = setup.doctor()
    assert code == 1
    assert [line.split(":")[0] for line in failures(lines)] == [
        "FAIL rbac rolebindings",
        "FAIL rbac clusterrolebindings",
    ]
    assert "the bot may not delete, patch rolebindings in every namespace" in failures(lines)[0]


def test_an_unreachable_cluster(setup: Setup) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = yaml.safe_load(setup.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = closed
    setup.kubeconfig.write_text(yaml.safe_dump(config))
    code, lines = setup.doctor()
    assert code == 1
    [cluster, skipped] = failures(lines)
    assert cluster.startswith(f"FAIL cluster: cannot reach the Kubernetes API at {closed} (")
    assert "Connection refused" in cluster
    assert cluster.endswith(
        "); check that the cluster is up and that providers.kubernetes.kubeconfig points at it"
    )
    assert skipped == "FAIL rbac, roles: not checked until the cluster answers"


def test_credentials_the_cluster_refuses(setup: Setup) -> None:
    config = yaml.safe_load(setup.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "kubeapi-not-a-token"
    setup.kubeconfig.write_text(yaml.safe_dump(config))
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines)[0].startswith("FAIL cluster: the API server at ")
    assert "kubeapi-not-a-token" not in "\n".join(lines)


def test_a_kubeconfig_that_cannot_be_loaded(setup: Setup) -> None:
    setup.document["providers"]["kubernetes"]["kubeconfig"] = str(setup.tmp_path / "nope")
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines)[0].startswith(
        f"FAIL cluster: cannot load the kubeconfig {setup.tmp_path}"
    )


def test_the_bot_reviews_itself_through_system_basic_user(setup: Setup) -> None:
    """Only the bootstrap binding lets the bot ask; without it, one clear line."""
    setup.kube.delete("rbac.authorization.k8s.io/v1", "clusterrolebindings", "system:basic-user")
    assert not setup.kube.can(
        BOT_USER, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io"
    )
    code, lines = setup.doctor()
    assert code == 1
    assert check_names(failures(lines)) == ["rbac", "roles"]
    assert "system:basic-user" in failures(lines)[0]


# -- the database --------------------------------------------------------------


def test_a_database_behind_head_is_not_migrated(database_url: str, tmp_path: Path) -> None:
    with _setup(tmp_path, f"sqlite:///{tmp_path}/unused.db") as setup:
        if database_url.startswith("sqlite"):
            database_url = f"sqlite:///{tmp_path}/old.db"
        engine = make_engine(database_url)
        migrate(engine, "0001")
        setup.document["database"]["url"] = database_url
        code, lines = setup.doctor()
        assert code == 1
        assert failures(lines) == [
            "FAIL database migrations: the database is at revision 0001 but this version "
            "needs 0004; run `jitsudo-bot db upgrade` (serve also migrates when it starts)"
        ]
        with engine.connect() as connection:  # the doctor looked, and changed nothing
            assert MigrationContext.configure(connection).get_current_revision() == "0001"
        engine.dispose()


@pytest.mark.parametrize(
    ("revision", "fix"),
    [
        (None, "the database has no jitsudo tables yet; run `jitsudo-bot db upgrade`"),
        ("0099", "the database is at revision 0099, which this jitsudo-bot does not know"),
    ],
    ids=["empty", "newer"],
)
def test_an_empty_or_newer_database(setup: Setup, revision: str | None, fix: str) -> None:
    path = setup.tmp_path / "other.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE unrelated (id INTEGER)"))
        if revision:  # what a newer jitsudo-bot's migration would have left
            connection.execute(sa.text("CREATE TABLE alembic_version (version_num TEXT)"))
            connection.execute(sa.text(f"INSERT INTO alembic_version VALUES ('{revision}')"))
    engine.dispose()
    setup.document["database"]["url"] = f"sqlite:///{path}"
    code, lines = setup.doctor()
    assert code == 1
    [line] = failures(lines)
    assert line.startswith(f"FAIL database migrations: {fix}")


def test_an_unreachable_database_hides_its_password(setup: Setup) -> None:
    url = f"postgresql://jitsudo:s3cret-pw@127.0.0.1:{free_port()}/jitsudo"
    setup.env["DATABASE_URL"] = url
    code, lines = setup.doctor()
    assert code == 1
    [database, migrations] = failures(lines)
    assert database.startswith(
        "FAIL database: cannot connect to postgresql+psycopg://jitsudo:***@127.0.0.1:"
    )
    assert "Connection refused" in database and "check database.url (or DATABASE_URL)" in database
    assert migrations == "FAIL database migrations: not checked until the database answers"
    assert "s3cret-pw" not in "\n".join(lines)


def test_a_sqlite_file_that_is_not_there_is_not_created(setup: Setup) -> None:
    missing = setup.tmp_path / "never.db"
    setup.document["database"]["url"] = f"sqlite:///{missing}"
    code, lines = setup.doctor()
    assert code == 1
    assert failures(lines)[0] == (
        f"FAIL database: the SQLite file {missing} does not exist yet; run `jitsudo-bot db "
        "upgrade` (serve also migrates when it starts)"
    )
    assert not missing.exists()


# -- the config and the runner itself ------------------------------------------


def test_an_unreadable_config_exits_2_and_skips_the_rest(setup: Setup) -> None:
    path = setup.tmp_path / "broken.yaml"
    path.write_text("providers:\n  kubernetes:\n    max_duration: soon\n")
    lines: list[str] = []
    code = doctor.run(str(path), sections=doctor_sections(), env=setup.env, out=lines.append)
    assert code == 2
    assert lines[0].startswith("FAIL config: invalid configuration: providers.kubernetes")
    assert lines[1:] == [
        "FAIL secrets, database, slack, cluster: not checked; fix the config first"
    ]
    assert setup.slack.calls == [] and not any(r.user == BOT_USER for r in setup.kube.requests)


def test_every_config_problem_is_one_line(setup: Setup) -> None:
    path = setup.tmp_path / "broken.yaml"
    path.write_text("slack:\n  mode: pigeon\n  port: 0\n")
    lines: list[str] = []
    assert doctor.run(str(path), sections=[], env=setup.env, out=lines.append) == 2
    [config, _] = lines
    assert config.startswith("FAIL config: invalid configuration: slack.mode: Input should be ")
    assert "; slack.port: Input should be greater than or equal to 1" in config
    path.write_text("slack: [1\n")
    lines.clear()
    assert doctor.run(str(path), sections=[], env=setup.env, out=lines.append) == 2
    assert lines[0].startswith(f"FAIL config: {path} is not valid YAML: while parsing")
    assert "\n" not in lines[0]


def test_a_check_that_crashes_is_a_fail_line_and_the_rest_still_run(setup: Setup) -> None:
    def crashing(_: Any) -> Iterator[doctor.Check]:
        yield doctor.passed("first")
        raise RuntimeError("bug")

    sections = [doctor.Section("broken", crashing), *doctor_sections()[:1]]
    lines: list[str] = []
    code = doctor.run(str(setup.write()), sections=sections, env=setup.env, out=lines.append)
    assert code == 1
    assert lines[2:] == [
        "ok  first",
        "FAIL broken: the check itself failed (RuntimeError); the log has the details",
        f"ok  database (reachable at sqlite:///{setup.tmp_path}/jitsudo.db)",
        "ok  database migrations (at head 0004)",
        "ok  audit chain (intact: no events yet)",
    ]


def test_lines_are_redacted_even_if_a_check_quotes_a_token(setup: Setup) -> None:
    def leaky(_: Any) -> Iterator[doctor.Check]:
        yield doctor.failed("leaky", f"Slack said Bearer {BOT_TOKEN} is {BOT_TOKEN}")

    lines: list[str] = []
    doctor.run(
        str(setup.write()),
        sections=[doctor.Section("leaky", leaky)],
        env=setup.env,
        out=lines.append,
    )
    assert lines[-1] == "FAIL leaky: Slack said [redacted] is [redacted]"


def test_a_tampered_audit_event_fails_the_audit_chain_line(
    tmp_path: Path, database_url: str
) -> None:
    from bot.database import open_store
    from tests.factories import access_request

    store = open_store(database_url)
    request = access_request()
    store.insert(request, actor="U1", notice=None)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_events SET actor = 'UEVIL'"))
    store.engine.dispose()
    with _setup(tmp_path, database_url) as setup:
        code, lines = setup.doctor()
    assert code == 1
    [line] = [line for line in lines if "audit chain" in line]
    assert line.startswith("FAIL audit chain: audit chain broken at seq 1"), line
    assert "the event was changed" in line
