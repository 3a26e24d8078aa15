"""A handler inside a package, for the pkg.mod:attr form."""


def hello(request, response):
    response.data = "hello from pkg.handlers"
