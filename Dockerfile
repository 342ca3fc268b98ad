# The jitsudo bot's container image.
#   docker build -t jitsudo-bot:0.1.0 .
#   docker run --rm jitsudo-bot:0.1.0 --help
# manifests/base/deployment.yaml runs it as jitsudo-bot:0.1.0 with UID 10001 on port 3000
# (tests/test_image.py keeps those in step with this file).

# ---- builder: resolve nothing, only install the pinned wheels into a venv ----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A venv without pip of its own: the final image copies it and has no installer in it.
RUN python -m venv --without-pip /opt/venv

# The runtime dependencies first, exactly as pinned, so this layer is cached while only
# the bot's code changes. Every one has a binary wheel, so no compiler is needed.
COPY requirements.lock /src/requirements.lock
RUN pip --python /opt/venv/bin/python install --only-binary=:all: \
        -r /src/requirements.lock

# Then the bot itself, without dependencies (the lock already has them all; pip check
# fails the build if it does not).
COPY pyproject.toml README.md /src/
COPY bot /src/bot
RUN pip --python /opt/venv/bin/python install --no-deps /src \
    && pip --python /opt/venv/bin/python check

# ---- final: the slim base, the venv, a non-root user; no pip cache, no compilers ----
FROM python:3.11-slim

LABEL org.opencontainers.image.title="jitsudo-bot" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Temporary, approved Kubernetes access from Slack"

# A numeric UID, so that Kubernetes can check runAsNonRoot without a passwd lookup.
RUN groupadd --system --gid 10001 jitsudo \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/jitsudo \
        --no-create-home --shell /usr/sbin/nologin jitsudo \
    && install -d -o 10001 -g 10001 /var/lib/jitsudo

COPY --from=builder /opt/venv /opt/venv

# pip compiled the bytecode in the builder; the root filesystem is read-only in the cluster.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JITSUDO_CONFIG=/etc/jitsudo/jitsudo.yaml

USER 10001:10001
WORKDIR /var/lib/jitsudo
EXPOSE 3000

ENTRYPOINT ["jitsudo-bot"]
CMD ["serve"]
