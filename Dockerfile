# syntax=docker/dockerfile:1
# An exact tag: rebuilds get the same Python and Debian; bump it on purpose (and for security releases).
FROM python:3.11.13-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PARLEY_VAR_DIR=/app/var

WORKDIR /app
RUN groupadd --system parley && useradd --system --gid parley --home /app parley

COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root: the app user can write only var/.
COPY . .
# collectstatic needs a key to import settings; this throwaway one never reaches a running container.
RUN DJANGO_SECRET_KEY=build-only-key-build-only-key-build-only python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown parley:parley /app/var

USER parley
EXPOSE 8000 8080
# The web app (uvicorn workers, see config/gunicorn.py); the bot runs the same image with `python manage.py runbot`.
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.asgi:application"]
