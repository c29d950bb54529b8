"""Loading flows from entrypoints written to real files, naming a flow's entrypoint, and the
JSON schema of its parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from anabranch import flow
from anabranch.deployments.entrypoints import entrypoint_for, load_flow, parameter_schema
from anabranch.exceptions import EntrypointError
from flow_files import isolated_imports as imports_undone_in


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test works in its own folder; what loading flows adds to sys.path and
    sys.modules is taken away again."""
    with imports_undone_in(tmp_path, monkeypatch):
        yield


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


FLOWS = """
    from anabranch import flow, task

    @flow
    def greet(name: str = "world") -> str:
        return f"hello {name}"

    @task
    def shout(text: str) -> str:
        return text.upper()

    def helper() -> None:
        pass

    LIMIT = 3
"""


def valid(schema: dict, parameters: dict) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(parameters)


def test_load_flow_from_a_file_relative_to_the_current_directory(tmp_path: Path) -> None:
    write(tmp_path / "flows" / "hello.py", FLOWS)

    greet = load_flow("flows/hello.py:greet")

    assert greet.name == "greet"
    assert greet("there") == "hello there"


def test_load_flow_from_a_file_relative_to_a_working_dir(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "jobs.py", FLOWS)

    assert load_flow("jobs.py:greet", working_dir=project).name == "greet"
    assert load_flow(f"{project / 'jobs.py'}:greet").name == "greet"


def test_a_file_can_import_its_siblings(tmp_path: Path) -> None:
    write(tmp_path / "etl" / "settings_for_etl.py", "REGION = 'emea'\n")
    write(
        tmp_path / "etl" / "pipeline.py",
        """
        from anabranch import flow
        from settings_for_etl import REGION

        @flow
        def pipeline() -> str:
            return REGION
        """,
    )

    assert load_flow("etl/pipeline.py:pipeline")() == "emea"


def test_a_file_in_a_package_keeps_its_relative_imports(tmp_path: Path) -> None:
    write(tmp_path / "shop" / "__init__.py", "")
    write(tmp_path / "shop" / "prices.py", "VAT = 0.2\n")
    write(
        tmp_path / "shop" / "jobs.py",
        """
        from anabranch import flow
        from .prices import VAT

        @flow
        def with_vat(amount: float) -> float:
            return amount * (1 + VAT)
        """,
    )

    loaded = load_flow("shop/jobs.py:with_vat")

    assert loaded(10) == pytest.approx(12)
    assert loaded.fn.__module__ == "shop.jobs"  # importable again by a child process


def test_a_file_named_like_a_standard_module_still_loads(tmp_path: Path) -> None:
    write(tmp_path / "json.py", FLOWS)

    assert load_flow("json.py:greet")() == "hello world"
    assert hasattr(json, "dumps")  # the standard module was not replaced


def test_load_flow_from_a_module_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "pkg_for_module_form" / "__init__.py", "")
    write(tmp_path / "pkg_for_module_form" / "flows.py", FLOWS)

    assert load_flow("pkg_for_module_form.flows:greet")("x") == "hello x"


def test_no_colon_says_how_to_write_an_entrypoint() -> None:
    with pytest.raises(EntrypointError, match=r"'flows\.py' does not name a flow function.*"
                       r"path/to/file\.py:flow_function or package\.module:flow_function"):
        load_flow("flows.py")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EntrypointError, match=r"nope\.py does not exist"):
        load_flow("flows/nope.py:greet")


def test_a_missing_module_is_named() -> None:
    with pytest.raises(EntrypointError, match="no module named 'no_such_package_here'"):
        load_flow("no_such_package_here.flows:greet")


def test_an_error_while_importing_the_file_is_chained(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "import not_installed_anywhere_xyz\n")

    with pytest.raises(EntrypointError, match=r"importing .*broken\.py raised "
                       r"ModuleNotFoundError.*'not_installed_anywhere_xyz' installed") as info:
        load_flow("broken.py:greet")

    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_an_exception_raised_by_the_file_is_chained(tmp_path: Path) -> None:
    write(tmp_path / "raising.py", "raise RuntimeError('no database configured')\n")

    with pytest.raises(EntrypointError, match="RuntimeError: no database configured") as info:
        load_flow("raising.py:greet")

    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_missing_attribute_lists_the_flows_that_are_there(tmp_path: Path) -> None:
    write(tmp_path / "hello_flows.py", FLOWS)

    with pytest.raises(EntrypointError, match="has no 'gret'; the flows in it are: greet"):
        load_flow("hello_flows.py:gret")


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("shout", "is a task, not a flow"),
        ("helper", "is a plain function, not a flow; decorate it with @flow"),
        ("LIMIT", "is a int, not a flow"),
    ],
)
def test_an_attribute_that_is_not_a_flow_says_what_it_is(
    tmp_path: Path, attribute: str, message: str
) -> None:
    write(tmp_path / "mixed_flows.py", FLOWS)

    with pytest.raises(EntrypointError, match=message):
        load_flow(f"mixed_flows.py:{attribute}")


def test_entrypoint_for_a_flow_in_a_file_under_the_current_directory(tmp_path: Path) -> None:
    write(tmp_path / "flows" / "named.py", FLOWS)
    greet = load_flow("flows/named.py:greet")

    assert entrypoint_for(greet) == "flows/named.py:greet"


