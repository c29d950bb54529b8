"""What a deployment stores about its flow, read in the interpreter that will run it.

A deployment whose ``python`` job variable names another interpreter (a virtualenv with
packages the deploying environment lacks, or other versions of them) is described by that
interpreter: ``python -m anabranch.deployments.describe ENTRYPOINT`` imports the flow there
and prints its name, description, version, parameter schema and the default parameters in
JSON form. So `anabranch deploy` never imports a child flow's code beside the parent's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from anabranch._decorated import Decorated
from anabranch.deployments.entrypoints import json_parameters, load_flow, parameter_schema
from anabranch.exceptions import EntrypointError, InvalidDeployment, InvalidParameters

DESCRIBE_TIMEOUT_SECONDS = 120.0
_ERRORS: dict[str, type[Exception]] = {
    error.__name__: error for error in (EntrypointError, InvalidParameters, InvalidDeployment)
}


@dataclass(frozen=True)
class FlowFacts:
    """What a deployment keeps of its flow."""

    name: str
    description: str | None
    version: str | None
    parameters: dict[str, Any]
    parameter_schema: dict[str, Any] | None


def describe(
    flow: Decorated, parameters: dict[str, Any], enforce_parameter_schema: bool = True
) -> FlowFacts:
    """The facts of a loaded flow; the default ``parameters`` are checked against its
    signature (InvalidParameters) and turned into JSON."""
    return FlowFacts(
        name=flow.name,
        description=getattr(flow, "description", None),
        version=getattr(flow, "version", None),
        parameters=json_parameters(flow, parameters),
        parameter_schema=parameter_schema(flow) if enforce_parameter_schema else None,
    )


def describe_with(
    python: str,
    entrypoint: str,
    *,
    working_dir: str | None,
    env: dict[str, str],
    parameters: dict[str, Any],
    enforce_parameter_schema: bool = True,
) -> FlowFacts:
    """The facts of the flow at ``entrypoint`` as interpreter ``python`` sees it, started
    in ``working_dir`` with ``env`` added, as a worker would start the run."""
    request = {"parameters": parameters, "enforce_parameter_schema": enforce_parameter_schema}
    try:
        answer = subprocess.run(
            [python, "-m", __name__, entrypoint],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=working_dir,
            env={**os.environ, **env},
            timeout=DESCRIBE_TIMEOUT_SECONDS,
        )
    except OSError as exc:
        raise InvalidDeployment(
            f"Job variable 'python': {python} can not be started ({exc.strerror}); name the "
            "interpreter of the environment the flow runs in, e.g. /path/to/venv/bin/python."
        ) from None
    except subprocess.TimeoutExpired:
        raise InvalidDeployment(
            f"Importing {entrypoint!r} with {python} took over "
            f"{DESCRIBE_TIMEOUT_SECONDS:.0f} s; does the module do work at import time?"
        ) from None
    try:
        reply = json.loads(answer.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        reply = None
    if answer.returncode == 0 and isinstance(reply, dict) and "facts" in reply:
        return FlowFacts(**reply["facts"])
    if isinstance(reply, dict) and reply.get("error") in _ERRORS:
        raise _ERRORS[reply["error"]](reply["message"])
    detail = answer.stderr.strip().splitlines()[-1:] or [f"exit code {answer.returncode}"]
    hint = ""
    if "No module named 'anabranch" in answer.stderr:
        hint = "; install anabranch in that environment too (its worker runs the flow with it)"
    raise InvalidDeployment(
        f"{python} could not describe the flow at {entrypoint!r}: {detail[0]}{hint}."
    )


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m anabranch.deployments.describe ENTRYPOINT < request.json")
    request = json.loads(sys.stdin.read() or "{}")
    try:
        flow = load_flow(sys.argv[1])
        facts = describe(
            flow, request.get("parameters") or {}, request.get("enforce_parameter_schema", True)
        )
    except tuple(_ERRORS.values()) as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        sys.exit(1)
    print(json.dumps({"facts": asdict(facts)}))


if __name__ == "__main__":
    main()
