# The kubetriage operator image.
#
#   docker build -t kubetriage:dev .
#   docker run --rm kubetriage:dev --help        # the entrypoint is `kubetriage run`
#
# Stage 1 builds the project's wheel; stage 2 installs only that wheel and its dependencies into
# a virtual environment, with no compiler and no source tree, and runs it as an unprivileged
# numeric user (so `runAsNonRoot` can be verified by the kubelet). tests/unit/test_image_install.py
# runs these same install steps without Docker and checks the rules below stay true.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from: the packaging metadata (its readme included) and the package.
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-deps --wheel-dir /wheels .


FROM python:3.11.14-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kubetriage" \
      org.opencontainers.image.description="Kubernetes operator that diagnoses failing workloads and escalates production changes to Linear" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubetriage/kubetriage" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/kubetriage \
    PATH=/opt/kubetriage/bin:$PATH

COPY --from=build /wheels /wheels
# The virtual environment gets no pip of its own: the base image's pip installs into it, so the
# final image's environment holds kubetriage, its dependencies, and nothing to install more with.
RUN python -m venv --without-pip /opt/kubetriage \
    && pip --python /opt/kubetriage/bin/python install --no-cache-dir /wheels/kubetriage-*.whl \
    && rm -rf /wheels

# 10001: outside the range of system and login users on common hosts; numeric, so the kubelet
# can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp

# 8080: /healthz (KUBETRIAGE_HEALTH_PORT); 9090: /metrics (KUBETRIAGE_METRICS_PORT).
EXPOSE 8080 9090

ENTRYPOINT ["kubetriage", "run"]
