"""Keep credentials out of everything bake-ci prints or writes for people to read.

:func:`redact` is for free text (log lines, command lines, error messages); it errs on
the side of hiding. It replaces with ``***``:

- the userinfo of a URL-like value, ``scheme://USER:PASSWORD@host/...``, ``scheme://TOKEN@host``
  and scheme-less ``USER:PASSWORD@host/path`` (as in ``BAKE_CI_BASE_IMAGE=user:p@ss word@host/img``).
  The password may hold any character: the userinfo runs from the start of the value to the
  *last* ``@host`` of the line, so spaces, ``@``, ``:`` and ``/`` in it are hidden too. Two
  limits keep ordinary text readable: a bare TOKEN holds no space, ``/`` or ``:`` (so that
  ``git+https://github.com/acme/app@v1.2`` stays), and a scheme-less password does not start
  with a space (so that ``error: see me@host/x`` stays). Credentials from bake-ci's own
  configuration are registered (below), so they are hidden whatever they hold;
- ``--password X``, ``--token X`` (and ``--x-password=X``), ``-p X`` on a ``login`` line,
  ``password=X``, ``token=X``, ``access_token=X``, ``PIP_TOKEN=X`` (any key ending in
  password, token, secret or api key), JSON/dict entries such as ``"password": "X"`` or
  ``"auth": "X"``, and ``Authorization: Bearer X`` / ``Basic X`` headers. Values that are
  shell words (``shlex.join`` output: quoted with ``'…'`` or ``"…"``) are hidden whole,
  spaces included; an unquoted ``key=value`` in prose ends at the first space;
- every secret registered with the command's :class:`Redactor` (exact text, wherever it
  appears): the config registers the userinfo of ``registry``, ``base-image`` and ``args``
  values (and of their environment overrides); whoever reads docker's credentials should
  register them too. :func:`register`, :func:`redact` and friends are the methods of the
  one redactor of the running command, :data:`REDACTOR`.

:func:`redact_definition` is for a bake definition (or any JSON-like object) that is
about to be *shown*: ``bake-ci plan`` must print ``redact_definition(plan.definition)``,
while the file buildx reads keeps the real values (buildx needs them).
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any

MASK = "***"
#: Registered secrets shorter than this are not replaced (they would mangle ordinary text).
MIN_SECRET = 4

# A host after ``@``: a name or IPv4 with an optional port, then the end of the value.
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
#: ``@host`` that ends a URL's userinfo (not ``@sha256:…``, a digest).
_AT_URL_HOST = re.compile(rf"@(?![A-Za-z0-9]+:[0-9a-fA-F]{{32,}})(?={_HOST}(?::[0-9]+)?(?:[/?#\s\"'`,;)\]>]|$))")
#: ``@host/...`` or ``@host:port``: what ends the userinfo of a scheme-less value.
_AT_PATH_HOST = re.compile(rf"@(?![A-Za-z0-9]+:[0-9a-fA-F]{{32,}})(?={_HOST}(?:/|:[0-9]+(?:[/\s\"'`,;)\]>]|$)))")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: ``user:`` at the start of a word: where a scheme-less userinfo can start.
#: (Not ``word: `` as in prose: a scheme-less password that starts with a space is hidden when
#: it is registered, as every credential in bake-ci's own configuration is.)
_USER_START = re.compile(r"(?:^|(?<=[\s=,'\"`(\[<]))[^\s/@:=,'\"`()\[\]<>]+:(?!//|\s)")

_USER_PART = re.compile(r"[^\s/:]*")

_SECRET_NAME = r"[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|token|secret|api[_-]?key|credentials?)"
# A shell word: quoted parts ('…', "…") and unquoted characters up to a space or operator.
_WORD = r"""(?:'[^'\n]*(?:'|$)|"(?:[^"\\\n]|\\.)*(?:"|$)|\\.|[^\s'"\\&;|<>()#])+"""
_WORD_RE = re.compile(_WORD)
#: ``key=value`` where the key names a secret (also ``?access_token=…`` in a query string).
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9_.-]){_SECRET_NAME}=")
#: ``--password X``, ``--password=X``, ``--registry-token X`` (not ``--password-stdin``, not ``--secret``).
_FLAG = re.compile(r"(?i)(?<![\w-])--(?:[a-z0-9]+-)*(?:password|passwd|token)(?:=|[ \t]+)")
_LOGIN = re.compile(r"(?i)\blogin\b")
_SHORT_P = re.compile(r"(?<![\w-])-p(?:=|[ \t]+)")
#: ``"password": "…"`` / ``'token': '…'`` in JSON or a Python repr.
_MAPPING_ENTRY = re.compile(
    rf"""(?i)(?P<head>(?P<kq>["'])(?:{_SECRET_NAME}|auth|identitytoken|registrytoken)(?P=kq)\s*:\s*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*(?:"|$)|'(?:[^'\\\n]|\\.)*(?:'|$))"""
)
_AUTHORIZATION = re.compile(
    r"""(?i)(?P<q>["']?)\b(?:proxy-)?authorization(?P<kq>["']?)\s*[:=]\s*(?P<vq>["']?)"""
    r"""(?:(?:bearer|basic|token|digest|negotiate|bot)\b[ \t]*)?"""
)
_QUICK = re.compile(r"(?i)@|password|passwd|passphrase|token|secret|api.?key|credential|auth|-p\b")


