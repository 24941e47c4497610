# A plain image of the service on its embedded defaults; the slim multi-stage, non-root image with a
# health check is the deployment issue's work.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY api ./api
COPY db ./db
COPY service ./service
COPY watcher ./watcher
COPY worker ./worker
RUN pip install --no-cache-dir -e .
EXPOSE 9000
CMD ["whisper-transcriber", "serve", "--host", "0.0.0.0"]
