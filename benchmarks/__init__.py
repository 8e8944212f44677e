"""Speed and quality benchmarks with their recorded results (docs/benchmarks.md).

Run each as a module from the repository root, e.g. ``python -m benchmarks.quality --help``;
``--smoke`` runs one end to end with tiny settings.
"""
