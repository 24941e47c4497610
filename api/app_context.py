"""What the routes are given: the job store, the service's defaults, and its workers' state."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from whisper_transcriber.api.browser_guard import BrowserPolicy
from whisper_transcriber.db.job_store import JobStore
from whisper_transcriber.db.values import JobOptions, JobRecord
from whisper_transcriber.db.webhook_outbox import CallbackRequest, WebhookOutbox
from whisper_transcriber.db.worker_registry import WorkerRegistry
from whisper_transcriber.worker.confinement import Confinement

DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
DEFAULT_UPLOADS_DIR = Path("data/uploads")


class WorkerStatus(Protocol):
    """The worker pool as the API sees it (WorkerPool in worker/supervisor.py)."""

    size: int
    restarts: int
    recycles: int

    def ready(self) -> int: ...

    def busy(self) -> int: ...


class CallbackRules(Protocol):
    def callback(
        self,
        url: str,
        secret: str | None,
        events: Sequence[str] | None,
        transcript: bool,
    ) -> CallbackRequest:
        """The callback a request asks for; ValueError with a sentence for the client when it
        may not have it (an address it may not reach, no secret to sign with)."""
        ...


class MediaServerAnswer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def detail(self) -> str: ...

    @property
    def job(self) -> JobRecord | None: ...


class MediaServerHook(Protocol):
    """A media server's notifications (service/media_servers/hook.py)."""

    @property
    def token(self) -> str | None:
        """What its webhook URL must carry as ?token=; None: the API key, as any request."""
        ...

    def handle(self, payload: Mapping[str, Any]) -> MediaServerAnswer: ...


@dataclass(frozen=True)
class ConfiguredModel:
    """A model jobs may name, as the settings give it (its weights, how it runs)."""

    model: str
    compute_type: str = "auto"


@dataclass(frozen=True)
class ApiContext:
    store: JobStore
    default_options: JobOptions
    allowed_roots: list[Path]
    uploads_dir: Path = DEFAULT_UPLOADS_DIR
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    workers: WorkerStatus | None = None  # None: this process runs no workers (api role)
    # Every instance's workers; None: a registry on the store's database with its defaults.
    registry: WorkerRegistry | None = None
    api_key: str | None = None  # every endpoint but /health then asks for it
    sync_wait_s: float = 4 * 3600.0  # how long /asr and friends wait for their job
    # The names the service answers to and the other origins whose pages may write.
    browser_policy: BrowserPolicy = field(default_factory=BrowserPolicy.of)
    # Folders whose files GET /jobs/{id}/audio may serve (Settings.read_roots); None: the
    # allowed roots and the uploads folder.
    served_roots: list[Path] | None = None
    # Speakers were renamed here: this instance's renamed-files pass, run now rather than at its
    # next turn (service/runner.py). Other instances' passes find the names on their own.
    on_renamed: Callable[[], None] = lambda: None
    # The model setting's model (named "default") and the models setting's, by name.
    default_model: ConfiguredModel = ConfiguredModel("bundled")
    models: Mapping[str, ConfiguredModel] = field(default_factory=dict)
    # What a request's callback_url must satisfy (service/webhooks/rules.py); None: requests may
    # not ask for callbacks.
    callbacks: CallbackRules | None = None
    # How long a delivery sent again is tried (the webhook_retry_s setting).
    webhook_retry_s: float = 86400.0
    # The media_servers setting's, by name (POST /media-servers/NAME).
    media_servers: Mapping[str, MediaServerHook] = field(default_factory=dict)

    @property
    def confinement(self) -> Confinement:
        roots = self.served_roots
        return Confinement.of(
            roots if roots is not None else [*self.allowed_roots, self.uploads_dir]
        )

    def webhook_outbox(self) -> WebhookOutbox:
        return WebhookOutbox(self.store.engine, clock=self.store.clock)

    def worker_registry(self) -> WorkerRegistry:
        if self.registry is not None:
            return self.registry
        return WorkerRegistry(self.store.engine, clock=self.store.clock)
