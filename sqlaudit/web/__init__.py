"""Framework-free request auditing shared by the WSGI and ASGI middlewares."""
