"""What the page's on-device mode downloads: the runtime (onnxruntime-web, ortweb.py) and the emotion
service's two graphs, under content-addressed names with year-long immutable caching, so a returning
visitor downloads nothing; compressed once (brotli where the package is installed, else gzip), never
per request.

The runtime is installed in the background at start-up; until then, or when it cannot be, the manifest
says why (the page then uses server mode), and the log says it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from services.common.contracts import OnDeviceManifest, OnDevicePipeline
from services.common.errors import NotFound
from services.gateway import ortweb
from services.gateway.clients import BackendError, BackendFailed, EmotionClient
from services.gateway.settings import RuntimeSettings

log = logging.getLogger("moodtunes.gateway.ondevice")
T = TypeVar("T")

IMMUTABLE = "public, max-age=31536000, immutable"
RUNTIME_PATH = "/ondevice/runtime"
MODELS_PATH = "/ondevice/models"
# Graphs kept compressed in memory: the current pair, and the pair before a promotion for pages still
# loading it.
KEPT_GRAPHS = 4


class RuntimeInfo(BaseModel):
    available: bool
    reason: str | None = Field(description="why the runtime is not available (null when it is)")
    version: str
    module: str | None = Field(description="URL of the ES module (ort.wasm.bundle.min.mjs)")
    wasm: str | None = Field(description="URL of the SIMD WebAssembly runtime")


class ModelFile(BaseModel):
    url: str
    sha256: str
    bytes: int


class OnDeviceInfo(BaseModel):
    """GET /api/ondevice: everything the page's engine (frontend/ondevice.js) loads, or why it cannot."""

    available: bool = Field(description="true when the runtime and the models can both be loaded")
    reason: str | None = Field(description="why on-device mode is unavailable (null when it is)")
    runtime: RuntimeInfo
    model: str | None = Field(description="the emotion model, as /predict's `model`")
    files: dict[str, ModelFile] = Field(description="'detect' and 'classify' graphs")
    pipeline: OnDevicePipeline | None


@dataclass(frozen=True)
class Encoded:
    """A file's bytes as stored, and its compressed copies by Content-Encoding."""

    raw: bytes
    etag: str
    encodings: dict[str, bytes]


