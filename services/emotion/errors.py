"""The emotion service's edge: the HTTP status of each error its domain code raises. It raises only the
shared kinds (a bad image or boxes, an upload over the limits, a busy or unloaded model)."""

from __future__ import annotations

from services.common.errors import STATUSES as COMMON
from services.common.errors import RequestError, Status

STATUSES: dict[type[RequestError], Status] = {**COMMON}
