"""Reading an uploaded image, the same in the emotion service and the gateway: a raw image body, or
multipart/form-data with an `image` field and, for live video, an optional `boxes` field.

The body is read into memory under a size cap (413 as soon as it is over, from the declared length when
there is one), never spooled to disk as Starlette's form parser does with files over 1 MB. A raw body
must declare an image type (415 otherwise); a multipart file is judged later by its bytes alone, since
browsers and HTTP clients label file parts unreliably. The gateway forwards what read_body returns as it
came; the emotion service takes the fields apart with image_fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from services.common.errors import InvalidRequest, Unsupported, too_large

FIELD = "image"
# Optional multipart field: the previous frame's face boxes, for region-of-interest detection.
BOXES_FIELD = "boxes"
# 20 boxes of four numbers as JSON fit easily; anything longer is not a box list.
MAX_BOXES_BYTES = 4096
# Room for the multipart boundaries, part headers and the `boxes` field around the image itself.
MULTIPART_OVERHEAD = 64 * 1024
# The media types that announce an image on a raw body (the emotion service decodes what the bytes are).
SUPPORTED_MEDIA_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif"}
)
ACCEPTED = "JPEG, PNG, WebP, HEIC or AVIF"
# What an image route answers for a bad upload (its `responses=`, with error_responses).
UPLOAD_ERRORS = {
    413: "upload or pixel count over the limit",
    415: f"not {ACCEPTED}",
    422: "empty, undecodable or truncated image, or a bad parameter",
}

_BINARY = {"type": "string", "format": "binary"}
# The body is read by hand, so OpenAPI is told what it accepts: `openapi_extra` of every image route.
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {
                        FIELD: _BINARY,
                        BOXES_FIELD: {
                            "type": "string",
                            "description": "optional, live video: the previous frame's faces[].box as a "
                            "JSON list; only the region around them is searched (see `region`)",
                        },
                    },
                }
            },
            **{media: {"schema": _BINARY} for media in sorted(SUPPORTED_MEDIA_TYPES)},
        },
    }
}


@dataclass(frozen=True)
class Body:
    """An upload as it came: its bytes and Content-Type (already checked: size, not empty, an image
    type or multipart)."""

    data: bytes
    content_type: str
    boundary: bytes | None  # set for multipart/form-data

    @property
    def multipart(self) -> bool:
        return self.boundary is not None


@dataclass(frozen=True)
class Upload:
    image: bytes
    boxes: bytes | None = None  # the raw `boxes` field, parsed by the emotion service's pipeline


async def read_body(request: Request, max_bytes: int) -> Body:
    """The body of an image upload of at most max_bytes of image (413), not empty (422), a raw image
    type or multipart (415)."""
    content_type = request.headers.get("content-type", "")
    media, options = parse_options_header(content_type)
    media_type = media.decode("latin-1").lower()
    multipart = media_type == "multipart/form-data"
    cap = max_bytes + MULTIPART_OVERHEAD if multipart else max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        raise too_large(max_bytes)
    # Chunks are joined once at the end: a frame usually arrives in one, which join returns as is.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large(max_bytes)
        chunks.append(chunk)
    if not size:
        raise InvalidRequest(f"empty body: send a {ACCEPTED} image")
    if multipart:
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidRequest("multipart body without a boundary")
        return Body(b"".join(chunks), content_type, boundary)
    if media_type not in SUPPORTED_MEDIA_TYPES:
        raise Unsupported(
            f"unsupported Content-Type {media_type or '(none)'}: send one of "
            f"{', '.join(sorted(SUPPORTED_MEDIA_TYPES))}, or multipart/form-data with an '{FIELD}' field",
        )
    return Body(b"".join(chunks), content_type, None)


def image_fields(body: Body, max_bytes: int) -> Upload:
    """The image (and a multipart body's `boxes` field)."""
    if body.boundary is None:
        return Upload(body.data)
    fields = _multipart_fields(body.data, body.boundary)
    image = fields.get(FIELD.encode())
    if image is None:
        raise InvalidRequest(f"multipart body has no '{FIELD}' field")
    if len(image) > max_bytes:
        raise too_large(max_bytes)
    boxes = fields.get(BOXES_FIELD.encode())
    if boxes is not None and len(boxes) > MAX_BOXES_BYTES:
        raise InvalidRequest(f"'{BOXES_FIELD}' field too long: at most {MAX_BOXES_BYTES} bytes")
    return Upload(image, boxes)


def _multipart_fields(data: bytes, boundary: bytes) -> dict[bytes, bytes]:
    """Each part's bytes by field name (the first part of a name wins)."""
    parts: list[tuple[dict[bytes, bytes], list[bytes]]] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append(({}, []))

    def on_header_field(chunk: bytes, start: int, end: int) -> None:
        header_field.extend(chunk[start:end])

    def on_header_value(chunk: bytes, start: int, end: int) -> None:
        header_value.extend(chunk[start:end])

    def on_header_end() -> None:
        parts[-1][0][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(chunk: bytes, start: int, end: int) -> None:
        parts[-1][1].append(chunk[start:end])

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
        parser.write(data)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from exc
    fields: dict[bytes, bytes] = {}
    for headers, pieces in parts:
        _, options = parse_options_header(headers.get(b"content-disposition"))
        fields.setdefault(options.get(b"name", b""), b"".join(pieces))
    return fields


async def upload_body(request: Request) -> Body:
    """The upload under the service's own `max_upload_bytes` setting (app.state.settings)."""
    return await read_body(request, request.app.state.settings.max_upload_bytes)


UploadBody = Annotated[Body, Depends(upload_body)]
