"""Deployments: run_deployment, deploying flows, and loading their entrypoints."""

from anabranch.deployments.run import run_deployment

__all__ = ["run_deployment"]
