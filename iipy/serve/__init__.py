"""The process model, the FastCGI and HTTP wire, WSGI routing and logging.

A request enters here (server.py accepts, fastcgi.py reads the records, app.py routes
the WSGI call to a protocol) and leaves as bytes on the socket.  The only package that
imports flup.
"""
