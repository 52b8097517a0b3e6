"""The bank's relay: the ClientApp that forwards each message to the bank's guard.

The relay is the code inside the coordinator's app bundle; it holds nothing of the
bank's (no data path, no ledger, no key) and imports no torch:

- :mod:`~participant.relay.client_app`: the ClientApp;
- :mod:`~participant.relay.node_config`: its node config, the guard's socket only;
- :mod:`~participant.relay.socket_link`: one request and reply over the socket.
"""

from __future__ import annotations

__all__: list[str] = []
