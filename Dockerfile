# bake-ci's own CI image, built by bake-ci itself: see [tool.bake-ci] in pyproject.toml.
# Stages: base (Python + a venv), deps (pinned dependencies only), ci (sources + package).
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS base
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv

FROM base AS deps
WORKDIR /src
# Only the file that pins dependencies: source changes never invalidate this stage.
COPY ci/requirements.txt ci/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps -r ci/requirements.txt

FROM deps AS ci
COPY . .
RUN pip install --no-deps --no-build-isolation . && pip check
CMD ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit"]
