"""Projects that the pytest plugin's tests run with ``pytester``; ``readme_*`` are the README's
pytest examples, verbatim."""
