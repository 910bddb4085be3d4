"""Operating cvem: Prometheus metrics, the status page and their HTTP server."""
