# pyhttp's threaded server as its documentation describes it, unchanged but for the import:
# BaseHttpRequestHandler serves the current directory (files, listings, CGI scripts) on
# localhost:8888, the defaults.
import forkhttpd as pyhttp

server = pyhttp.ThreadedServer(host='localhost', port=8888)
try:
    server.serve_forever()
finally:
    server.close()
