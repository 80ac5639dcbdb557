"""The project's package (`dcd`, installed editable into .venv by
tools/setup.sh) and pycaffe (linked by tools/link_venv.sh) are imported
as installed; test helper modules are on pytest.ini's pythonpath."""
import pytest

# make test runs the suites on several processes (pytest-xdist, --dist
# loadgroup): a test file's tests stay on one process, so its module
# fixtures (the reduced demo run, built nets, sample data) are built once,
# except in the files named here, whose long tests are independent and go
# to whichever process is free (their module fixtures are cheap next to them).
SPREAD_FILES = {"test_models.py"}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name not in SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
