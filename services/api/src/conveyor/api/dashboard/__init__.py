"""The live dashboard: one static page that polls /v1/stats every second."""
