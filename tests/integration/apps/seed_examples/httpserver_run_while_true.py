# The BaseHTTPServer documentation's run_while_true(), unchanged but for the import; the
# documentation leaves keep_running() to the reader: here it allows three requests.
import forkhttpd as BaseHTTPServer

served = []


def keep_running():
    served.append(1)
    return len(served) <= 3


def run_while_true(server_class=BaseHTTPServer.HTTPServer,
                   handler_class=BaseHTTPServer.BaseHTTPRequestHandler):
    """
    This assumes that keep_running() is a function of no arguments which
    is tested initially and after each request.  If its return value
    is true, the server continues.
    """
    server_address = ('', 8000)
    httpd = server_class(server_address, handler_class)
    while keep_running():
        httpd.handle_request()


run_while_true()
print("run_while_true returned")
