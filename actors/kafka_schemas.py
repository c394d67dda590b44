"""kio's schema lookups, cached: a request or response class by (API key, version).

``kio.index.load_request_schema`` / ``load_response_schema`` resolve a dotted name with
``pkgutil.resolve_name`` on every call (an import-machinery lookup); the listener asks once
or twice per request, and the answer never changes. Unknown keys and versions raise as kio
does (nothing cached for them)."""

from __future__ import annotations

from functools import cache

from kio.index import load_request_schema as _request
from kio.index import load_response_schema as _response

load_request_schema = cache(_request)
load_response_schema = cache(_response)
