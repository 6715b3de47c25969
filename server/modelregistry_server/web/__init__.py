"""The web interface: a second driving adapter beside ``api/``.

Server-rendered pages (Starlette, Jinja2) that call the domain use cases directly with the
caller from the browser session, admitted through the same ``Authentication.admit`` and the
same RPC → permission table as gRPC calls (handed in by ``app.py`` as an :class:`Edge`).
Nothing here imports the storage adapters or the gRPC servicers.

- :mod:`.edge`: what the wiring hands in (admission, error codes, the use cases, the pool).
- :mod:`.pages`: the page/action declaration (each names the RPC whose permission it needs)
  and the request cycle around every handler (session, CSRF, admission, error pages).
- :mod:`.sessions`: the encrypted session cookie and its CSRF token.
- :mod:`.http_errors`: gRPC code → HTTP status, the one mapping.
- :mod:`.site`: ``create_app``, the Starlette application with every page.
- :mod:`.serving`: uvicorn on the registry's event loop.
- page modules: :mod:`.sign_in`, :mod:`.models_list`.
"""
