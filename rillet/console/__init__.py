"""The web console (``rillet console``): a read-mostly web UI over the Admin and Consumer APIs.

``data.ClusterView`` gathers what the pages show; ``app.make_app`` is the Starlette application
(JSON under ``/api``, one static page of plain JavaScript, no build step).
"""
