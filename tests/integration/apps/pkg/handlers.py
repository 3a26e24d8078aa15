"""A handler inside a package, for the pkg.mod:attr form."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forkhttpd import HttpRequest, HttpResponse


def hello(request: HttpRequest, response: HttpResponse) -> None:
    response.data = "hello from pkg.handlers"
