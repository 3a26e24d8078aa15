"""A module whose import fails: forkhttpd must say so, labelled as the app's traceback."""

def helper() -> None:
    raise ValueError("the app's own import-time failure")


helper()
