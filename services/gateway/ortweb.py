"""onnxruntime-web, the page's inference runtime: pinned by version and npm integrity hash, fetched once
from the npm registry's tarball (no Node needed), checked, and only the files the page loads kept.

    <dir>/<VERSION>/ort.wasm.bundle.min.mjs       the ES module (WebAssembly only, its glue bundled)
    <dir>/<VERSION>/ort-wasm-simd-threaded.wasm   the runtime (SIMD; the page runs it on one thread)
    each also as .gz and, where the brotli package is installed, .br: served as they are, never
    compressed per request.
    <dir>/<VERSION>/manifest.json                 written last: its presence marks the folder complete

The folder appears under its name only complete (built in a temporary folder beside it, then renamed),
so an interrupted or failed fetch leaves nothing that a later start would trust.

`python -m services.gateway.ortweb DIR` installs into DIR; with --tarball-only it only fetches the checked
tarball (deploy/docker/wheels.sh, for the gateway image, whose build has no network). Standard library
only for that (the host's plain python3 runs it); installing also needs orjson, and brotli where installed.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("moodtunes.gateway.ortweb")

VERSION = "1.31.1"
# npm's dist.integrity for the tarball (`npm view onnxruntime-web@1.31.1 dist.integrity`).
INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
TARBALL = f"onnxruntime-web-{VERSION}.tgz"
URL = f"https://registry.npmjs.org/onnxruntime-web/-/{TARBALL}"
MODULE = "ort.wasm.bundle.min.mjs"
WASM = "ort-wasm-simd-threaded.wasm"
FILES = (MODULE, WASM)
MANIFEST = "manifest.json"
MAX_TARBALL_BYTES = 200 * 1024 * 1024
TIMEOUT_S = 30.0


class RuntimeUnavailable(RuntimeError):
    """onnxruntime-web could not be installed; the message says why, in one line."""


def installed(root: Path, version: str = VERSION) -> dict | None:
    """The installed runtime's manifest ({"version", "files": {name: {"sha256", "bytes"}}}), or None."""
    import orjson  # noqa: PLC0415  (not above: --tarball-only needs only the standard library)

    try:
        manifest = orjson.loads((root / version / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != version:
        return None
    return manifest


def _read(url: str) -> bytes:
    """The tarball's bytes from an http(s) address, or from a local path / file:// address."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = Path(parts.path if parts.scheme else url)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise RuntimeUnavailable(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 (https or a test's http)
            data = response.read(MAX_TARBALL_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise RuntimeUnavailable(f"HTTP {exc.code} {exc.reason} from {url}") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RuntimeUnavailable(f"cannot download {url} ({reason})") from exc
    if len(data) > MAX_TARBALL_BYTES:
        raise RuntimeUnavailable(f"{url} is larger than {MAX_TARBALL_BYTES:,} bytes; stopped")
    return data


def check_integrity(data: bytes, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256"):
        raise RuntimeUnavailable(f"unsupported integrity algorithm {algorithm!r}")
    got = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if got != expected:
        raise RuntimeUnavailable(
            f"the tarball's {algorithm} is {got}, expected {expected} "
            f"(not the pinned onnxruntime-web {VERSION})"
        )


def _extract(data: bytes) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            out = {}
            for name in FILES:
                member = tar.getmember(f"package/dist/{name}")
                handle = tar.extractfile(member)
                if handle is None:
                    raise RuntimeUnavailable(f"package/dist/{name} in the tarball is not a file")
                out[name] = handle.read()
            return out
    except (tarfile.TarError, KeyError, EOFError, OSError) as exc:
        raise RuntimeUnavailable(f"the tarball lacks the runtime's files ({exc})") from exc


def _compressed(data: bytes) -> dict[str, bytes]:
    """The encodings served: gzip always, brotli where the package is installed (it compresses the
    runtime about a third smaller than gzip)."""
    out = {"gz": gzip.compress(data, 9, mtime=0)}
    try:
        import brotli  # type: ignore[import-untyped]  # noqa: PLC0415  (optional: the gateway image has it)
    except ImportError:
        return out
    out["br"] = brotli.compress(data, quality=11)
    return out


def install(root: Path, url: str = URL, integrity: str = INTEGRITY, version: str = VERSION) -> dict:
    """Fetches, checks and installs the runtime into root/version unless it is there; its manifest."""
    found = installed(root, version)
    if found is not None:
        return found
    for stale in root.glob(f".{version}.*"):  # a fetch cut short by a stop
        shutil.rmtree(stale, ignore_errors=True)
    data = _read(url)
    check_integrity(data, integrity)
    files = _extract(data)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot write into {root} ({exc.strerror or exc})") from exc
    try:
        manifest: dict = {"version": version, "integrity": integrity, "files": {}}
        for name, content in files.items():
            (tmp / name).write_bytes(content)
            for suffix, packed in _compressed(content).items():
                (tmp / f"{name}.{suffix}").write_bytes(packed)
            manifest["files"][name] = {
                "sha256": hashlib.sha256(content).hexdigest(),
                "bytes": len(content),
            }
        import orjson  # noqa: PLC0415  (see installed)

        (tmp / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        tmp.chmod(0o755)
        target = root / version
        shutil.rmtree(target, ignore_errors=True)  # an incomplete one (no manifest) from an older layout
        os.replace(tmp, target)
    except OSError as exc:
        raise RuntimeUnavailable(f"cannot write into {root} ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def fetch_tarball(folder: Path, url: str = URL, integrity: str = INTEGRITY) -> Path:
    """The pinned tarball in folder (TARBALL), fetched and checked unless a checked copy is there: for an
    image build without network (deploy/docker/wheels.sh puts it beside the wheels)."""
    path = folder / TARBALL
    if path.is_file():
        try:
            check_integrity(path.read_bytes(), integrity)
            return path
        except RuntimeUnavailable:
            path.unlink()
    data = _read(url)
    check_integrity(data, integrity)
    fd, name = tempfile.mkstemp(prefix=f".{TARBALL}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(name).chmod(0o644)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.gateway.ortweb", description="fetches the runtime"
    )
    parser.add_argument("dir", type=Path, help="the runtime folder (the version's folder goes inside)")
    parser.add_argument("--url", default=URL, help="the tarball's address or path (default: npm's)")
    parser.add_argument(
        "--tarball-only",
        action="store_true",
        help="only fetch the checked tarball into dir (for image builds)",
    )
    parser.add_argument(
        "--from-dir", type=Path, help="take the tarball from this folder when it holds it (else --url)"
    )
    args = parser.parse_args(argv)
    url = args.url
    if args.from_dir is not None and (args.from_dir / TARBALL).is_file():
        url = str(args.from_dir / TARBALL)
    try:
        if args.tarball_only:
            print(f"onnxruntime-web {VERSION}: {fetch_tarball(args.dir, url)}")
            return 0
        manifest = install(args.dir, url)
    except (RuntimeUnavailable, OSError) as exc:
        print(f"onnxruntime-web {VERSION}: {exc}", file=sys.stderr)
        return 1
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"onnxruntime-web {VERSION} in {args.dir / VERSION} ({total / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
