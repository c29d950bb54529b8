"""Entrypoints: how a deployment names its flow so another process can import it.

An entrypoint is ``path/to/file.py:flow_fn`` (relative to a working directory) or
``package.module:flow_fn``. A worker loads it long after, and often far from, the process
that deployed it, so everything here fails with an EntrypointError that names the
entrypoint and the fix rather than with a bare ImportError.

The flow's parameters are described as a JSON schema at deploy time, so a run with a bad
parameter is refused when it is asked for, not when a worker has already started it.

This module sits below ``anabranch.flows`` in the layers, so it recognises a flow by its
make-up (a decorated function with a flow-run name) instead of importing the Flow class.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import keyword
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic
from pydantic.json_schema import PydanticJsonSchemaWarning
from pydantic_core import PydanticSerializationError

from anabranch._decorated import Decorated
from anabranch._engine.parameters import _resolve_annotation
from anabranch.exceptions import EntrypointError, InvalidParameters
from anabranch.schemas.deployments import first_non_finite

FORMS = "path/to/file.py:flow_function or package.module:flow_function"
_ISOLATED_PREFIX = "_anabranch_entrypoint_"


def is_flow(obj: object) -> bool:
    """Whether ``obj`` is a Flow (a Task is decorated too, but has no flow-run name)."""
    return isinstance(obj, Decorated) and hasattr(obj, "flow_run_name")


def load_flow(entrypoint: str, working_dir: str | Path | None = None) -> Any:
    """The Flow an entrypoint names (typed Any: this layer can not import the Flow class);
    a relative file path is taken from ``working_dir``
    (default: the current directory), which is also where a module is looked for first.

    A file inside a package (folders with ``__init__.py``) is imported under its dotted name
    with the package root on ``sys.path``, so its relative imports work and child processes
    can import it again; a plain file is imported under its own name with its folder on
    ``sys.path`` (sibling imports work); a file whose name is taken or is not a valid module
    name gets a unique module name of its own.
    """
    target, attribute = split_entrypoint(entrypoint)
    base = Path(working_dir) if working_dir is not None else Path.cwd()
    if is_file_target(target):
        path = (base / target).resolve()
        module = _load_file(path, entrypoint)
        where = f"file {path}"
    else:
        module = _import_module(target, base.resolve(), entrypoint)
        where = f"module {target!r}"
    return _flow_from(module, attribute, entrypoint, where)


def split_entrypoint(entrypoint: str) -> tuple[str, str]:
    """``(file path or module, attribute)``; the last colon separates them, so a Windows
    drive letter stays part of the path."""
    target, colon, attribute = entrypoint.rpartition(":")
    if not colon or not target or not attribute:
        raise EntrypointError(
            f"Entrypoint {entrypoint!r} does not name a flow function; write it as {FORMS}."
        )
    if not all(part.isidentifier() for part in attribute.split(".")):
        raise EntrypointError(
            f"Entrypoint {entrypoint!r}: {attribute!r} is not a Python name; after the last "
            f"':' comes the flow function's name, as in {FORMS}."
        )
    return target, attribute


def is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def entrypoint_for(flow: Decorated) -> str:
    """The entrypoint a worker can load ``flow`` by: ``relative/path.py:fn`` for a flow
    defined in a file under the current directory (the absolute path for one elsewhere), or
    ``module:fn`` when its module has no file."""
    fn = flow.fn
    if "<locals>" in fn.__qualname__:
        outer = fn.__qualname__.rsplit(".<locals>.", 1)[0].rsplit(".", 1)[-1]
        raise EntrypointError(
            f"Flow {flow.name!r} is defined inside the function {outer!r}; a worker imports a "
            "flow by its module and name, so define it at the top level of a module."
        )
    module = sys.modules.get(fn.__module__)
    attribute = _attribute_name(flow, module)
    path = _source_path(fn)
    if path is None:
        if fn.__module__ == "__main__" or module is None:
            raise EntrypointError(
                f"Flow {flow.name!r} is defined in an interactive session, which a worker "
                "can not import; save it in a .py file and deploy it from there (or run "
                f"`anabranch deploy path/to/file.py:{attribute}`)."
            )
        return f"{fn.__module__}:{attribute}"
    cwd = Path.cwd().resolve()
    if path.is_relative_to(cwd):
        return f"{path.relative_to(cwd).as_posix()}:{attribute}"
    return f"{path}:{attribute}"


def parameter_schema(flow: Decorated) -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of the flow function's parameters, built by pydantic
    from their annotations: an object with ``properties``, ``required`` and, for models and
    enums, ``$defs``. No other parameter is allowed unless the function takes ``**kwargs``;
    an annotation pydantic can not describe (a DataFrame, say) accepts anything."""
    fn = flow.fn
    fields: dict[str, Any] = {}
    open_ended = False
    for index, (name, param) in enumerate(inspect.signature(fn).parameters.items()):
        if param.kind is param.VAR_KEYWORD:
            open_ended = True
            continue
        annotation = _describable(_resolve_annotation(fn, param.annotation))
        if param.kind is param.VAR_POSITIONAL:
            field = pydantic.Field(default_factory=list, alias=name, title=name)
            annotation = list[annotation]  # type: ignore[valid-type]
        else:
            default = ... if param.default is param.empty else param.default
            field = pydantic.Field(default, alias=name, title=name)
        # Field names are placeholders: a parameter may be called `_x` or `model_config`,
        # which pydantic refuses as a field name but takes as an alias.
        fields[f"p{index}"] = (annotation, field)
    model = pydantic.create_model(
        "Parameters",
        __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
        **fields,
    )
    with warnings.catch_warnings():
        # A default that is not JSON (an object) is left out of the schema, not an error.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = model.model_json_schema(by_alias=True)
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    if not open_ended:
        schema["additionalProperties"] = False
    return _without_non_finite(schema)


