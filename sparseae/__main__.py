"""``python -m sparseae``: the ``sparseae`` command."""
import sys

try:
    from .cli import run
except KeyboardInterrupt:  # Ctrl-C while torch loads: one line and status 130, as during a command
    print("sparseae: error: interrupted", file=sys.stderr, flush=True)
    run = None  # exit outside the handler: `python -m` turns an exit raised inside it into SIGINT
if run is None:
    raise SystemExit(130)

if __name__ == "__main__":
    run()
