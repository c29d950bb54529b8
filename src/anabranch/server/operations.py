"""The API's routes, one per declared operation (``anabranch.operations``): path parameters
from the path, query strings for GET and DELETE, a JSON body for the rest, the result as
the answer; the store carries each out in a worker thread, as the embedded client does.

Bodies are validated straight from the request's bytes (pydantic-core reads JSON about three
times faster than decoding it first), and declared in the OpenAPI document by hand, since
FastAPI does not see them. Long polls (a run's end, a worker's poll) wait here, on the
change feed, instead of holding a thread.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import annotated_types
import pydantic
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic.fields import FieldInfo

from anabranch.operations import OPERATIONS, Operation
from anabranch.server.dependencies import get_feed, get_store
from anabranch.server.errors import error_responses
from anabranch.server.waiting import long_poll_work, wait_for_flow_run

# Operations whose wait the server holds itself: (request's store, feed, arguments) -> result.
LongPoll = Callable[[Any, Any, dict[str, Any]], Awaitable[Any]]
_LONG_POLLS: dict[str, LongPoll] = {
    "wait_for_flow_run": lambda store, feed, a: wait_for_flow_run(store, feed, **a),
    "poll_work": lambda store, feed, a: long_poll_work(store, feed, a["work_pool_name"], a["poll"]),
}


def operations_router(operations: Sequence[Operation] = OPERATIONS) -> APIRouter:
    """A router with one route per operation."""
    router = APIRouter()
    for op in operations:
        router.add_api_route(
            op.path,
            _endpoint(op),
            methods=[op.method],
            name=op.name,
            summary=op.name.replace("_", " ").capitalize(),
            description=op.doc,
            response_model=op.returns,
            status_code=status.HTTP_204_NO_CONTENT if op.returns is None else 200,
            responses=error_responses(op.errors),
            openapi_extra=_body_document(op),
            tags=[op.stub.__module__.rsplit(".", 1)[-1].replace("_", " ")],
        )
    return router


def _endpoint(op: Operation) -> Callable[..., Awaitable[Any]]:
    """The route's function; its signature tells FastAPI the path and query parameters."""
    long_poll = _LONG_POLLS.get(op.name)

    async def endpoint(request: Request, **values: Any) -> Any:
        arguments = dict(values)
        if not op.uses_query:
            arguments.update(await _body_arguments(op, request))
        store = get_store(request)
        if long_poll is not None:
            result = await long_poll(store, get_feed(request), arguments)
        else:
            result = await run_in_threadpool(store._call, op, arguments)
        if op.returns is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return result

    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    for name in op.path_parameters:
        parameters.append(_parameter(op, name, Path(description=f"The {name}, percent-encoded.")))
    if op.uses_query:
        for name in op.other_parameters:
            default = op.signature.parameters[name].default
            parameters.append(_parameter(op, name, None, default))
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    endpoint.__name__ = op.name
    return endpoint


def _parameter(
    op: Operation, name: str, where: Any, default: Any = inspect.Parameter.empty
) -> inspect.Parameter:
    hint, constraints = _plain(op.hints[name])
    if where is None:
        where = Query(**constraints)
    elif constraints:
        where = Path(**constraints)
    if default is not inspect.Parameter.empty and _is_sequence(hint):
        hint = _as_list(hint)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[hint, where], default=default
    )


def _plain(hint: Any) -> tuple[Any, dict[str, Any]]:
    """A parameter's type without its Annotated metadata, and the bounds that metadata set
    (``ge``, ``le``), which FastAPI takes on Query and Path."""
    if typing.get_origin(hint) is not Annotated:
        return hint, {}
    base, *metadata = typing.get_args(hint)
    bounds: dict[str, Any] = {}
    for item in metadata:
        for constraint in item.metadata if isinstance(item, FieldInfo) else [item]:
            if isinstance(constraint, annotated_types.Ge):
                bounds["ge"] = constraint.ge
            elif isinstance(constraint, annotated_types.Le):
                bounds["le"] = constraint.le
    return base, bounds


def _is_sequence(hint: Any) -> bool:
    """``Sequence[X]``, ``list[X]``, or either of them ``| None``."""
    origins = {typing.get_origin(arg) for arg in typing.get_args(hint)}
    return bool({typing.get_origin(hint), *origins} & {Sequence, list})


def _as_list(hint: Any) -> Any:
    """``Sequence[X] | None`` as ``list[X] | None``: FastAPI reads lists from repeated query
    strings."""
    if typing.get_origin(hint) in (Sequence, list):
        return list[typing.get_args(hint)[0]]  # type: ignore[misc]
    if not typing.get_args(hint):
        return hint
    converted = tuple(_as_list(arg) for arg in typing.get_args(hint))
    return typing.Union[converted]  # noqa: UP007 - built from a tuple


async def _body_arguments(op: Operation, request: Request) -> dict[str, Any]:
    """The arguments the request's body carries, validated from its bytes."""
    raw = await request.body()
    try:
        if op.body is not None:
            assert op.body_adapter is not None
            return {op.body: op.body_adapter.validate_json(raw or b"null")}
        if op.body_model is None:
            return {}
        model = op.body_model.model_validate_json(raw or b"{}")
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None
    return {name: getattr(model, name) for name in op.other_parameters}


def _body_document(op: Operation) -> dict[str, Any] | None:
    """The request body's place in the OpenAPI document (``openapi_bodies`` adds its schema)."""
    if op.uses_query or (op.body is None and op.body_model is None):
        return None
    return {
        "requestBody": {
            "required": op.body is None or not _optional(op.hints[op.body]),
            "content": {"application/json": {"schema": {"$ref": _ref(_body_name(op))}}},
        }
    }


def openapi_bodies(schema: dict[str, Any]) -> None:
    """Put every operation's body schema in the document's components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for op in OPERATIONS:
        if _body_document(op) is None:
            continue
        if op.body is not None:
            assert op.body_adapter is not None
            definition = op.body_adapter.json_schema(ref_template=_ref("{model}"))
        else:
            assert op.body_model is not None
            definition = op.body_model.model_json_schema(ref_template=_ref("{model}"))
        for name, nested in definition.pop("$defs", {}).items():
            components.setdefault(name, nested)
        components.setdefault(_body_name(op), definition)


def _body_name(op: Operation) -> str:
    if op.body_model is not None:
        return op.body_model.__name__
    return "".join(part.title() for part in op.name.split("_")) + "Body"


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)