async def _in_daemon_thread(fn: Callable[[], T]) -> T:
    """fn() on a daemon thread: a download still running when the service stops does not hold the
    process up (the install's temporary folder is removed at the next start)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled (the service stopped)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]  # T when no error

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(), None)
        except BaseException as exc:  # noqa: BLE001 (handed to the awaiting task)
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="ortweb-install", daemon=True).start()
    return await future


# The graphs are compressed when first asked for: brotli's quality 11 takes a hundred times as long as 9
# on the detector (minutes on a busy machine) for 5% fewer bytes, since float16 weights barely compress.
# The runtime, compressed once at install, takes 11 (ortweb.py).
GRAPH_BROTLI_QUALITY = 9


def compress(data: bytes) -> dict[str, bytes]:
    out = {"gzip": gzip.compress(data, 9, mtime=0)}
    try:
        import brotli  # type: ignore[import-untyped]  # noqa: PLC0415  (optional)
    except ImportError:
        return out
    out["br"] = brotli.compress(data, quality=GRAPH_BROTLI_QUALITY)
    return out


def pick(encoded: Encoded, accept_encoding: str) -> tuple[bytes, str | None]:
    """The smallest copy the client accepts, and its Content-Encoding (None: as stored)."""
    accepted = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    for name in ("br", "gzip"):
        if name in accepted and name in encoded.encodings:
            return encoded.encodings[name], name
    return encoded.raw, None


class OnDevice:
    def __init__(self, settings: RuntimeSettings, emotion: EmotionClient) -> None:
        self.runtime_dir = settings.dir
        self.runtime_url = settings.url
        self.emotion = emotion
        self.runtime_reason: str | None = f"onnxruntime-web {ortweb.VERSION} is being installed"
        self.runtime_files: dict[str, Encoded] = {}
        self.graphs: OrderedDict[str, Encoded] = OrderedDict()
        self._fetching: dict[str, asyncio.Task[Encoded]] = {}

    async def install_runtime(self) -> None:
        """Installs the runtime (a download on the first start) and loads its files; logs one line
        when it cannot: the page then runs in server mode."""
        try:
            self.runtime_files = await _in_daemon_thread(self._install)
        except ortweb.RuntimeUnavailable as exc:
            self.runtime_reason = f"onnxruntime-web {ortweb.VERSION} is not installed: {exc}"
            log.warning("on-device mode unavailable, the page uses server mode: %s", self.runtime_reason)
            return
        self.runtime_reason = None
        log.info("on-device mode: onnxruntime-web %s from %s", ortweb.VERSION, self.runtime_dir)

    def _install(self) -> dict[str, Encoded]:
        folder = self.runtime_dir / ortweb.VERSION
        manifest = ortweb.install(self.runtime_dir, self.runtime_url)
        files = {}
        try:
            for name, info in manifest["files"].items():
                raw = (folder / name).read_bytes()
                if hashlib.sha256(raw).hexdigest() != info["sha256"]:
                    raise ortweb.RuntimeUnavailable(
                        f"{folder / name} differs from its manifest; delete {folder}"
                    )
                encodings = {}
                for suffix, encoding in (("br", "br"), ("gz", "gzip")):
                    packed = folder / f"{name}.{suffix}"
                    if packed.is_file():
                        encodings[encoding] = packed.read_bytes()
                files[name] = Encoded(raw, f'"{info["sha256"]}"', encodings)
        except OSError as exc:
            raise ortweb.RuntimeUnavailable(f"cannot read {folder}: {exc}") from exc
        return files

    def runtime(self) -> RuntimeInfo:
        ready = self.runtime_reason is None
        base = f"{RUNTIME_PATH}/{ortweb.VERSION}"
        return RuntimeInfo(
            available=ready,
            reason=self.runtime_reason,
            version=ortweb.VERSION,
            module=f"{base}/{ortweb.MODULE}" if ready else None,
            wasm=f"{base}/{ortweb.WASM}" if ready else None,
        )

    def runtime_file(self, version: str, name: str) -> Encoded:
        found = self.runtime_files.get(name) if version == ortweb.VERSION else None
        if found is None:
            why = f" ({self.runtime_reason})" if self.runtime_reason else ""
            raise NotFound(f"no runtime file {version}/{name}{why}")
        return found

    async def info(self, request_id: str) -> OnDeviceInfo:
        runtime = self.runtime()
        try:
            response = await self.emotion.request("GET", "/models", request_id=request_id)
            manifest: OnDeviceManifest | None = OnDeviceManifest.model_validate_json(response.content)
            models_reason = None
        except BackendError as exc:
            manifest, models_reason = None, f"the models cannot be fetched: {exc.message}"
        reason = runtime.reason or models_reason
        if manifest is not None:
            # The page asks for the graphs right after the runtime: fetch and compress them meanwhile.
            for g in manifest.files.values():
                if g.name not in self.graphs:
                    self._fetch(g.name, request_id)
        return OnDeviceInfo(
            available=reason is None,
            reason=reason,
            runtime=runtime,
            model=manifest.model if manifest else None,
            files={
                kind: ModelFile(url=f"{MODELS_PATH}/{g.name}", sha256=g.sha256, bytes=g.bytes)
                for kind, g in (manifest.files.items() if manifest else ())
            },
            pipeline=manifest.pipeline if manifest else None,
        )

    async def graph(self, name: str, request_id: str) -> Encoded:
        """A graph by its content-addressed name, from the emotion service once, then from memory."""
        if (found := self.graphs.get(name)) is not None:
            self.graphs.move_to_end(name)
            return found
        return await asyncio.shield(self._fetch(name, request_id))

    def _fetch(self, name: str, request_id: str) -> asyncio.Task[Encoded]:
        """The one task fetching the graph (started unless it is running)."""
        task = self._fetching.get(name)
        if task is None:
            task = self._fetching[name] = asyncio.ensure_future(self._fetch_graph(name, request_id))

            def done(finished: asyncio.Task[Encoded]) -> None:
                self._fetching.pop(name, None)
                if not finished.cancelled():
                    finished.exception()  # retrieved: the request that awaits it reports it

            task.add_done_callback(done)
        return task

    async def _fetch_graph(self, name: str, request_id: str) -> Encoded:
        response = await self.emotion.request("GET", f"/models/{name}", request_id=request_id)
        data = response.content
        digest = hashlib.sha256(data).hexdigest()
        # The name carries the start of the content's sha256: a different content is not that file.
        if not name.endswith(f".{digest[:16]}.onnx"):
            raise BackendFailed(f"the emotion service's {name} does not match its name's hash")
        encoded = Encoded(data, f'"{digest}"', await asyncio.to_thread(compress, data))
        self.graphs[name] = encoded
        while len(self.graphs) > KEPT_GRAPHS:
            self.graphs.popitem(last=False)
        return encoded


def file_headers(encoded: Encoded, encoding: str | None, content_type: str) -> dict[str, Any]:
    headers = {
        "Cache-Control": IMMUTABLE,
        "ETag": encoded.etag,
        "Vary": "Accept-Encoding",
        "Content-Type": content_type,
    }
    if encoding:
        headers["Content-Encoding"] = encoding
    return headers
