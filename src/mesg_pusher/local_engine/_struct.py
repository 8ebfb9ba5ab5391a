"""The one place the local engine converts mesg.protobuf.Struct <-> Python: the service's codec.

Kept as a seam so the engine and the service cannot drift apart in how they read values
(numbers are doubles on the wire; the codec decodes integral ones as ``int``).
"""

from __future__ import annotations

from mesg_pusher.codec import decode_value as value_to_python
from mesg_pusher.codec import dict_to_struct, struct_to_dict

__all__ = ["dict_to_struct", "struct_to_dict", "value_to_python"]
