"""The bank's node operations: what ``fedcredit participant`` does to run a node.

- :mod:`~participant.node.node_keys`: the node key (ECDSA) and audit key (Ed25519);
- :mod:`~participant.node.check`: the bank's data file checked and profiled, locally;
- :mod:`~participant.node.supernode`: the bank's SuperNode started, stopped, followed;
- :mod:`~participant.node.dashboard`: the bank's live dashboard, read from its node folder.

Operations import only the ClientApp runtime's light modules (its node config), never
torch. Import the module you need; this package exports nothing itself.
"""

from __future__ import annotations

__all__: list[str] = []