def userinfo(value: str) -> str | None:
    """The credentials of a single value such as ``user:pw@host/img`` or ``https://t@host``, if any.

    Unlike :func:`redact`, the whole string is one value: everything between the scheme
    (if any) and the last ``@`` followed by a host is userinfo.
    """
    scheme = _SCHEME.match(value)
    start = scheme.end() if scheme else 0
    ats = [m.start() for m in _AT_URL_HOST.finditer(value, start)]
    if not ats:
        return None
    info = value[start : ats[-1]]
    if scheme is None and ":" not in info:
        return None  # user@host (ssh, e-mail) carries no password
    return info


class Redactor:
    """The credentials a run has learned (exact text), and redaction that hides them.

    Its patterns hide what looks like a credential; registered secrets are hidden
    wherever they appear. Also a structlog processor (:meth:`__call__`): every string
    field of a log line is redacted before it is rendered.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Longest first, so that a secret holding another is hidden whole.
        self._secrets: tuple[str, ...] = ()

    def register(self, secret: str) -> None:
        """Hide ``secret`` (exact text) in everything :meth:`redact` sees from now on.

        For credentials bake-ci reads (docker's config, userinfo in a configured value).
        Secrets shorter than :data:`MIN_SECRET` characters are ignored.
        """
        if len(secret) < MIN_SECRET:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def forget_all(self) -> None:
        """Drop every registered secret (a new command starts with none)."""
        with self._lock:
            self._secrets = ()

    def register_value(self, value: str) -> None:
        """Register the userinfo of a configured value, and its password part, as secrets."""
        info = userinfo(value)
        if info is None:
            return
        self.register(info)
        _user, sep, password = info.partition(":")
        if sep:
            self.register(password)

    def redact(self, text: str) -> str:
        """``text`` with every credential it appears to hold replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if not _QUICK.search(text):
            return text
        return "\n".join(_redact_line(line) for line in text.split("\n"))

    def redact_value(self, value: str) -> str:
        """One configured value (an image, a registry, a build arg): its userinfo hidden."""
        info = userinfo(value)
        if info is not None:
            value = value.replace(info, MASK, 1)
        return self.redact(value)

    def redact_definition(self, obj: Any) -> Any:
        """A copy of a bake definition (or any JSON-like value) fit to print.

        Every string is passed through :meth:`redact_value`, and the value of every key
        that names a secret (``PIP_TOKEN``, ``password``, ``api-key``) is replaced whole.
        The original is not changed: buildx must still read the real values.
        """
        if isinstance(obj, dict):
            return {key: self._redact_entry(key, value) for key, value in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_definition(item) for item in obj]
        if isinstance(obj, str):
            return self.redact_value(obj)
        return obj

    def _redact_entry(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and isinstance(value, str) and value and _SECRET_KEY.fullmatch(key):
            return MASK
        return self.redact_definition(value)

    def __call__(self, logger: object, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """structlog's processor: each string field of a log line, redacted."""
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.redact(value)
        return event


# Credentials are registered where they are read (bake.config, bake.auth) and redaction is
# asked for in about twenty places, most of them with no run object in hand: they share
# this one redactor, emptied at the start of every command (:func:`start`), and bound to
# structlog's configuration as a processor (bake.logs).
REDACTOR = Redactor()
register = REDACTOR.register
register_value = REDACTOR.register_value
forget_all = REDACTOR.forget_all
redact = REDACTOR.redact
redact_value = REDACTOR.redact_value
redact_definition = REDACTOR.redact_definition


def start() -> Redactor:
    """The redactor of a new command: nothing an earlier command registered is kept."""
    REDACTOR.forget_all()
    return REDACTOR


_SECRET_KEY = re.compile(rf"(?i){_SECRET_NAME}[A-Za-z0-9_.-]*?")


# -- free text, one line at a time ---------------------------------------------------------


def _redact_line(line: str) -> str:
    spans = list(_userinfo_spans(line))
    spans += _value_spans(line)
    return _apply(line, spans)


def _userinfo_spans(line: str) -> Iterable[tuple[int, int, str]]:
    """``(start, end, replacement)`` for each URL userinfo in ``line``."""
    if "@" not in line:
        return
    url_ats = [m.start() for m in _AT_URL_HOST.finditer(line)]
    if not url_ats:
        return
    path_ats = [m.start() for m in _AT_PATH_HOST.finditer(line)]
    starts = sorted(
        [(m.end(), True, m.start()) for m in _SCHEME.finditer(line)]
        + [(m.start(), False, m.start()) for m in _USER_START.finditer(line)]
    )
    done = 0
    for start, is_url, token in starts:
        if start < done:
            continue
        ats = url_ats if is_url else path_ats
        i = bisect.bisect_left(ats, start)
        if i == len(ats):
            continue
        end = ats[-1]  # the last host of the line: the password may hold '@', ':', '/' and spaces
        if end == start:  # "x://@host": read as the scheme-less "USER:PASSWORD@host", password "//"
            if token >= done:
                yield token, end, MASK
                done = end
            continue
        if is_url:  # the user part (up to ':' or the host's '@') holds no space and no '/'
            user = _USER_PART.match(line, start)
            user_end = user.end() if user else start
            if user_end < end and line[user_end] != ":":
                continue
        yield start, end, MASK
        done = end


def _value_spans(line: str) -> list[tuple[int, int, str]]:
    """Spans of values that follow a secret's name: flags, ``key=``, mapping entries, headers."""
    spans: list[tuple[int, int, str]] = []
    if not _QUICK.search(line):
        return spans
    for m in _AUTHORIZATION.finditer(line):
        start = m.end()
        if m["q"] and not m["kq"]:  # 'Authorization: Bearer X' as one shell word
            end, close = _word_end(line, m.start()), m["q"]
        elif m["vq"]:  # "Authorization": "Bearer X"
            end, close = _quoted_end(line, m.end("vq") - 1), ""
        else:  # an HTTP header: the value runs to the end of the line
            end, close = len(line), ""
        if end > start:
            spans.append((start, end, MASK + close))
    for m in _MAPPING_ENTRY.finditer(line):
        quote = m["value"][0]
        spans.append((m.start("value"), m.end("value"), quote + MASK + quote))
    patterns = [_KEY_VALUE, _FLAG]
    login = _LOGIN.search(line)
    for pattern in patterns:
        for m in pattern.finditer(line):
            spans.append(_value_span(line, m.start(), m.end()))
    if login:
        for m in _SHORT_P.finditer(line, login.end()):
            spans.append(_value_span(line, m.start(), m.end()))
    return [s for s in spans if s[1] > s[0]]


def _value_span(line: str, key_start: int, value_start: int) -> tuple[int, int, str]:
    before = line[key_start - 1] if key_start > 0 else ""
    if before in ("'", '"'):  # 'password=p w' / '--password=p w': the quoted word is the value's end
        return value_start, _word_end(line, key_start - 1), MASK + before
    match = _WORD_RE.match(line, value_start)
    return value_start, match.end() if match else value_start, MASK


def _word_end(line: str, start: int) -> int:
    match = _WORD_RE.match(line, start)
    return match.end() if match else len(line)


def _quoted_end(line: str, quote_at: int) -> int:
    """The end of the quoted string opening at ``quote_at`` (its closing quote excluded)."""
    quote = line[quote_at]
    i = quote_at + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i
        i += 1
    return len(line)


def _apply(line: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return line
    spans.sort()
    out: list[str] = []
    pos = 0
    for start, end, replacement in spans:
        if end <= pos:
            continue
        if start < pos:  # overlapping: extend the hidden part
            start = pos
            if out and out[-1].endswith(MASK):
                replacement = replacement.removeprefix(MASK)
        out.append(line[pos:start])
        out.append(replacement)
        pos = end
    out.append(line[pos:])
    return "".join(out)