def _without_non_finite(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without the entries holding NaN or infinity (``x: float = math.inf``, a
    bound of ``math.inf``): JSON has no such numbers, so the server would store them as null
    and PostgreSQL refuses them. Nothing is lost: a run that leaves the parameter out gets
    the function's own default, and an infinite bound is no bound."""
    while (found := first_non_finite(schema)) is not None:
        path, _ = found
        # The innermost mapping on the way loses its entry: a default of [1.0, math.inf]
        # goes as a whole, not just its second item.
        holder: Any = schema
        key = path[0]
        node: Any = schema
        for part in path:
            if isinstance(node, dict):
                holder, key = node, part
            node = node[part]
        del holder[key]
    return schema


def json_parameters(flow: Decorated, parameters: dict[str, Any]) -> dict[str, Any]:
    """Default parameters checked against the flow's signature now, as JSON: each value
    coerced to its annotation as a call would (``"3"`` for an ``int`` becomes ``3``), then
    stored in JSON form. InvalidParameters names an unknown or ill-typed parameter, or one
    holding NaN or infinity, which JSON can not carry."""
    fn = flow.fn
    signature = inspect.signature(fn)
    named = {}
    open_ended = False
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            open_ended = True
            continue
        annotation = _describable(_resolve_annotation(fn, param.annotation))
        if param.kind is param.VAR_POSITIONAL:
            annotation = list[annotation]  # type: ignore[valid-type]
        named[name] = annotation
    unknown = sorted(set(parameters) - set(named))
    if unknown and not open_ended:
        takes = ", ".join(named) or "no parameters"
        raise InvalidParameters(
            f"Flow {flow.name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {takes}."
        )
    return {
        name: _to_json(flow, name, named.get(name, Any), value)
        for name, value in parameters.items()
    }


def _to_json(flow: Decorated, name: str, annotation: Any, value: Any) -> Any:
    """The value validated against the annotation, in JSON form."""
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
    try:
        valid = adapter.validate_python(value)
        stored = adapter.dump_python(valid, mode="json")
    except pydantic.ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise InvalidParameters(
            f"Parameter {name!r} of flow {flow.name!r} can not be {value!r}: {problems}."
        ) from None
    except PydanticSerializationError:
        raise InvalidParameters(
            f"Parameter {name!r} of flow {flow.name!r}: {value!r} can not be stored as "
            "JSON; a deployment's parameters must be JSON values."
        ) from None
    # In JSON form pydantic keeps NaN as it is for a float, but makes it None inside Any
    # (a list, a dict): the plain Python form shows it either way.
    found = first_non_finite(adapter.dump_python(valid)) or first_non_finite(stored)
    if found is not None:
        path, number = found
        where = ".".join(str(part) for part in (name, *path))
        raise InvalidParameters(
            f"Parameter {where!r} of flow {flow.name!r} is {number!r}, which JSON can not "
            "carry (it would be stored as None); pass a finite number, or None or a string "
            "if it stands for a missing or unbounded value."
        )
    return stored


def _describable(annotation: Any) -> Any:
    """The annotation if pydantic can validate it and describe it in JSON, else Any."""
    try:
        pydantic.TypeAdapter(annotation).json_schema()
    except Exception:
        return Any
    return annotation


def _load_file(path: Path, entrypoint: str) -> ModuleType:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise EntrypointError(
            f"Entrypoint {entrypoint!r}: {path} {what}; the part before ':' must be a .py file "
            "(relative to the working directory) or a module name."
        )
    name, root = _module_name(path)
    if name is not None:
        _prepend_sys_path(root)
        module = _import_in_place(name, path, entrypoint)
        if module is not None:
            return module
    return _load_isolated(path, entrypoint)


def _module_name(path: Path) -> tuple[str | None, Path]:
    """The dotted name a file imports under from the folder above its packages, if it has
    one (``pkg/sub/mod.py`` -> ``pkg.sub.mod``)."""
    parts = [] if path.stem == "__init__" else [path.stem]
    root = path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    valid = parts and all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)
    return (".".join(parts) if valid else None), root


