"""The Tiled catalog every run of this session goes into.

An existing server when ``$HAE_TILED_URI`` is set (key in
``$HAE_TILED_API_KEY``), else an embedded one on ``$HAE_CATALOG_DIR`` or the
user's default catalog folder; see :func:`hae_bluesky.catalog.open_catalog`.
"""

import threading

from hae_bluesky.catalog import open_catalog, subscribe_tiled_writer

catalog = open_catalog()
subscribe_tiled_writer(RE, catalog)  # noqa: F821 (RE comes from 00-base.py)

if catalog.is_embedded:
    # The embedded server runs in a non-daemon thread, which the interpreter
    # joins before ``atexit`` handlers run: stop it at that point instead.
    threading._register_atexit(catalog.close)
