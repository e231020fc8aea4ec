"""The factored-eikonal PINN for crosshole traveltime tomography.

This package knows nothing about telemetry or stores: it reports what happens during training to
`pinn.observer.TrainingObserver` objects and takes runtime commands from `pinn.steering.CommandSource`.
"""
