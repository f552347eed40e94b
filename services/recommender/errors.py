"""The recommender's edge: the HTTP status of each error its domain code raises. It raises only the
shared kinds (a bad parameter, no catalog yet)."""

from __future__ import annotations

from services.common.errors import STATUSES as COMMON
from services.common.errors import RequestError, Status

STATUSES: dict[type[RequestError], Status] = {**COMMON}
