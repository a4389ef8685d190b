"""Test factories and servers shared by the test packages."""
