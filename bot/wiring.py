"""The one wiring function: settings in, a runnable bot out.

Called by the CLI and by the end-to-end tests, so both run the same graph.
`doctor_sections` composes the doctor's checks the same way.
Each bot gets its own metrics registry (bot.metrics), so several bots in one
process never mix their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App
from slack_sdk import WebClient

from bot import database
from bot.config import Settings
from bot.database import open_store
from bot.doctor import Section
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.policy import Policy
from bot.ports import Clock, SystemClock
from bot.providers import kubernetes_checks
from bot.providers.kubernetes import KubernetesProvider, api_client_from
from bot.server import JitsudoWsgi
from bot.service import AccessService
from bot.slack import doctor as slack_doctor
from bot.slack import listeners
from bot.slack.app import build_app, web_client
from bot.slack.notifier import SlackNotifier
from bot.slack.people import People
from bot.store import Store


@dataclass
class Bot:
    settings: Settings
    store: Store
    provider: KubernetesProvider
    client: WebClient
    people: People
    service: AccessService
    outbox: OutboxWorker
    app: App
    metrics: Metrics

    def wsgi(self) -> JitsudoWsgi:
        """The HTTP routes: /slack/events only in HTTP mode; health and metrics in both."""
        return JitsudoWsgi(
            self.app if self.settings.slack.mode == "http" else None,
            readiness={"database": self.store.ping, "kubernetes": self.provider.ping},
            metrics=self.metrics.wsgi(),
        )


def build_bot(settings: Settings, *, clock: Clock | None = None) -> Bot:
    clock = clock or SystemClock()
    kubernetes = settings.kubernetes
    store = open_store(settings.database.url)
    metrics = Metrics()
    metrics.watch_states(store.count_by_state)
    provider = KubernetesProvider(
        api_client_from(kubernetes.kubeconfig),
        managed_label=kubernetes.managed_label,
        metrics=metrics,
    )
    client = web_client(settings, metrics=metrics)
    people = People(client, identity=settings.identity, slack=settings.slack)
    notifier = SlackNotifier(
        client=client,
        store=store,
        provider=provider,
        people=people,
        clock=clock,
        approval_channel=settings.slack.approval_channel,
        request_ttl=settings.policy.request_ttl,
    )
    outbox = OutboxWorker(store, notifier.deliver, clock)
    service = AccessService(
        store=store,
        provider=provider,
        approvers=people,
        policy=Policy.from_settings(settings),
        clock=clock,
        default_namespace=kubernetes.default_namespace,
        notices_waiting=outbox.wake,
        metrics=metrics,
    )
    app = build_app(settings, listeners.Deps(service=service, people=people), client)
    return Bot(
        settings=settings,
        store=store,
        provider=provider,
        client=client,
        people=people,
        service=service,
        outbox=outbox,
        app=app,
        metrics=metrics,
    )


def doctor_sections() -> list[Section]:
    """What `jitsudo-bot doctor` checks after the config, in order; nothing connects here."""
    return [
        Section("database", lambda settings: database.check(settings.database.url)),
        Section(
            "slack",
            lambda settings: slack_doctor.check(
                web_client(settings, metrics=Metrics()),  # the doctor's own, never scraped
                channels=[settings.slack.approval_channel],
            ),
        ),
        Section(
            "cluster",
            lambda settings: kubernetes_checks.check(
                settings.kubernetes.kubeconfig, roles=list(settings.policy.roles)
            ),
        ),
    ]
