"""Pictures of autoencoders: filter grids, training curves, reconstructions, unit activity.

Nothing here touches pyplot or the global matplotlib backend.
"""
from .fields import save_tangent_images, save_vector_field
from .grid import filter_grid, grid_layout
from .plots import (save_activity_histogram, save_curves, save_embeddings, save_filters, save_reconstructions,
                    save_unit_angles)

__all__ = [
    "filter_grid",
    "grid_layout",
    "save_activity_histogram",
    "save_curves",
    "save_embeddings",
    "save_filters",
    "save_reconstructions",
    "save_tangent_images",
    "save_unit_angles",
    "save_vector_field",
]
