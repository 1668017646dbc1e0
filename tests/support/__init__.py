"""Test support: real servers on real sockets, real databases."""
