# syntax=docker/dockerfile:1.6
# Build:  docker build --build-context models=../shared/models -t verification-service .
# Without --build-context the model installer fetches each file from its manifest URL
# (and still checks its sha256). deploy/compose.yaml builds it the same way; deploy/k8s
# runs it (README "Scaling out"). tests/test_image.py builds and runs it with podman.
#
# Two stages: `build` makes the virtualenv and the verified models; the final image gets
# only those, the web page and the shared libraries they load (1.8 GB -> see README
# "Container image" for the measured sizes).
FROM scratch AS models

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# libGL/libglib: opencv-contrib-python (brought by mediapipe) links against them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /opt/gl && cp -a /usr/lib/*-linux-gnu/libGL.so.1* /usr/lib/*-linux-gnu/libGLX.so.0* /opt/gl/
WORKDIR /app
# The dependencies in a layer of their own: rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -m venv /app/.venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && /app/.venv/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY models ./models
COPY service ./service
RUN /app/.venv/bin/pip install --no-deps .
COPY --from=models / /opt/model-source/
RUN /app/.venv/bin/python -m models.install --source-dir /opt/model-source --dest /app/.models
# Never imported by the service (checked: not in sys.modules after start-up and
# requests; tests/test_image.py runs face comparison and silent liveness in the image):
# onnx converts the MiniFASNet weights at model install only; jax, jaxlib and scipy come
# with mediapipe for its model maker, not for the inference API used here. pip itself
# and setuptools are not needed to run either.
RUN /app/.venv/bin/pip uninstall -y -q onnx jax jaxlib scipy \
    && /app/.venv/bin/python -m pip uninstall -y -q pip setuptools

FROM python:3.11-slim-bookworm
# libGL.so.1 and libGLX.so.0 (glvnd) are all opencv's Qt needs to load; copied from the
# build stage instead of installing libgl1, whose Mesa drivers and LLVM (~220 MB) a
# headless service never loads. libglvnd0 and libx11-6 are what those two link to.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libglvnd0 libx11-6 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/gl/ /usr/local/lib/
RUN ldconfig
RUN useradd --system --uid 10001 --no-create-home svc
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/.models /app/.models
COPY web ./web
USER svc
ENV SERVICE_HOST=0.0.0.0 SERVICE_PORT=8080 SERVICE_MODEL_DIR=/app/.models SERVICE_WEB_DIR=/app/web
# HTTP only: WebRTC media uses ephemeral UDP ports, reached through a TURN relay when
# the container's addresses are not reachable (deploy/, README "Scaling out").
EXPOSE 8080
# The port the service listens on: SERVICE_PORT as the container was started with.
HEALTHCHECK --interval=30s --timeout=3s \
    CMD ["/app/.venv/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('SERVICE_PORT', '8080'), timeout=2)"]
CMD ["/app/.venv/bin/python", "-m", "service"]
