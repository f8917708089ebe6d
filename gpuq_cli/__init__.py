"""`gpuq`: the command line for a gpuq server, over its REST API only (so it runs from a laptop)."""

__version__ = "0.1.0"
