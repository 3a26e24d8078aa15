# picohttp's first example, unchanged but for the import: serve the current directory on 80.
import forkhttpd as picohttp

picohttp.HttpServer()
