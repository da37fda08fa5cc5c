"""The Tiled catalog where experiments are stored, and the writer that fills it.

:func:`open_catalog` gives a :class:`Catalog`: either an embedded Tiled server
(:class:`tiled.server.SimpleTiledServer`: SQLite catalog, zarr arrays) on a
persistent directory, or a client of an existing Tiled server. Which one, in
order of precedence:

1. ``uri=`` given: the server at that URI, with ``api_key=`` or
   ``$HAE_TILED_API_KEY``;
2. ``directory=`` given: an embedded server on that directory;
3. ``$HAE_TILED_URI`` set: that server, with ``$HAE_TILED_API_KEY``;
4. ``$HAE_CATALOG_DIR`` set: an embedded server on that directory;
5. otherwise an embedded server on :func:`default_catalog_dir`.

:func:`subscribe_tiled_writer` subscribes a
:class:`bluesky_tiled_plugins.TiledWriter` to a RunEngine with
``batch_size=1``, so every event is in the catalog as soon as it is emitted
and a running experiment can be read live.

Examples
--------
>>> from bluesky import RunEngine
>>> with open_catalog("/tmp/hae-catalog") as catalog:  # doctest: +SKIP
...     RE = RunEngine()
...     subscribe_tiled_writer(RE, catalog)
...     (uid,) = RE(plan)
...     run = catalog.client[uid]
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import httpx
import platformdirs
from bluesky import RunEngine
from bluesky_tiled_plugins import TiledWriter
from tiled.client import from_uri
from tiled.client.container import Container
from tiled.client.utils import ClientError
from tiled.server import SimpleTiledServer

__all__ = [
    "CATALOG_DIR_ENV",
    "TILED_API_KEY_ENV",
    "TILED_URI_ENV",
    "Catalog",
    "default_catalog_dir",
    "open_catalog",
    "subscribe_tiled_writer",
]

logger = logging.getLogger(__name__)

#: Environment variable: directory of the embedded catalog.
CATALOG_DIR_ENV = "HAE_CATALOG_DIR"
#: Environment variable: URI of an existing Tiled server.
TILED_URI_ENV = "HAE_TILED_URI"
#: Environment variable: API key for the server at ``$HAE_TILED_URI``.
TILED_API_KEY_ENV = "HAE_TILED_API_KEY"


# Tiled keeps server settings, the single-user API key among them, in one
# process-wide object that every new app overwrites: a second embedded server
# would lock the clients of the first out (401). All embedded servers of this
# process therefore share one key.
_EMBEDDED_API_KEY = secrets.token_hex(16)


def default_catalog_dir() -> Path:
    """Default directory of the embedded catalog.

    ``$HAE_CATALOG_DIR`` when set, else ``catalog`` in the user's data
    folder (``platformdirs.user_data_path("hae-bluesky")``, for example
    ``~/.local/share/hae-bluesky/catalog`` on Linux).
    """
    override = os.environ.get(CATALOG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("hae-bluesky") / "catalog"


class Catalog:
    """A Tiled catalog client, with the embedded server behind it if there is one.

    Use as a context manager, or call :meth:`close` when done: that closes the
    client's connections and stops the embedded server. The data stay in
    :attr:`directory` for the next session.

    Parameters
    ----------
    client : tiled.client.container.Container
        Root client of the catalog (runs are its children, keyed by uid).
    server : SimpleTiledServer, optional
        The embedded server the client talks to; stopped by :meth:`close`.

    Attributes
    ----------
    client : tiled.client.container.Container
        The catalog: ``catalog.client[uid]`` is a Bluesky run.
    server : SimpleTiledServer or None
        The embedded server, None for an external one.
    """

    def __init__(self, client: Container, server: SimpleTiledServer | None = None) -> None:
        self.client = client
        self.server = server
        self._closed = False

    @property
    def is_embedded(self) -> bool:
        """True when the catalog is served by an embedded server of this process."""
        return self.server is not None

    @property
    def directory(self) -> Path | None:
        """Directory of the embedded catalog; None for an external server."""
        return None if self.server is None else Path(self.server.directory)

    @property
    def uri(self) -> str:
        """URI of the server (for an embedded server, it carries the API key)."""
        if self.server is not None:
            return self.server.uri
        return self.client.uri

    @property
    def location(self) -> str:
        """Where the catalog is, for people: a directory or a server URI without key."""
        if self.directory is not None:
            return str(self.directory)
        return str(self.client.context.http_client.base_url)

    def __getitem__(self, uid: str) -> Any:
        """The run with start uid (or unique uid prefix) ``uid``."""
        return self.client[uid]

    def __len__(self) -> int:
        return len(self.client)

    def __repr__(self) -> str:
        kind = "embedded" if self.is_embedded else "remote"
        state = ", closed" if self._closed else ""
        return f"<{type(self).__name__} {kind} {self.location!r}{state}>"

    def close(self) -> None:
        """Close the client and stop the embedded server (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client.context.close()
        finally:
            if self.server is not None:
                self.server.close()
                logger.info("stopped the embedded Tiled server on %s", self.server.directory)

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_catalog(
    directory: str | os.PathLike[str] | None = None,
    *,
    uri: str | None = None,
    api_key: str | None = None,
) -> Catalog:
    """Open the catalog: an embedded Tiled server, or an existing one.

    Parameters
    ----------
    directory : path, optional
        Directory of an embedded catalog (created if missing, reused if it
        holds one). See the module docstring for the defaults.
    uri : str, optional
        URI of an existing Tiled server, for example
        ``"http://tiled.example.org:8000"``. Excludes ``directory``.
    api_key : str, optional
        API key for ``uri``; default ``$HAE_TILED_API_KEY``.

    Returns
    -------
    Catalog
        Close it when done (or use it in a ``with`` block).

    Notes
    -----
    All embedded catalogs opened here in one process share one API key:
    Tiled 0.2 stores the key of a server in process-wide settings that each
    new server overwrites. A ``SimpleTiledServer`` started elsewhere in the
    same process with its own key locks the clients of these catalogs out.

    Raises
    ------
    ValueError
        If both ``directory`` and ``uri`` are given, or the server at ``uri``
        cannot be reached or refuses the API key.
    """
    if directory is not None and uri is not None:
        raise ValueError(
            "give either a catalog directory (embedded server) or a server URI, not both"
        )
    if directory is None and uri is None:
        uri = os.environ.get(TILED_URI_ENV) or None

    if uri is not None:
        api_key = api_key if api_key is not None else os.environ.get(TILED_API_KEY_ENV)
        client = _connect(uri, api_key)
        logger.info("connected to the Tiled server at %s", uri.split("?", 1)[0])
        return Catalog(client)

    path = Path(directory).expanduser() if directory is not None else default_catalog_dir()
    path.mkdir(parents=True, exist_ok=True)
    server = SimpleTiledServer(path, api_key=_EMBEDDED_API_KEY)
    try:
        client = from_uri(server.uri, trust_env=False)
    except BaseException:
        server.close()
        raise
    logger.info("embedded Tiled catalog on %s", server.directory)
    return Catalog(client, server)


def _connect(uri: str, api_key: str | None) -> Container:
    """Client of the server at ``uri``; connection and key problems as ValueError."""
    address = uri.split("?", 1)[0]
    try:
        return from_uri(uri, api_key=api_key)
    except httpx.TransportError as error:
        raise ValueError(
            f"cannot reach the Tiled server at {address} ({type(error).__name__}: {error}); "
            "check the address and that the server runs, or leave out the URI to use the "
            "embedded catalog"
        ) from None
    except ClientError as error:
        raise ValueError(
            f"the Tiled server at {address} refused the request ({error}); check the API "
            f"key (--api-key or ${TILED_API_KEY_ENV})"
        ) from None
    except RuntimeError as error:
        # tiled raises a bare RuntimeError when a server needs a key and none was given.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "no reason"
        raise ValueError(
            f"the Tiled server at {address} cannot be used ({reason}); give the API key "
            f"with --api-key or ${TILED_API_KEY_ENV}"
        ) from None


def subscribe_tiled_writer(
    run_engine: RunEngine,
    catalog: Catalog | Container,
    *,
    batch_size: int = 1,
    **writer_options: Any,
) -> int:
    """Subscribe a :class:`bluesky_tiled_plugins.TiledWriter` to a RunEngine.

    Parameters
    ----------
    run_engine : bluesky.RunEngine
        The RunEngine whose documents are stored.
    catalog : Catalog or tiled.client.container.Container
        Where to store them (a :class:`Catalog` or its root client).
    batch_size : int
        Events buffered before a write. 1 writes each event at once, so
        readers see a running experiment live.
    **writer_options
        Further keyword arguments of ``TiledWriter`` (``backup_directory``...).

    Returns
    -------
    int
        The subscription token (``run_engine.unsubscribe(token)`` removes it).
    """
    client = catalog.client if isinstance(catalog, Catalog) else catalog
    writer = TiledWriter(client, batch_size=batch_size, **writer_options)
    return run_engine.subscribe(writer)
