# syntax=docker/dockerfile:1.6
# Build:  docker build --build-context models=../shared/models -t verification-service .
# Without --build-context the model installer fetches each file from its manifest URL
# (and still checks its sha256). deploy/compose.yaml builds it the same way; deploy/k8s
# runs it (README "Scaling out").
FROM scratch AS models

FROM python:3.11-slim-bookworm
# libGL/libglib: opencv-contrib-python (brought by mediapipe) links against them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models ./models
COPY service ./service
COPY web ./web
RUN python -m venv /app/.venv \
    && /app/.venv/bin/pip install --no-cache-dir .
COPY --from=models / /opt/model-source/
RUN /app/.venv/bin/python -m models.install --source-dir /opt/model-source --dest /app/.models \
    && rm -rf /opt/model-source
RUN useradd --system --uid 10001 --no-create-home svc
USER svc
ENV SERVICE_HOST=0.0.0.0 SERVICE_PORT=8080 SERVICE_MODEL_DIR=/app/.models SERVICE_WEB_DIR=/app/web
# HTTP only: WebRTC media uses ephemeral UDP ports, reached through a TURN relay when
# the container's addresses are not reachable (deploy/, README "Scaling out").
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["/app/.venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
CMD ["/app/.venv/bin/python", "-m", "service"]