def test_entrypoint_for_a_flow_elsewhere_is_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "elsewhere" / "far_flows.py", FLOWS)
    greet = load_flow(f"{path}:greet")
    monkeypatch.chdir(tmp_path / "elsewhere" / "..")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")

    assert entrypoint_for(greet) == f"{path.resolve()}:greet"


def test_entrypoint_for_a_flow_bound_to_another_name(tmp_path: Path) -> None:
    write(
        tmp_path / "aliased.py",
        """
        from anabranch import flow

        def extract_all() -> int:
            return 1

        nightly = flow(extract_all, name="nightly")
        """,
    )
    nightly = load_flow("aliased.py:nightly")

    assert entrypoint_for(nightly) == "aliased.py:nightly"
    assert load_flow(entrypoint_for(nightly)) is nightly


def test_entrypoint_for_a_nested_flow_says_to_define_it_at_module_level() -> None:
    def factory():
        @flow
        def inner() -> None:
            pass

        return inner

    with pytest.raises(EntrypointError, match="defined inside the function .*factory.*top level"):
        entrypoint_for(factory())


def test_entrypoint_for_a_flow_typed_into_python_says_to_save_it_in_a_file() -> None:
    script = textwrap.dedent(
        """
        from anabranch import flow
        from anabranch.deployments.entrypoints import entrypoint_for
        from anabranch.exceptions import EntrypointError

        @flow
        def typed_in() -> None:
            pass

        try:
            entrypoint_for(typed_in)
        except EntrypointError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )

    assert "interactive session" in result.stdout
    assert "save it in a .py file" in result.stdout


def test_parameter_schema_describes_types_defaults_and_required(tmp_path: Path) -> None:
    write(
        tmp_path / "typed_flows.py",
        """
        from __future__ import annotations

        import datetime
        from typing import Literal

        import pydantic

        from anabranch import flow

        class Window(pydantic.BaseModel):
            days: int

        @flow
        def report(
            day: datetime.date,
            regions: list[str] = ["emea"],
            mode: Literal["full", "delta"] = "delta",
            window: Window | None = None,
            _private_flag: bool = False,
        ) -> None:
            pass
        """,
    )
    schema = parameter_schema(load_flow("typed_flows.py:report"))

    assert schema["type"] == "object"
    assert schema["required"] == ["day"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["day"]["format"] == "date"
    assert schema["properties"]["regions"]["default"] == ["emea"]
    assert "Window" in schema["$defs"]
    assert valid(schema, {"day": "2025-03-01", "regions": ["apac"], "window": {"days": 7}})
    assert valid(schema, {"day": "2025-03-01", "_private_flag": True})
    assert not valid(schema, {})
    assert not valid(schema, {"day": "2025-03-01", "regions": "emea"})
    assert not valid(schema, {"day": "2025-03-01", "mode": "sometimes"})
    assert not valid(schema, {"day": "2025-03-01", "window": {"days": "a week"}})
    assert not valid(schema, {"day": "2025-03-01", "unknown": 1})


def test_parameter_schema_accepts_anything_it_can_not_describe(tmp_path: Path) -> None:
    write(
        tmp_path / "frames.py",
        """
        import pandas as pd

        from anabranch import flow

        class Connection:
            pass

        @flow
        def load(frame: pd.DataFrame, conn: Connection, untyped, rows: int = 10):
            pass
        """,
    )
    schema = parameter_schema(load_flow("frames.py:load"))

    assert schema["required"] == ["frame", "conn", "untyped"]
    assert valid(schema, {"frame": {"a": [1]}, "conn": "anything", "untyped": None})
    assert not valid(schema, {"frame": 1, "conn": 2, "untyped": 3, "rows": "many"})


def test_parameter_schema_allows_other_parameters_only_with_kwargs(tmp_path: Path) -> None:
    write(
        tmp_path / "open_flows.py",
        """
        from anabranch import flow

        @flow
        def open_ended(a: int, **options: str):
            pass

        @flow
        def closed(a: int):
            pass
        """,
    )

    assert valid(parameter_schema(load_flow("open_flows.py:open_ended")), {"a": 1, "b": "x"})
    assert not valid(parameter_schema(load_flow("open_flows.py:closed")), {"a": 1, "b": "x"})


def test_an_unresolvable_string_annotation_accepts_anything(tmp_path: Path) -> None:
    write(
        tmp_path / "forward.py",
        """
        from __future__ import annotations

        from anabranch import flow

        @flow
        def later(thing: NotDefinedAnywhere, count: int = 1):
            pass
        """,
    )
    schema = parameter_schema(load_flow("forward.py:later"))

    assert valid(schema, {"thing": [1, 2]})
    assert not valid(schema, {"thing": 1, "count": "one"})


def test_star_args_are_a_list_parameter(tmp_path: Path) -> None:
    write(
        tmp_path / "variadic.py",
        """
        from anabranch import flow

        @flow
        def total(*amounts: int) -> int:
            return sum(amounts)
        """,
    )
    schema = parameter_schema(load_flow("variadic.py:total"))

    assert schema["required"] == []
    assert valid(schema, {"amounts": [1, 2]})
    assert not valid(schema, {"amounts": ["one"]})
