"""endow stage: P2P agent-pool generation (attribute bank, endowment model, entropy tracker, active strategy).

The face: `endow_library` (EndowOptions in, the run log out) and the pieces it is built from.
"""

from personagen.endow.active import STRATEGIES, EndowOptions, elicit_pool, endow_library
from personagen.endow.aeg import planned_calls
from personagen.endow.bank import MAX_ATTRIBUTES, load_bank
from personagen.endow.model import Counters, generate_endowments, personas_from_json

__all__ = ["MAX_ATTRIBUTES", "STRATEGIES", "Counters", "EndowOptions", "elicit_pool", "endow_library",
           "generate_endowments", "load_bank", "personas_from_json", "planned_calls"]
