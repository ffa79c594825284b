"""Benchmarks (not part of the test suite); a package so gunicorn can import bench settings."""
