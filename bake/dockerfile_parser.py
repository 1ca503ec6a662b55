"""Reading a Dockerfile the way BuildKit's parser does, as far as fingerprints need it.

The rules follow BuildKit's ``frontend/dockerfile/parser``: parser directives at the top
(``# escape=`` sets the escape and line-continuation character), comment lines dropped,
also inside a continuation, continuation lines joined with nothing in between (their
leading whitespace kept), heredoc bodies (``RUN <<EOF``, ``COPY <<EOF /dst``) read as
the instruction's content and never as instructions, ``--flags`` split off the front,
JSON and shell forms. What the instructions mean (the stages, what each depends on and
reads) is bake/dockerfile.py's.

Why this module and not the ``dockerfile`` package (which wraps BuildKit's Go parser):
it ships binary wheels for x86-64 Linux and Windows only, so installing bake-ci on an
arm64 CI runner, a Mac or Alpine would need a Go toolchain.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field

_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)([^<]*)$")
_HEREDOC_COMMANDS = ("ADD", "COPY", "RUN")
_BOM = "\ufeff"


def _continuation_re(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(rf"([^{e}])?{e}[ \t]*\Z")


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    chomp: bool = False


@dataclass(frozen=True)
class Instruction:
    """One instruction as BuildKit's parser sees it."""

    cmd: str  # upper case
    flags: tuple[str, ...]  # ``--key=value`` with quotes removed, in order
    args: tuple[str, ...]  # whitespace-split words (shell form) or the JSON array's strings
    json: bool
    #: The logical line (continuations joined as BuildKit joins them) and any heredoc bodies.
    text: str
    heredocs: tuple[Heredoc, ...] = ()
    #: The line it starts on (1-based), for messages.
    line: int = field(default=0, compare=False)

    def flag(self, key: str) -> str | None:
        """The value of the last ``--key=...`` flag (``""`` for a bare ``--key``), else None."""
        values = self.flag_values(key)
        return values[-1] if values else None

    def flag_values(self, key: str) -> list[str]:
        out = []
        for flag in self.flags:
            name, eq, value = flag[2:].partition("=")
            if name.lower() == key:
                out.append(value if eq else "")
        return out


@dataclass(frozen=True)
class Dockerfile:
    directives: dict[str, str]
    escape: str
    instructions: tuple[Instruction, ...]


def _is_space(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Zs"


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's ``extractBuilderFlags``: leading ``--flag`` words, and the rest of the line."""
    words: list[str] = []
    word = ""
    quote = ""
    blank_ok = False
    phase = "spaces"
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if word == "--":
                    return line[pos:], words
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word += ch
        pos += 1
    return "", words


def _json_array(rest: str) -> list[str] | None:
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def _raw_words(line: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (for finding ``<<EOF`` words)."""
    words: list[str] = []
    word = ""
    quote = ""
    in_word = False
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            word += ch
            if ch == "\\" and quote == '"' and i + 1 < len(line):
                word += line[i + 1]
                i += 1
            elif ch == quote:
                quote = ""
        elif ch == "\\" and i + 1 < len(line):
            word += ch + line[i + 1]
            in_word = True
            i += 1
        elif ch in "'\"":
            quote = ch
            word += ch
            in_word = True
        elif _is_space(ch):
            if in_word:
                words.append(word)
            word, in_word = "", False
        else:
            word += ch
            in_word = True
        i += 1
    if in_word:
        words.append(word)
    return words


def unquote(word: str, escape: str = "\\") -> str | None:
    """A word with shell quotes and escapes removed, as BuildKit's lexer reads a COPY source;
    None if it uses a variable (``$``) or its quotes are unbalanced."""
    out = ""
    i = 0
    quote = ""
    while i < len(word):
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out += ch
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch == "$":
                return None
            elif ch == escape and i + 1 < len(word) and word[i + 1] in ('"', "$", escape):
                out += word[i + 1]
                i += 1
            else:
                out += ch
        elif ch in "'\"":
            quote = ch
        elif ch == "$":
            return None
        elif ch == escape:
            if i + 1 < len(word):
                out += word[i + 1]
                i += 1
        else:
            out += ch
        i += 1
    return None if quote else out


def heredoc_word(word: str) -> tuple[str, bool] | None:
    """``(name, chomp)`` if ``word`` opens a heredoc (``<<EOF``, ``<<-"EOF"``, ``2<<EOF``)."""
    match = _HEREDOC_RE.match(word)
    if not match or not match[3]:
        return None
    name = unquote(match[3])
    if not name or _WHITESPACE_RE.search(name):
        return None
    return name, match[2] == "-"


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_newline(line).lstrip().startswith("#")


def parse(text: str) -> Dockerfile:
    """Every instruction of a Dockerfile, as BuildKit's parser reads them (never raises:
    what BuildKit would reject is read as best it can be, the build reports the error)."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the text's final newline ends the last line, it starts none
    if lines and lines[0].startswith(_BOM):
        lines[0] = lines[0][1:]
    directives: dict[str, str] = {}
    escape = "\\"
    continuation = _continuation_re(escape)
    directives_done = False
    out: list[Instruction] = []
    i = 0

    def directive(line: str) -> None:
        nonlocal directives_done, escape, continuation
        if directives_done:
            return
        match = _DIRECTIVE_RE.match(line)
        key = match[1].lower() if match else ""
        if not match or key not in _DIRECTIVES or key in directives:
            directives_done = True
            return
        directives[key] = match[2]
        if key == "escape" and match[2] in ("\\", "`"):
            escape = match[2]
            continuation = _continuation_re(escape)

    def trim_continuation(line: str) -> tuple[str, bool]:
        if continuation.search(line):
            return continuation.sub(lambda m: m[1] or "", line, count=1), False
        return line, True

    while i < len(lines):
        raw = _trim_newline(lines[i]).lstrip()
        i += 1
        start = i
        directive(raw)
        if raw.startswith("#"):
            continue
        line, done = trim_continuation(raw)
        if done and not line:
            continue
        while not done and i < len(lines):
            nxt = _trim_newline(lines[i])
            i += 1
            directive(nxt)
            if _is_comment(nxt) or not nxt.strip():
                continue
            part, done = trim_continuation(nxt)
            line += part
        parts = _WHITESPACE_RE.split(line.strip(), maxsplit=1)
        cmd = parts[0].upper()
        rest, flags = _extract_flags(parts[1]) if len(parts) == 2 else ("", [])
        rest = rest.strip()
        args: list[str] | None = None
        is_json = False
        if cmd in ("ADD", "COPY", "RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME"):
            args = _json_array(rest)
            is_json = args is not None
        if args is None:
            args = [w for w in _WHITESPACE_RE.split(rest) if w] if cmd != "RUN" else [rest] if rest else []
        body = line
        heredocs: list[Heredoc] = []
        if cmd in _HEREDOC_COMMANDS and not is_json and "<<" in line:
            for word in _raw_words(line):
                opened = heredoc_word(word)
                if opened is None:
                    continue
                name, chomp = opened
                content = ""
                while i < len(lines):
                    doc_line = lines[i]
                    i += 1
                    body += "\n" + doc_line
                    candidate = _trim_newline(doc_line)
                    if (candidate.lstrip("\t") if chomp else candidate) == name:
                        break
                    content += doc_line + "\n"
                heredocs.append(Heredoc(name, content, chomp))
        out.append(Instruction(cmd, tuple(flags), tuple(args), is_json, body, tuple(heredocs), start))
    return Dockerfile(directives, escape, tuple(out))
