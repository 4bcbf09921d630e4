"""Pure routing logic: signals -> RouteDecision. No I/O."""
