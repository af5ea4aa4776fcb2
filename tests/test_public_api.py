"""`import bulk` is the library: every public name exported, sorted, resolvable and typed."""

from __future__ import annotations
import __future__

import inspect
import re
import subprocess
import sys
import types
from importlib.resources import files
from pathlib import Path

import bulk
import bulk.errors

COMMANDS = ("run_export", "run_import", "run_migrate")


def public_names(module: types.ModuleType) -> set[str]:
    """Its public names but submodules (`bulk.errors` once imported) and `from __future__`."""
    return {
        name
        for name in dir(module)
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(getattr(module, name), types.ModuleType)
        and getattr(module, name) is not __future__.annotations
    }


def test_all_imports_are_exported() -> None:
    assert bulk.__all__ == sorted(bulk.__all__)
    assert len(set(bulk.__all__)) == len(bulk.__all__)
    assert public_names(bulk) == set(bulk.__all__)


def test_every_exported_name_resolves_to_its_definition() -> None:
    for name in bulk.__all__:
        value = getattr(bulk, name)
        if name != "__version__":
            assert value.__name__ == name, name
            assert value.__module__.startswith("bulk."), name


def test_the_library_names_are_there() -> None:
    expected = {
        *COMMANDS,
        "ConnectionSettings",
        "ImportSettings",
        "ExportSettings",
        "MigrateSettings",
        "ImportOutcome",
        "ExportOutcome",
        "MigrateOutcome",
        "running_sandbox",
        "SandboxConfig",
    }
    assert expected <= set(bulk.__all__)
    assert all(inspect.iscoroutinefunction(getattr(bulk, name)) for name in COMMANDS)


def test_the_whole_exception_tree_is_exported() -> None:
    tree = {
        name
        for name, value in vars(bulk.errors).items()
        if inspect.isclass(value) and issubclass(value, bulk.errors.BulkError)
    }
    exported = {name: getattr(bulk, name) for name in bulk.__all__}
    assert tree == {
        name
        for name, value in exported.items()
        if inspect.isclass(value) and issubclass(value, bulk.errors.BulkError)
    }
    assert all(getattr(bulk, name) is getattr(bulk.errors, name) for name in tree)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        bulk.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert str(error) == "module 'bulk' has no attribute 'no_such_thing'"
    else:
        raise AssertionError("bulk.no_such_thing resolved")


def test_importing_bulk_and_its_cli_loads_neither_polars_nor_the_commands() -> None:
    code = (
        "import sys, bulk, bulk.cli; "
        "print(sorted(m for m in ('polars', 'bulk.importing.importer', 'bulk.exporting.exporter',"
        " 'bulk.migrate') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_internal_modules_never_import_from_the_package_root() -> None:
    package = Path(bulk.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "from bulk import" in path.read_text(encoding="utf-8")
        or re.search(r"^import bulk$", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert offenders == []


def test_the_package_is_marked_typed() -> None:
    assert (files("bulk") / "py.typed").is_file()
