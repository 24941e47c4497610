"""Log output of every process of the service (the main process and each worker): readable text,
or one JSON object per line for log collectors (Loki, Elasticsearch, `docker logs | jq`).

A line about a job carries the job's id: in JSON as the field `job_id`, in text as the "job N:"
that such lines start with. The id comes from the line itself (the convention `log.info("job %s:
...", job.id, ...)`) or, for lines written while a worker runs a job (faster-whisper's own among
them), from the job in hand (worker/job_in_hand.py).

A worker process does not import this module: the service hands it `worker_logging(...)`, a
picklable call that sets up its logging once it has started (worker/process.py, WorkerConfig).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Literal
from urllib.parse import unquote_plus

from pythonjsonlogger.json import JsonFormatter

from whisper_transcriber.worker.job_in_hand import job_in_hand

LogFormat = Literal["text", "json"]
JOB_PREFIX = "job %s"
# The main process names the module a line comes from; a worker, which worker it is.
TEXT_FORMATS = {
    "main": "%(asctime)s %(levelname)s [%(name)s] %(message)s",
    "worker": "%(asctime)s %(levelname)s [%(processName)s] %(message)s",
}
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(processName)s %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "processName": "process"}
# Chatty libraries: their routine lines (migrations checked, scheduler ticks) only at DEBUG.
QUIET_LOGGERS = ("alembic", "apscheduler")


class JobIdFilter(logging.Filter):
    """Gives each record a job_id: from "job N: ..." lines, else the job in hand, else none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            job_id = job_in_hand()
            if isinstance(record.msg, str) and record.msg.startswith(JOB_PREFIX):
                args = record.args if isinstance(record.args, tuple) else ()
                if args and isinstance(args[0], int):
                    job_id = args[0]
            record.job_id = job_id
        return True


class SecretQueryFilter(logging.Filter):
    """Access lines without the secrets a URL may carry: a media server's ?token= (Plex can send
    nothing else) and a signed audio link's signature, however their names are escaped."""

    SECRETS = frozenset({"token", "signature"})
    QUERY = re.compile(r"\?([^\s\"]*)")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                self.QUERY.sub(self._hidden, arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True

    def _hidden(self, query: re.Match[str]) -> str:
        fields = []
        for field in query[1].split("&"):
            name, equals, _value = field.partition("=")
            if equals and unquote_plus(name).strip().lower() in self.SECRETS:
                field = f"{name}=***"
            fields.append(field)
        return "?" + "&".join(fields)


class _JsonLines(JsonFormatter):
    def process_log_record(self, log_record: dict[str, object]) -> dict[str, object]:
        if log_record.get("job_id") is None:
            log_record.pop("job_id", None)
        return log_record


def configure_logging(level: str, log_format: LogFormat, process: str = "main") -> None:
    """Replace the root logger's handlers with one to stderr in the chosen format."""
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    if log_format == "json":
        handler.setFormatter(_JsonLines(JSON_FIELDS, rename_fields=JSON_NAMES))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMATS[process]))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, SecretQueryFilter) for f in access.filters):
        access.addFilter(SecretQueryFilter())
    if level != "DEBUG":  # migration chatter and scheduler ticks on every start say nothing useful
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def worker_logging(level: str, log_format: LogFormat) -> Callable[[], None]:
    """What a worker process calls once started to log as the service does (a partial of a
    module-level function: it pickles by name into a spawned process)."""
    return partial(configure_logging, level, log_format, "worker")
