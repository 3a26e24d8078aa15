# The BaseHTTPServer documentation's run(), unchanged but for the import: serve on port 8000
# of every interface with the bare BaseHTTPRequestHandler (which answers every method 501).
import forkhttpd as BaseHTTPServer


def run(server_class=BaseHTTPServer.HTTPServer, handler_class=BaseHTTPServer.BaseHTTPRequestHandler):
    server_address = ('', 8000)
    httpd = server_class(server_address, handler_class)
    httpd.serve_forever()


run()
