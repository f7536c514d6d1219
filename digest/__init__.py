"""digest: a personal daily newsletter of trending research papers."""

# Read by the build (pyproject: tool.hatch.version); a literal, so that `import digest`
# does not pay for importlib.metadata on every run.
__version__ = "0.1.0"
