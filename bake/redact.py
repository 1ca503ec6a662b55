"""Keep credentials out of logs and messages."""

from __future__ import annotations

import re

# userinfo before a host (``user:pw@host``, ``https://token@host``) and token query parameters
_USERINFO_RE = re.compile(r"(?P<pre>^|://|[\s=,'\"])(?P<user>[^\s/@'\"=,]+)@")
_QUERY_RE = re.compile(r"(?P<key>[?&](?:token|access_token|password|secret)=)[^&\s]+", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace userinfo and token parameters with ``***``."""
    return _QUERY_RE.sub(r"\g<key>***", _USERINFO_RE.sub(r"\g<pre>***@", text))
