"""The public report of a unit of work and its renderings."""
