"""Files of other libraries, both ways: :mod:`.saelens` (SAELens SAE folders)."""
from __future__ import annotations

from .saelens import export_saelens, import_saelens, is_saelens_folder, saelens_firing_rates

__all__ = ["export_saelens", "import_saelens", "is_saelens_folder", "saelens_firing_rates"]
