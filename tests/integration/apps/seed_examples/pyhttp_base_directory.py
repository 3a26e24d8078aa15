# pyhttp's BaseServer with a BaseHttpRequestHandler subclass that serves another directory
# (the handler's documented `directory` parameter), unchanged but for the import.
import forkhttpd as pyhttp


class PublicHandler(pyhttp.BaseHttpRequestHandler):
    def __init__(self, conn, addr, server):
        super().__init__(conn, addr, server, directory='public')


server = pyhttp.BaseServer(host='localhost', port=8888, request_handler=PublicHandler)
server.serve_forever()
