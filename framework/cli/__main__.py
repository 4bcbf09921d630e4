"""``python -m edgeroute.framework.cli``: the same as the ``edgeroute`` command."""

from . import main

main()
