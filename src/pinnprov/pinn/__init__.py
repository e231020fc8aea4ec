"""The factored-eikonal PINN for crosshole traveltime tomography.

This package knows nothing about telemetry or stores: it reports what happens during training to
`pinnprov.pinn.observer.TrainingObserver` objects and takes runtime commands from
`pinnprov.pinn.steering.CommandSource`.
"""
