"""Settings of a small Django site whose views cache through memcached, as Django's docs recommend since 3.2:
PyMemcacheCache. mcpool measures this CACHES entry with `--strategy django-settings`."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
ROOT_URLCONF = "mysite.urls"
INSTALLED_APPS = ["django.contrib.contenttypes"]
MIDDLEWARE = []
USE_TZ = True

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": os.environ.get("MEMCACHED_LOCATION", "127.0.0.1:11211"),
        "TIMEOUT": 300,
        "KEY_PREFIX": "mysite",
        "OPTIONS": {
            "connect_timeout": 2,
            "timeout": 2,
            "no_delay": True,
        },
    }
}
