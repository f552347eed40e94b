"""Reads an upload from a request: a multipart field `image` (plus the optional `boxes` field) or a
raw image body.

Starlette's own form parser spools files over 1 MB to a temporary file on disk; uploads must never
touch disk, so the body is read into memory under a size cap and parsed with python-multipart here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.common.errors import ApiError, too_large
from services.emotion.imaging import ACCEPTED, SUPPORTED_MEDIA_TYPES

FIELD = "image"
# Optional multipart field: the previous frame's face boxes, for region-of-interest detection.
BOXES_FIELD = "boxes"
# 20 boxes of four numbers as JSON fit easily; anything longer is not a box list.
MAX_BOXES_BYTES = 4096
# Room for the multipart boundaries and part headers around the image itself.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class Upload:
    image: bytes
    boxes: bytes | None = None  # the raw `boxes` field, parsed by the pipeline's caller


def _multipart_fields(body: bytes, boundary: bytes | None, max_bytes: int) -> Upload:
    if not boundary:
        raise ApiError(422, "multipart body without a boundary")
    parts: list[tuple[dict[bytes, bytes], bytearray]] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append(({}, bytearray()))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(422, f"malformed multipart body: {exc}") from exc
    fields: dict[bytes, bytearray] = {}
    for headers, data in parts:
        _, options = parse_options_header(headers.get(b"content-disposition"))
        fields.setdefault(options.get(b"name", b""), data)
    image = fields.get(FIELD.encode())
    if image is None:
        raise ApiError(422, f"multipart body has no '{FIELD}' field")
    if len(image) > max_bytes:
        raise too_large(max_bytes)
    boxes = fields.get(BOXES_FIELD.encode())
    if boxes is not None and len(boxes) > MAX_BOXES_BYTES:
        raise ApiError(422, f"'{BOXES_FIELD}' field too long: at most {MAX_BOXES_BYTES} bytes")
    return Upload(bytes(image), None if boxes is None else bytes(boxes))


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The image's bytes (and a multipart body's `boxes` field). A raw body must declare an image
    type; a multipart file is judged later by its bytes alone, since browsers and HTTP clients label
    file parts unreliably."""
    media, options = parse_options_header(request.headers.get("content-type"))
    media_type = media.decode("latin-1").lower()
    multipart = media_type == "multipart/form-data"
    cap = max_bytes + MULTIPART_OVERHEAD if multipart else max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > cap:
            raise too_large(max_bytes)
    if not body:
        raise ApiError(422, f"empty body: send a {ACCEPTED} image")
    if multipart:
        return _multipart_fields(bytes(body), options.get(b"boundary"), max_bytes)
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise ApiError(
            415,
            f"unsupported Content-Type {media_type or '(none)'}: send one of "
            f"{', '.join(sorted(SUPPORTED_MEDIA_TYPES))}, or multipart/form-data with an '{FIELD}' field",
        )
    return Upload(bytes(body))
