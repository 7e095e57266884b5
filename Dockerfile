# syntax=docker/dockerfile:1
# Magpie in a container: the wheel is built in a stage with Node.js (the build backend bundles
# the browser page), then installed into a slim Python image that runs as a non-root user.
#
#   docker build -t magpie .
#   docker run -p 5001:5001 -p 5200:5200 -p 5100:5100 -v magpie-data:/var/lib/magpie magpie
#
# Settings are MAGPIE_* variables (docs/operations.md); secrets come from files:
# MAGPIE_API_KEY_FILE, MAGPIE_WEBHOOK_SECRET_FILE, MAGPIE_STORE_URL_FILE, MAGPIE_BUS_URL_FILE.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM ${PYTHON_IMAGE}
ARG MAGPIE_UID=10001
RUN groupadd --system --gid ${MAGPIE_UID} magpie \
    && useradd --system --uid ${MAGPIE_UID} --gid magpie --home-dir /var/lib/magpie \
        --no-create-home --shell /usr/sbin/nologin magpie \
    && install -d -o magpie -g magpie -m 0700 /var/lib/magpie
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist
COPY docker/entrypoint.sh /usr/local/bin/magpie-entrypoint
# The image's settings (the entrypoint test applies exactly these ENV lines).
ENV MAGPIE_DATA_DIR=/var/lib/magpie \
    MAGPIE_HOST=0.0.0.0 \
    MAGPIE_API_PORT=5001 \
    MAGPIE_WS_PORT=5200 \
    MAGPIE_TCP_PORT=5100 \
    MAGPIE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/magpie"]
EXPOSE 5001 5200 5100
USER magpie
WORKDIR /var/lib/magpie
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["magpie-entrypoint", "healthcheck"]
ENTRYPOINT ["magpie-entrypoint"]
CMD ["serve"]
