"""``python -m labelrep``: the same as the ``labelrep`` command."""
from .cli import run

if __name__ == "__main__":
    run()
