"""SQL text: fingerprints, statement kinds, bind-value signatures.

The only place that parses SQL.
"""
