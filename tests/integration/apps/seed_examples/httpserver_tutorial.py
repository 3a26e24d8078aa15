# The program of the "Simple HTTP Web Server and Client in Python" tutorial (a handler class
# that serves the .html files of a directory, found with the os module), in Python 3; the
# only forkhttpd line is the import of HTTPServer.
import os
from http.server import BaseHTTPRequestHandler

from forkhttpd import HTTPServer


# Create custom HTTPRequestHandler class
class KodeFunHTTPRequestHandler(BaseHTTPRequestHandler):

    # handle GET command
    def do_GET(self):
        rootdir = os.getcwd()  # file location
        try:
            if self.path.endswith('.html'):
                f = open(rootdir + self.path, 'rb')  # open requested file

                # send code 200 response
                self.send_response(200)

                # send header first
                self.send_header('Content-type', 'text/html')
                self.end_headers()

                # send file content to client
                self.wfile.write(f.read())
                f.close()
                return
            self.send_error(404, 'file not found')

        except IOError:
            self.send_error(404, 'file not found')


def run():
    print('http server is starting...', flush=True)

    # ip and port of server
    server_address = ('127.0.0.1', 8000)
    httpd = HTTPServer(server_address, KodeFunHTTPRequestHandler)
    print('http server is running...', flush=True)
    httpd.serve_forever()


if __name__ == '__main__':
    run()
