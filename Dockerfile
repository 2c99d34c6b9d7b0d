# syntax=docker/dockerfile:1
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PARLEY_VAR_DIR=/app/var

WORKDIR /app
RUN groupadd --system parley && useradd --system --gid parley --home /app parley

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=parley:parley . .
# collectstatic needs a key to import settings; this throwaway one never reaches a running container.
RUN DJANGO_SECRET_KEY=build-only-key-build-only-key-build-only python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown parley:parley /app/var

USER parley
EXPOSE 8000 8080
CMD ["gunicorn", "config.asgi:application", "--worker-class", "uvicorn_worker.UvicornWorker", \
     "--bind", "0.0.0.0:8000", "--workers", "2", "--access-logfile", "-"]
