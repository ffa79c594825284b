"""The project's settings plus one benchmark-only URL (`/bench/floor/`, see floor_urls.py).

Used as DJANGO_SETTINGS_MODULE by bench/ingest.py, so the endpoint and the floor
view are served by the same gunicorn with the same middleware and settings.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
