"""What start-up checks before anything runs: the folders the service writes can be created and
written, and the HTTP port is free. Each problem is one SettingError naming the setting, raised
before a worker process starts or a model is loaded.

The port is not only probed: it is bound here, the way uvicorn binds it (asyncio's
create_server: every address the host resolves to, SO_REUSEADDR, IPv6 sockets IPv6-only), and the
sockets are handed to uvicorn, so that nothing can take the port between the check and the
server's start.
"""

from __future__ import annotations

import errno
import socket
import tempfile
from pathlib import Path

from whisper_transcriber.db.engine import normalize_url
from whisper_transcriber.db.errors import DatabaseUnavailable
from whisper_transcriber.service.settings import SettingError, Settings


def writable_folder(folder: Path, setting: str) -> None:
    """Create the folder (and its parents) if need be, then write a file in it and remove it:
    the only honest test (ACLs, read-only mounts, root squash on NFS)."""
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise SettingError(setting, f"{folder} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingError(
            setting, f"the folder {folder} cannot be created: {exc.strerror or exc}"
        ) from exc
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise SettingError(
            setting, f"the folder {folder} cannot be written: {exc.strerror or exc}"
        ) from exc


def database_folder(database_url: str) -> None:
    """A SQLite database's folder (made on first run) must be writable: SQLite writes its journal
    beside the file. Nothing to check for PostgreSQL or an in-memory database."""
    try:
        url = normalize_url(database_url)
    except DatabaseUnavailable:
        return  # open_database says what is wrong with the URL itself
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if "mode" in url.query:  # a URI filename (mode=memory, mode=ro): SQLite's own business
        return
    writable_folder(Path(url.database).parent, "database_url")


def check_folders(settings: Settings) -> None:
    """The folders this instance's roles write: uploads (api), transcripts (work)."""
    if "api" in settings.roles:
        writable_folder(settings.uploads_dir, "uploads_dir")
    if "work" in settings.roles and settings.output_dir is not None:
        writable_folder(settings.output_dir, "output_dir")


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The HTTP API's sockets, bound (not yet listening) as asyncio's create_server binds them for
    uvicorn; SettingError (port) when another program has the port."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise SettingError("host", f"{host!r} cannot be resolved: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                shown = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
                where = f"{shown}:{port}"
                if exc.errno == errno.EADDRINUSE:
                    raise SettingError("port", f"{where} is already in use") from exc
                if exc.errno == errno.EACCES:
                    raise SettingError(
                        "port", f"{where}: no permission to listen on this port"
                    ) from exc
                raise SettingError(
                    "host", f"cannot listen on {where}: {exc.strerror or exc}"
                ) from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def check_serve(settings: Settings) -> list[socket.socket]:
    """Everything `serve` checks before it starts anything, the port first (it changes nothing);
    the HTTP API's bound sockets (none without the api role), for the runner to hand to uvicorn."""
    sockets = listening_sockets(settings.host, settings.port) if "api" in settings.roles else []
    try:
        database_folder(settings.database_url)
        check_folders(settings)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
