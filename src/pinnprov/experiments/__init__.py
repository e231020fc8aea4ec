"""Experiment orchestration for the composition root: parameter grids, parallel sweeps, the paper's study.

Nothing here trains or stores anything itself: it launches `pinnprov train` processes, reads the store through
the collector's named queries and draws with pinn.figures, so every result is reproducible from the store.
"""
