"""WSGI entry point of the peer shop, for gunicorn (see oscar_peer.py)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oscar_settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  after the settings module is chosen

application = get_wsgi_application()
