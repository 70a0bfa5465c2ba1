"""The pure core: Spawn's actor semantics as a state machine with no IO, clocks or randomness."""
