"""Dockerfiles BuildKit refuses and ones it builds, shared by the unit tests of
bake.dockerfile_check and the engine test that builds each of them for real.

Every Dockerfile starts with ``ARG BASE_IMAGE=...`` on line 1 (PREAMBLE) and builds the
stage ``app``; a refused one names the line bake-ci must report and a part of its message.
"""

from __future__ import annotations

PREAMBLE = "ARG BASE_IMAGE=python:3.11-slim\n"
B = "${BASE_IMAGE}"

#: name -> (the Dockerfile after PREAMBLE, the line reported, a part of the message)
REFUSED: dict[str, tuple[str, int, str]] = {
    "unknown-instruction": (f"FROM {B} AS app\nFORM x\n", 3, "unknown instruction FORM (did you mean FROM?)"),
    "unknown-instruction-elsewhere": (
        f"FROM {B} AS other\nFORM x\nFROM {B} AS app\n",
        3,
        "unknown instruction FORM",
    ),
    "copy-one-word": (f"FROM {B} AS app\nCOPY a.txt\n", 3, "COPY needs at least one source and a destination"),
    "copy-json-one-word": (f'FROM {B} AS app\nCOPY ["a.txt"]\n', 3, "COPY needs at least one source"),
    "add-one-word": (f"FROM {B} AS app\nADD a.txt\n", 3, "ADD needs at least one source"),
    "from-two-words": (f"FROM {B} app\n", 2, "FROM takes an image and optionally `AS name`"),
    "from-not-as": (f"FROM {B} XX app\n", 2, "FROM takes an image"),
    "from-as-nothing": (f"FROM {B} AS\n", 2, "FROM takes an image"),
    "stage-name-digit": (f"FROM {B} AS 1bad\nFROM {B} AS app\n", 2, "'1bad' is not a stage name"),
    "instruction-before-from": (f"RUN true\nFROM {B} AS app\n", 2, "comes before the first FROM"),
    "env-without-value": (f"FROM {B} AS app\nENV X\n", 3, "ENV needs a value"),
    "env-without-value-elsewhere": (f"FROM {B} AS other\nENV X\nFROM {B} AS app\n", 3, "ENV needs a value"),
    "copy-from-cycle": (
        f"FROM {B} AS a\nCOPY --from=b /etc/hostname /x\nFROM a AS b\nFROM a AS app\n",
        3,
        "stage b builds on stage a: a cycle",
    ),
    "copy-from-later-stage": (
        f"FROM {B} AS app\nCOPY --from=later /etc/hostname /x\nFROM {B} AS later\n",
        3,
        "stage later (line 4) comes after stage app",
    ),
    "copy-from-later-index": (f"FROM {B} AS app\nCOPY --from=1 /etc/hostname /x\nFROM {B} AS b\n", 3, "comes after"),
    "mount-from-later-stage": (
        f"FROM {B} AS app\nRUN --mount=from=b,target=/m true\nFROM {B} AS b\n",
        3,
        "stage b (line 4) comes after stage app",
    ),
    "copy-from-itself": (f"FROM {B} AS app\nCOPY --from=app /etc/hostname /x\n", 3, "stage app reads from itself"),
    "copy-from-itself-by-index": (f"FROM {B} AS app\nCOPY --from=0 /etc/hostname /x\n", 3, "reads from itself"),
    "mount-from-itself": (f"FROM {B} AS app\nRUN --mount=from=app,target=/m true\n", 3, "reads from itself"),
    "copy-from-itself-elsewhere": (
        f"FROM {B} AS other\nCOPY --from=other /etc/hostname /x\nFROM {B} AS app\n",
        3,
        "stage other reads from itself",
    ),
    "copy-from-no-such-index": (f"FROM {B} AS app\nCOPY --from=5 /x /x\n", 3, "there is no stage 5"),
    "copy-from-no-such-index-elsewhere": (
        f"FROM {B} AS other\nCOPY --from=5 /x /x\nFROM {B} AS app\n",
        3,
        "there is no stage 5",
    ),
    "copy-from-invalid-image": (
        f"FROM {B} AS app\nCOPY --from=Bad/Ref:x /x /x\n",
        3,
        "'Bad/Ref:x' is neither a stage nor an image (repository name 'Ref' must be lowercase)",
    ),
    "copy-from-invalid-image-elsewhere": (
        f"FROM {B} AS other\nCOPY --from=Bad/Ref:x /x /x\nFROM {B} AS app\n",
        3,
        "neither a stage nor an image",
    ),
    "mount-from-invalid-image": (f"FROM {B} AS app\nRUN --mount=from=Bad/X,target=/m true\n", 3, "neither a stage"),
    "from-invalid-image-elsewhere": (
        f"FROM Python:3.11 AS other\nFROM {B} AS app\n",
        2,
        "'Python:3.11' is neither an earlier stage nor an image (repository name 'library/Python' must be lowercase)",
    ),
    "from-blank-elsewhere": (f"FROM ${{NOPE}} AS other\nFROM {B} AS app\n", 2, "the image is blank"),
}

#: name -> the Dockerfile after PREAMBLE: BuildKit builds stage app of each
ACCEPTED: dict[str, str] = {
    "duplicate-stage-names": f"FROM {B} AS app\nFROM {B} AS app\n",
    "lower-case-keywords": f"from {B} as app\ncopy a.txt /a\n",
    "copy-heredoc": f"FROM {B} AS app\nCOPY <<EOF /x\nhi\nEOF\n",
    "every-instruction": (
        f"FROM {B} AS app\nMAINTAINER me\nONBUILD RUN x\nSTOPSIGNAL 9\n"
        'SHELL ["/bin/sh", "-c"]\nVOLUME /v\nUSER root\nWORKDIR /w\nLABEL a=b\nEXPOSE 80\n'
        'CMD true\nENTRYPOINT ["true"]\nHEALTHCHECK NONE\nARG Z\nENV A=1 B=2\nENV C 3\n'
    ),
    "cycle-in-a-stage-not-built": (f"FROM {B} AS a\nCOPY --from=b /etc/hostname /x\nFROM a AS b\nFROM {B} AS app\n"),
    "copy-from-empty": f"FROM {B} AS app\nCOPY --from= a.txt /a\n",
    "copy-from-earlier-stage-any-case": (
        f"FROM {B} AS Lib\nRUN echo > /lib.txt\nFROM {B} AS app\nCOPY --from=LIB /lib.txt /\n"
    ),
    "platform-arg-in-from": f"FROM --platform=$BUILDPLATFORM {B} AS app\n",
}
