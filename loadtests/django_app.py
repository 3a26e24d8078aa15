"""The benchmark's Django application (pip install django) in one module: settings, views
and URLs for the same four URLs as loadtests/wsgi_app.py; `application` is the WSGI app."""

from __future__ import annotations

from collections.abc import Iterator

import django
from django.conf import settings

from .wsgi_app import BIG_BODY, CHUNK, CHUNKS

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="loadtests-only-not-a-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
        DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

__all__ = ["application"]


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"Hello, world!", content_type="text/plain; charset=utf-8")


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(len(request.body)), content_type="text/plain")


def big(request: HttpRequest) -> HttpResponse:
    return HttpResponse(BIG_BODY, content_type="application/octet-stream")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def pieces() -> Iterator[bytes]:
        for _ in range(CHUNKS):
            yield CHUNK

    return StreamingHttpResponse(pieces(), content_type="text/plain")


urlpatterns = [path("", hello), path("upload", upload), path("big", big),
               path("stream", stream)]

application = WSGIHandler()