def _import_in_place(name: str, path: Path, entrypoint: str) -> ModuleType | None:
    """The module imported under ``name``, or None when that name belongs to another file
    (a standard-library module, an earlier folder on ``sys.path``)."""
    module = sys.modules.get(name)
    if module is not None:
        return module if _is_file_of(module, path) else None
    try:
        spec = importlib.util.find_spec(name)
    except Exception as exc:  # a parent package's __init__ failed
        raise _import_failed(entrypoint, str(path), exc) from exc
    if spec is None or spec.origin is None or Path(spec.origin).resolve() != path:
        return None
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise _import_failed(entrypoint, str(path), exc) from exc


def _load_isolated(path: Path, entrypoint: str) -> ModuleType:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    name = f"{_ISOLATED_PREFIX}{digest}_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    _prepend_sys_path(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EntrypointError(f"Entrypoint {entrypoint!r}: {path} can not be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: the file may import itself
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_failed(entrypoint, str(path), exc) from exc
    return module


def _import_module(target: str, base: Path, entrypoint: str) -> ModuleType:
    if not all(part.isidentifier() for part in target.split(".")):
        raise EntrypointError(
            f"Entrypoint {entrypoint!r}: {target!r} is neither a .py file nor a module name; "
            f"write it as {FORMS}."
        )
    _prepend_sys_path(base)  # as `python -m` does: modules in the working directory import
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise EntrypointError(
                f"Entrypoint {entrypoint!r}: no module named {exc.name!r} in {base} or the "
                "installed packages; for a file, write path/to/file.py:flow_function."
            ) from exc
        raise _import_failed(entrypoint, f"module {target!r}", exc) from exc
    except Exception as exc:
        raise _import_failed(entrypoint, f"module {target!r}", exc) from exc


def _import_failed(entrypoint: str, what: str, exc: Exception) -> EntrypointError:
    hint = ""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        hint = (
            f" (is {exc.name!r} installed in this Python environment, {sys.executable}? A "
            "flow that runs in another environment is deployed with the job variable "
            "python=/path/to/that/environment/bin/python)"
        )
    return EntrypointError(
        f"Entrypoint {entrypoint!r}: importing {what} raised {type(exc).__name__}: {exc}{hint}"
    )


def _flow_from(module: ModuleType, attribute: str, entrypoint: str, where: str) -> Decorated:
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            flows = sorted(name for name, value in vars(module).items() if is_flow(value))
            found = f"the flows in it are: {', '.join(flows)}" if flows else "it has no flows"
            raise EntrypointError(
                f"Entrypoint {entrypoint!r}: {where} has no {attribute!r}; {found}."
            )
        obj = getattr(obj, part)
    if is_flow(obj):
        return obj
    if isinstance(obj, Decorated):
        what = "a task, not a flow; deploy a @flow function"
    elif callable(obj):
        what = "a plain function, not a flow; decorate it with @flow"
    else:
        what = f"a {type(obj).__name__}, not a flow"
    raise EntrypointError(f"Entrypoint {entrypoint!r}: {attribute!r} in {where} is {what}.")


def _attribute_name(flow: Decorated, module: ModuleType | None) -> str:
    """The name the module holds the flow by: usually the function's, but a flow made
    with ``etl = flow(extract_all)`` is reachable only as ``etl``."""
    qualname = flow.fn.__qualname__
    if module is None or _walk(module, qualname) is flow:
        return qualname
    for name, value in vars(module).items():
        if value is flow:
            return name
    return qualname  # a with_options() copy: the module's flow of the same function


def _walk(obj: Any, attribute: str) -> Any:
    for part in attribute.split("."):
        obj = getattr(obj, part, None)
    return obj


def _source_path(fn: Any) -> Path | None:
    try:
        source = inspect.getsourcefile(fn)
    except TypeError:
        return None
    if source is None or not Path(source).is_file():
        return None
    return Path(source).resolve()


def _is_file_of(module: ModuleType, path: Path) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve() == path


def _prepend_sys_path(folder: Path) -> None:
    entry = str(folder)
    if entry not in sys.path:
        sys.path.insert(0, entry)
