"""Side-by-side benchmark of jobqueue and its peers: `python -m bench.compare [--quick]`."""
