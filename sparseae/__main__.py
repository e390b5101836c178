"""``python -m sparseae``: the ``sparseae`` command."""
from .cli import run

if __name__ == "__main__":
    run()
