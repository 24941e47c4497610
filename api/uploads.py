"""Multipart uploads streamed straight into the uploads folder, with a size limit.

The body is parsed as it arrives (python-multipart's streaming parser); the file part is written
to a hidden partial file in a folder of its own under the uploads folder, and renamed to its
(sanitised) name once complete. Parsing and writing run in a worker thread, chunk by chunk, so
the event loop never waits on the disk. Nothing is left behind when an upload fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from whisper_transcriber.api.limits import (
    FORM_OVERHEAD_BYTES,
    MAX_FORM_FIELD_BYTES,
    MAX_FORM_PARTS,
    ContentTooLarge,
)

_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+")


class UploadError(Exception):
    """A malformed upload (400)."""


class UploadTooLarge(ContentTooLarge):
    """The file, a field, or the form's parts past their limits (413)."""


@dataclass
class Upload:
    """The fields of a multipart form, and the file it carried (already on disk)."""

    fields: dict[str, str] = field(default_factory=dict)  # the last value of each
    repeated: dict[str, list[str]] = field(default_factory=dict)  # every value, in order
    path: Path | None = None
    filename: str | None = None
    sha256: str | None = None  # of the file's content, taken as it streamed in: its identity

    def discard(self) -> None:
        """Remove the stored file and its folder (a request that failed after the upload)."""
        if self.path is not None:
            shutil.rmtree(self.path.parent, ignore_errors=True)
            self.path = None


def safe_name(filename: str) -> str:
    """A file name that cannot leave its folder or hide itself: no separators, no leading dot."""
    name = _UNSAFE.sub("_", Path(filename.replace("\\", "/")).name).strip(" .")
    return name[:200] or "upload"


class _Receiver:
    """python-multipart callbacks: fields into memory, the file part onto disk."""

    def __init__(self, folder: Path, file_field: str, max_bytes: int) -> None:
        self.folder = folder
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.upload = Upload()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._file: IO[bytes] | None = None
        self._partial: Path | None = None
        self._digest = hashlib.sha256()
        self._size = 0
        self._parts = 0
        self._overhead = 0  # bytes of part headers and field values, held in memory

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _add(self, attribute: str, data: bytes) -> None:
        self._hold(len(data))
        setattr(self, attribute, getattr(self, attribute) + data)

    def _hold(self, size: int) -> None:
        self._overhead += size
        if self._overhead > FORM_OVERHEAD_BYTES:
            raise UploadTooLarge(
                f"the form's fields and part headers are larger than the limit of "
                f"{FORM_OVERHEAD_BYTES} bytes"
            )

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FORM_PARTS:
            raise UploadTooLarge(f"the form has more than the limit of {MAX_FORM_PARTS} parts")
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        if name is None:
            raise UploadError("a form part without a name")
        self._name = name.decode("utf-8", "replace")
        filename = params.get(b"filename")
        if self._name == self.file_field and filename is not None:
            if self._file is not None:
                raise UploadError(f"more than one {self.file_field!r} file")
            self.upload.filename = safe_name(filename.decode("utf-8", "replace"))
            self.folder.mkdir(parents=True, exist_ok=True)
            self._partial = self.folder / f".{self.upload.filename}.part"
            self._file = self._partial.open("wb")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None and self.upload.path is None and self._name == self.file_field:
            self._size += end - start
            if self._size > self.max_bytes:
                raise UploadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
            self._file.write(data[start:end])
            self._digest.update(data[start:end])
            return
        self._hold(end - start)
        self._value += data[start:end]
        if len(self._value) > MAX_FORM_FIELD_BYTES:
            raise UploadTooLarge(
                f"form field {self._name!r} is longer than the limit of {MAX_FORM_FIELD_BYTES} bytes"
            )

    def _part_end(self) -> None:
        if self._file is not None and self.upload.path is None and self._name == self.file_field:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            assert self._partial is not None and self.upload.filename is not None
            final = self.folder / self.upload.filename
            os.replace(self._partial, final)
            self.upload.path = final
            self.upload.sha256 = self._digest.hexdigest()
        elif self._name is not None:
            value = self._value.decode("utf-8", "replace")
            self.upload.fields[self._name] = value
            self.upload.repeated.setdefault(self._name, []).append(value)

    def abandon(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def boundary_of(content_type: str) -> bytes:
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("expected a multipart/form-data body")
    return params[b"boundary"]


async def receive_upload(
    chunks: AsyncIterator[bytes],
    content_type: str,
    uploads_dir: Path,
    file_field: str,
    max_bytes: int,
) -> Upload:
    """Parse a multipart body as it streams in; the file lands in a new folder of uploads_dir.

    UploadError for a malformed body or a missing file; ContentTooLarge past max_bytes or a limit
    of api/limits.py (also from the body's own counter, BodyLimitMiddleware)."""
    receiver = _Receiver(uploads_dir / uuid.uuid4().hex, file_field, max_bytes)
    parser = MultipartParser(boundary_of(content_type), receiver.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in chunks:
            await anyio.to_thread.run_sync(parser.write, chunk)
        await anyio.to_thread.run_sync(parser.finalize)
    except (UploadError, ContentTooLarge, ClientDisconnect):  # (the last: the client left)
        receiver.abandon()
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        receiver.abandon()
        raise UploadError(f"malformed multipart body: {exc}") from exc
    if receiver.upload.path is None:
        receiver.abandon()
        raise UploadError(f"no file in the form field {file_field!r}")
    return receiver.upload


RAW_PCM_RATE = 16_000  # what whisper-asr-webservice clients send with encode=false (s16le, mono)
_COPY_CHUNK = 1024 * 1024


def wrap_raw_pcm(upload: Upload) -> None:
    """Give headerless 16 kHz mono s16le PCM (Bazarr's `encode=false`) a WAV header, so that the
    decoder reads it like any file; streamed, never whole in memory."""
    assert upload.path is not None
    raw = upload.path
    wav = raw.with_name(raw.stem + ".wav")
    partial = raw.with_name(f".{wav.name}.part")
    with raw.open("rb") as source, wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RAW_PCM_RATE)
        while chunk := source.read(_COPY_CHUNK):
            out.writeframesraw(chunk[: len(chunk) - len(chunk) % 2])
    os.replace(partial, wav)
    if wav != raw:
        raw.unlink()
    upload.path = wav
