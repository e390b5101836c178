"""Pictures of autoencoders: filter grids, training curves, reconstructions, unit activity.

Nothing here touches pyplot or the global matplotlib backend.
"""
from .fields import save_tangent_images, save_vector_field
from .grid import filter_grid, grid_layout, kernel_grid
from .plots import (
                    save_activity_histogram,
                    save_confusion_matrix,
                    save_curves,
                    save_depth_curve,
                    save_embeddings,
                    save_filters,
                    save_kernels,
                    save_precision_recall,
                    save_reconstructions,
                    save_unit_angles,
)
from .tree import save_filter_tree, tree_layout

__all__ = [
    "filter_grid",
    "grid_layout",
    "kernel_grid",
    "save_activity_histogram",
    "save_confusion_matrix",
    "save_curves",
    "save_depth_curve",
    "save_embeddings",
    "save_filter_tree",
    "save_filters",
    "save_kernels",
    "save_precision_recall",
    "save_reconstructions",
    "save_tangent_images",
    "save_unit_angles",
    "save_vector_field",
    "tree_layout",
]
