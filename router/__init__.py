"""Routes a grayscale photo to the specialist of its domain, and says how sure it is.

from router import load_router
router = load_router("weights/router")
decision = router.route(l_norm)[0]   # l_norm: (B, 1, H, W), L/50 - 1
decision.domain, decision.probs, decision.confident()
"""

from .calibration import Calibration
from .decision import Neighbour, RouteDecision
from .errors import RouterError, RouterNotFoundError
from .index import NeighbourIndex
from .net import ROUTERS, RouterNet, create_router_net
from .router import Router, Scores, load_router

__all__ = [
    "ROUTERS",
    "Calibration",
    "Neighbour",
    "NeighbourIndex",
    "RouteDecision",
    "Router",
    "RouterError",
    "RouterNet",
    "RouterNotFoundError",
    "Scores",
    "create_router_net",
    "load_router",
]
