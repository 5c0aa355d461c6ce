"""The Hugging Face Hub, where timm's pretrained weights come from, when it cannot be reached.

huggingface_hub retries a connection that fails, for about 50 s over timm's two weight files,
before it falls back to its cache (~/.cache/huggingface). On an offline machine the cache is
all there is: its offline mode reads it at once, and a file that is not there fails at once."""

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

log = logging.getLogger(__name__)

# With a proxy, only the proxy knows whether the Hub answers: no probe then.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to `url`'s host opens within `timeout` seconds (behind a
    proxy: assumed)."""
    if any(os.environ.get(variable) for variable in PROXY_VARIABLES):
        return True
    address = urlparse(url)
    default_port = 80 if address.scheme == "http" else 443
    try:
        socket.create_connection((address.hostname, address.port or default_port), timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def offline_unless_reachable() -> Iterator[None]:
    """huggingface_hub in offline mode within the block if its endpoint (huggingface.co, or
    `HF_ENDPOINT`'s mirror) cannot be reached. Offline mode is a module setting that
    huggingface_hub reads on each request (`HF_HUB_OFFLINE` sets it only at import)."""
    from huggingface_hub import constants

    was_offline = constants.HF_HUB_OFFLINE
    if not was_offline and not reachable(constants.ENDPOINT):
        log.info("%s is unreachable: reading the weights from the local cache", constants.ENDPOINT)
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = was_offline
