"""The arbiter package: the master process (master.py), its zygotes (zygote.py), its watch
over workers (supervise.py) and its process primitives (children.py). Only this package
forks, waits for or signals processes; it never imports application code itself."""

from .children import start_in_child, stop_child, wait_child
from .master import Arbiter, StartupError

__all__ = ["Arbiter", "StartupError", "start_in_child", "stop_child", "wait_child"]
