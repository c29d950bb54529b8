"""The API server: thin HTTP routes over the orchestration core, and background services.

``create_app()`` builds the FastAPI application; ``anabranch server start`` serves it with
uvicorn. Nothing here is imported by ``import anabranch``: FastAPI is for the server only.
"""

from anabranch.server.app import create_app

__all__ = ["create_app"]
