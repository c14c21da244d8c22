"""Integration tests for the Matrix adapter against a real Synapse on 127.0.0.1."""
